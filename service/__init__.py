"""totesys-transform's service: the pipeline, its storage, the control plane and the CLI."""

import os

# Polars allocates through its own jemalloc, which by default keeps freed pages for 10 s before
# giving them back: a baseline's dimension batch (a transaction file as large as the sales one)
# then stays resident while the fact files stream after it, and the run peaks ~100 MiB higher
# than the data it holds. Pages freed are returned after 100 ms instead (by jemalloc's own
# thread): the same run's peak RSS drops by a fifth at no measurable cost in time (0 ms: every
# page, was ~50% slower). Read when Polars is loaded, so it is set before anything imports it;
# an environment that sets it keeps its own.
os.environ.setdefault(
    "_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0"
)
