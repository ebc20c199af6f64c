"""Dependencies of the routes, as `Annotated` aliases: settings, lake, pipeline, caches, dispatch,
auth (`service.api.auth` decides who may call; re-exported here).

They are `async` (none of them blocks: the Pipeline's storages connect lazily) so FastAPI runs
them on the event loop; a sync dependency costs a hop through the 40-thread pool, and under a
few hundred concurrent requests those hops were most of the latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from service.api.auth import authenticate as authenticate
from service.api.auth import iam_principal as iam_principal
from service.api.cache import TableCache
from service.lake import Lake
from service.ledger import Ledger
from service.pipeline import Pipeline
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


_setup_lock = threading.Lock()


async def get_pipeline(request: Request) -> Pipeline:
    """One Pipeline (two storages, a lake, a ledger) per app: clients are reused across requests."""
    state = request.app.state
    pipeline: Pipeline | None = getattr(state, "pipeline", None)
    if pipeline is None:
        with _setup_lock:  # the first burst of concurrent requests builds one, not one each
            pipeline = getattr(state, "pipeline", None)
            if pipeline is None:
                pipeline = Pipeline.from_settings(state.settings)
                state.pipeline = pipeline
    return pipeline


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


async def get_lake(pipeline: PipelineDep) -> Lake:
    # one Lake serves every request: kept table handles are brought up to date once per request
    pipeline.lake.new_session()
    return pipeline.lake


async def get_ledger(pipeline: PipelineDep) -> Ledger:
    return pipeline.ledger


LakeDep = Annotated[Lake, Depends(get_lake)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]


async def get_cache(request: Request, lake: LakeDep) -> TableCache:
    """One TableCache per app (handles and values keyed by Delta version)."""
    state = request.app.state
    cache: TableCache | None = getattr(state, "table_cache", None)
    if cache is None:
        with _setup_lock:
            cache = getattr(state, "table_cache", None)
            if cache is None:
                cache = TableCache(lake)
                state.table_cache = cache
    return cache


CacheDep = Annotated[TableCache, Depends(get_cache)]


async def request_started() -> float:
    """When the request began to be handled (monotonic): on the event loop, before the route
    waits for a worker thread. The cache serves anything checked after this moment."""
    return time.monotonic()


StartedDep = Annotated[float, Depends(request_started)]


# -- dispatch ---------------------------------------------------------------------------------
Dispatcher = Callable[[dict[str, Any], Settings], None]


async def get_dispatcher(request: Request) -> Dispatcher:
    """How a job leaves the request: `background.dispatch` unless a test replaced it."""
    from service.api import background

    dispatcher: Dispatcher = getattr(request.app.state, "dispatcher", None) or background.dispatch
    return dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


# -- auth -------------------------------------------------------------------------------------
Caller = Annotated[str, Depends(authenticate)]
