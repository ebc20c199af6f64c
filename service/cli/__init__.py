"""The `totesys` command: generate data, run the pipeline, query history and tables.

One module per group of commands, each adding its commands to the one Typer `app`
(service/cli/common.py, with what they share: options, one-line errors, output):

- runs.py: `generate`, `run`, `maintain`;
- facts.py: `history`, `current` (any declared fact's reads, `--fact`) and `tables`;
- sql.py: `sql`;
- serve.py: `serve`.

`entrypoint` is the `totesys` script (pyproject.toml); `python -m service.cli` runs it too.
"""

from __future__ import annotations

from service.cli import facts, runs, serve, sql
from service.cli.common import app, entrypoint
from service.cli.serve import is_loopback_host

COMMAND_MODULES = (facts, runs, serve, sql)  # imported for the commands they add to `app`

__all__ = ["app", "entrypoint", "is_loopback_host"]
