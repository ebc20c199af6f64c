"""The one job runner: a run or a maintenance, for the CLI, the API and the Lambda handler alike.

A job is a small JSON object, the same on every path (the API hands it to a thread locally, or
to an asynchronous self-invocation in Lambda):

    {"action": "run", "run_id": "...", "trigger": "api"}                      every pending file
    {"action": "run", "run_id": "...", "trigger": "reprocess", "only_keys": [...]}
    {"action": "maintain", "run_id": "...", "trigger": "maintenance", "retention_days": 30}

`execute` runs it and says how it ended; the run records themselves are written in one place,
by the pipeline under its lease (service/pipeline.py, service/ledger.py): `running` at the start,
the outcome at the end, `busy` in a wake marker when another run holds the lease. SIGTERM is
turned into the same clean stop as Ctrl-C: the run is recorded `interrupted`, the lease released.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from service.lease import LeaseBusy, LeaseLost, leave_marker
from service.ledger import RunRecord, utcnow
from service.pipeline import LeaseWait, Pipeline, Progress, RunSummary, new_run_id
from service.settings import Settings
from service.storage import open_storage

log = logging.getLogger("totesys.jobs")

ACTIONS = ("run", "maintain")


@dataclass
class Job:
    action: str  # run | maintain
    run_id: str = field(default_factory=new_run_id)
    trigger: str = "cli"
    only_keys: list[str] | None = None
    retention_days: int | None = None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Job:
        action = str(event.get("action"))
        if action not in ACTIONS:
            raise ValueError(f"unknown job action {action!r}")
        default_trigger = "maintenance" if action == "maintain" else "api"
        keys = event.get("only_keys")
        days = event.get("retention_days")
        return cls(
            action=action,
            run_id=str(event.get("run_id") or new_run_id()),
            trigger=str(event.get("trigger") or default_trigger),
            only_keys=[str(k) for k in keys] if keys is not None else None,
            retention_days=int(days) if days is not None else None,
        )

    def to_event(self) -> dict[str, Any]:
        event: dict[str, Any] = {"action": self.action, "run_id": self.run_id}
        event["trigger"] = self.trigger
        if self.only_keys is not None:
            event["only_keys"] = self.only_keys
        if self.retention_days is not None:
            event["retention_days"] = self.retention_days
        return event


@dataclass
class JobResult:
    run_id: str
    status: str  # succeeded | failed | busy | interrupted
    summary: RunSummary | None = None
    maintenance: dict[str, Any] | None = None
    error: str | None = None
    exception: BaseException | None = None

    def record(self) -> dict[str, Any]:
        if self.summary is not None:
            return self.summary.record().to_dict()
        return {"run_id": self.run_id, "status": self.status, "error": self.error}


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While a job runs in the main thread, SIGTERM ends it like Ctrl-C (recorded, released)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute(
    job: Job,
    settings: Settings,
    *,
    progress: Progress | None = None,
    on_wait: LeaseWait | None = None,
    wait_seconds: float | None = None,
    record_busy: bool = False,
    pipeline: Pipeline | None = None,
) -> JobResult:
    """Run `job` to its end. Never raises for a run that failed, was busy or interrupted: the
    result says so (and keeps the exception); the record is already written."""
    try:
        pipeline = pipeline or Pipeline.from_settings(settings)
    except Exception as exc:
        log.debug("job %s could not start", job.run_id, exc_info=True)
        return JobResult(job.run_id, "failed", error=f"{type(exc).__name__}: {exc}", exception=exc)
    try:
        with stop_on_sigterm():
            if job.action == "maintain":
                days = settings.retention_days if job.retention_days is None else job.retention_days
                summary, stats = pipeline.maintain(
                    days,
                    run_id=job.run_id,
                    trigger=job.trigger,
                    wait_seconds=wait_seconds,
                    record_busy=record_busy,
                )
                return JobResult(job.run_id, summary.status, summary, maintenance=stats)
            summary = pipeline.run(
                run_id=job.run_id,
                trigger=job.trigger,
                only_keys=job.only_keys,
                progress=progress,
                wait_seconds=wait_seconds,
                record_busy=record_busy,
                on_wait=on_wait,
            )
            return JobResult(job.run_id, summary.status, summary)
    # The caller reports the outcome (CLI: one line; handler: an ERROR log that fires the alarm;
    # API: the run record); here only the detail, at debug level.
    except LeaseBusy as exc:
        log.info(
            "run %s not started: %s; a wake marker asks that run to apply the files",
            job.run_id,
            exc,
        )
        return JobResult(job.run_id, "busy", error=str(exc), exception=exc)
    except KeyboardInterrupt as exc:
        log.info("run %s interrupted", job.run_id)
        return JobResult(job.run_id, "interrupted", error="interrupted", exception=exc)
    except LeaseLost as exc:
        log.info("run %s stopped: %s", job.run_id, exc)
        return JobResult(job.run_id, "failed", error=f"LeaseLost: {exc}", exception=exc)
    except Exception as exc:
        log.debug("run %s failed", job.run_id, exc_info=True)
        return JobResult(job.run_id, "failed", error=f"{type(exc).__name__}: {exc}", exception=exc)


def request(job: Job, settings: Settings) -> None:
    """Record a job the API accepted (`pending`) before it is dispatched: the record travels in
    a wake marker, so a run that holds the lease now also applies what the job asks for."""
    now = utcnow()
    record = RunRecord(job.run_id, "pending", job.trigger, started_at=now)
    leave_marker(
        open_storage(settings.processed_uri),
        job.run_id,
        {
            "trigger": job.trigger,
            "only_keys": job.only_keys if job.action == "run" else [],
            "record": record.to_json(),
        },
    )


def dispatch_failed(job: Job, settings: Settings, error: str) -> None:
    now = utcnow()
    record = RunRecord(
        job.run_id, "failed", job.trigger, started_at=now, finished_at=now, error=error
    )
    leave_marker(
        open_storage(settings.processed_uri),
        job.run_id,
        {"trigger": job.trigger, "only_keys": [], "record": record.to_json()},
    )
