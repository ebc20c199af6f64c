"""Run a query so that nothing it does can hang or scribble over the command: a deadline, and
Rust's panic messages kept off the terminal.

`run_bounded(work, timeout)` runs `work` (prepare and collect a query) in a worker thread; Polars
releases the GIL while it plans and runs, so the calling thread waits with a deadline. Past it,
`QueryTimeout` is raised and the caller must end the process (`os._exit`): a running Polars query
cannot be cancelled, only abandoned with its process. Everything written to file descriptor 2
meanwhile is captured: a Polars panic prints a multi-line Rust message (and a backtrace with
RUST_BACKTRACE) there before it raises `PanicException`; that text goes to the debug log, any
other text is written to stderr afterwards.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from polars.exceptions import PanicException

T = TypeVar("T")
log = logging.getLogger("totesys.sql")


class QueryTimeout(Exception):
    """The query ran past its deadline; it is still running in its thread."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the query ran past --timeout {seconds:g} s and was stopped")
        self.seconds = seconds


@contextmanager
def captured_fd2() -> Iterator[list[bytes]]:
    """Point file descriptor 2 at a temporary file; on leaving, restore it and put what was
    written into the yielded list (one item)."""
    sys.stderr.flush()
    saved = os.dup(2)
    text: list[bytes] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read())


def run_bounded(work: Callable[[], T], timeout: float) -> T:
    """`work()`'s result or exception, or QueryTimeout after `timeout` seconds (see above)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # PanicException is a BaseException
            errors.append(exc)

    worker = threading.Thread(target=target, name="totesys-sql-query", daemon=True)
    with captured_fd2() as written:
        worker.start()
        worker.join(min(timeout, threading.TIMEOUT_MAX))
    if worker.is_alive():
        raise QueryTimeout(timeout)
    output = written[0].decode("utf-8", "replace") if written else ""
    if (errors and isinstance(errors[0], PanicException)) or "panicked at" in output:
        log.debug("Polars panicked:\n%s", output)
    elif output:
        sys.stderr.write(output)
    if errors:
        raise errors[0]
    return results[0]
