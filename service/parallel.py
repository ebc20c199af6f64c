"""Independent commits of one step of a batch's commit order, run at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")

COMMIT_THREADS = 4


def in_parallel(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Independent commits (to different tables, within one step of a batch's commit order) run
    at once: each is a few round trips on S3 and a few milliseconds of delta-rs locally, and a
    baseline's dimension step writes eight tables. Results in the order of `calls`; the first
    failure is raised once every call has finished, so no commit of the step is still running
    when the next step starts. A crash leaves some of the step's tables committed and not
    others, as a crash between two of them always could."""
    if len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(min(COMMIT_THREADS, len(calls)), "totesys-commit") as pool:
        futures = [pool.submit(call) for call in calls]
        wait(futures)
    return [future.result() for future in futures]
