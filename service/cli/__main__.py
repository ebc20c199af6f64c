"""`python -m service.cli`: the `totesys` command."""

from service.cli import entrypoint

entrypoint()
