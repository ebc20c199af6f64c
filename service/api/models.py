"""Request and response bodies of the control-plane API (pydantic models, shown in OpenAPI).

Decimals are serialised as JSON strings (pydantic's default), dates and timestamps as ISO 8601.
The tables store naive UTC timestamps; the API serves them with their zone (`Z`), as the
published `date-time` format requires.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from service.settings import RETENTION_DAYS_MAX, RETENTION_DAYS_MIN


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timestamp served with its zone: naive values (the tables' naive UTC) are marked UTC."""

# S3's longest key; longer keys or prefixes cannot name an ingestion file.
MAX_KEY_LENGTH = 1024
# What service/api/routes/reprocess.py's `key_problem` accepts, for the published schema (the
# check itself stays in Python, with a message per problem): under baseline/ or updated/, no URI,
# no `.` or `..` segment, no backslash or NUL.
KEY_PATTERN = r"^(?:baseline|updated)/(?![\s\S]*://)(?!(?:[\s\S]*/)?\.\.?(?:/|$))[^\\\u0000]*$"
IngestionKey = Annotated[
    str,
    Field(min_length=1, max_length=MAX_KEY_LENGTH, json_schema_extra={"pattern": KEY_PATTERN}),
]

# busy: another run held the lease (its wake marker asked that run to do this one's work);
# interrupted: SIGINT/SIGTERM; abandoned: its process died (or was paused) holding the lease.
RunStatus = Literal["pending", "running", "succeeded", "failed", "busy", "interrupted", "abandoned"]
FileStatus = Literal["pending", "applied", "rejected", "skipped"]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Problem(BaseModel):
    """The body of every 4xx answer (FastAPI's shape: `detail` is a message or an object)."""

    detail: Any


class RunAccepted(BaseModel):
    run_id: str
    status: RunStatus = "pending"
    trigger: str
    status_url: str = Field(description="Poll this for the run's progress: GET /runs/{run_id}")


class Run(BaseModel):
    run_id: str
    status: RunStatus
    trigger: str = Field(description="api, reprocess, maintenance, cli, s3, schedule, …")
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    duration_seconds: float | None = None
    files_applied: int = 0
    files_rejected: int = 0
    files_skipped: int = 0
    rows_rejected: int = 0
    rows_written: dict[str, int] = Field(default_factory=dict, description="table → rows")
    error: str | None = None


class RunPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[Run]


class IngestionFile(BaseModel):
    key: str = Field(description="Key relative to the ingestion root, e.g. updated/x-….json")
    status: FileStatus
    source_table: str | None = None
    kind: str | None = Field(None, description="baseline | updated")
    file_timestamp: UtcDatetime | None = None
    size_bytes: int | None = None
    records_read: int | None = None
    rows_rejected: int | None = None
    reason: str | None = None
    run_id: str | None = Field(None, description="The run that recorded the outcome")
    recorded_at: UtcDatetime | None = None


class FilePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[IngestionFile]


def _exactly_one_of_keys_or_prefix(schema: dict[str, Any]) -> None:
    """The published schema says what the validators enforce: exactly one of the two, neither
    of them null."""
    for name in ("keys", "prefix"):
        field = schema["properties"][name]
        (present,) = [c for c in field.pop("anyOf") if c.get("type") != "null"]
        field.update(present)
    schema["oneOf"] = [{"required": ["keys"]}, {"required": ["prefix"]}]
    schema["examples"] = [
        {"keys": ["updated/sales_order-2024-11-14T11:00:00.000000.json"]},
        {"prefix": "updated/sales_order-2024-11-14"},
    ]


class ReprocessRequest(BaseModel):
    """Exactly one of `keys` (ingestion keys) or `prefix` (every file under it)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_of_keys_or_prefix)

    keys: list[IngestionKey] | None = Field(
        None,
        min_length=1,
        max_length=10_000,
        description="At most 10,000 keys. The whole body must stay within 1 MB: a larger one is "
        "refused with 413 before it is read, whatever it holds.",
    )
    prefix: IngestionKey | None = None

    @field_validator("keys", "prefix", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null: leave it out")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> ReprocessRequest:
        if (self.keys is None) == (self.prefix is None):
            raise ValueError("give exactly one of 'keys' or 'prefix'")
        return self


class MaintenanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retention_days: int | None = Field(
        None,
        ge=RETENTION_DAYS_MIN,
        le=RETENTION_DAYS_MAX,
        description="Time-travel window to keep (days, 1 to 3650); default TOTESYS_RETENTION_DAYS",
    )


class TableSummary(BaseModel):
    name: str
    path: str
    version: int
    rows: int
    last_commit: UtcDatetime | None
    last_operation: str | None


class TableVersion(BaseModel):
    version: int
    timestamp: UtcDatetime | None
    operation: str | None
    operation_parameters: dict[str, Any] = Field(default_factory=dict)
    operation_metrics: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = Field(None, description="The run that made it (commit metadata)")
    totesys_operation: str | None = Field(None, description="append | merge | replace_where")


class TableVersions(BaseModel):
    name: str
    versions: list[TableVersion] = Field(description="Newest first")


class RowPage(BaseModel):
    table: str
    version: int = Field(description="The Delta version the rows were read at")
    total: int = Field(description="Rows matching the filters at that version")
    limit: int
    offset: int
    rows: list[dict[str, Any]]


# A fact's versions, histories and states: service/api/fact_models.py (made from each
# declaration).
