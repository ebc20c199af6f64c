"""The one settings object: every field comes from an environment variable `TOTESYS_<FIELD>`."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from transforms.parse import ParseLimits

# The time-travel window maintenance may keep: at least a day (0 would vacuum every old version
# at once), at most ten years (longer windows overflow delta-rs's duration arithmetic).
RETENTION_DAYS_MIN = 1
RETENTION_DAYS_MAX = 3650
# A token shorter than this is refused (a 6-letter word falls to guessing); one way to make one:
API_TOKEN_MIN_CHARS = 24
MAKE_A_TOKEN = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOTESYS_", extra="ignore")

    ingestion_uri: str = Field(
        "data/ingestion",
        description="Where ingestion files land: a local folder or s3://bucket/prefix. "
        "Files are read from its baseline/ and updated/ prefixes and never modified.",
    )
    processed_uri: str = Field(
        "data/processed",
        description="Root of the Delta tables (fact/, dimension/, _state/): a local folder or "
        "s3://bucket/prefix.",
    )
    api_token: str | None = Field(
        None,
        description="Bearer token the control plane accepts, at least 24 characters (make one "
        f"with `{MAKE_A_TOKEN}`). Unset: only IAM (API Gateway) protects the API, and "
        "`totesys serve` binds to loopback only.",
    )
    batch_max_bytes: int = Field(
        512 * 1024 * 1024,
        description="Raw JSON bytes applied in one batch (one commit per table); larger runs "
        "are split into several batches so memory stays bounded.",
    )
    chunk_bytes: int = Field(
        # under glibc's largest mmap threshold (32 MiB): a freed piece's buffer is then reused
        # by the next piece instead of a fresh mapping faulted in page by page (reading a 1M
        # order file in 30 MiB pieces took 0.04 s, in 32 MiB pieces 0.21 s)
        30 * 1024 * 1024,
        description="A file of a fact's source table (sales_order, purchase_order, payment) larger "
        "than this is read and applied in pieces of about "
        "this many bytes (whole records), its fact rows committed in one commit at the end: "
        "memory is then set by this, not by the file (a 3 GB baseline needs no more than a "
        "100 MB one). Such a file is a batch of its own; a larger file of another table is "
        "parsed in such pieces.",
    )
    lease_seconds: int = Field(
        60,
        description="How long a run's lease on the processed root lasts without renewal. A "
        "heartbeat renews it every third of this while the run works, so a killed run blocks "
        "others for at most this long; a run paused longer loses the lease and stops before its "
        "next commit.",
    )
    lease_wait_seconds: float = Field(
        5.0,
        description="How long a run (a Lambda invocation, an API job) waits for another live "
        "run's lease before it leaves a wake marker (the holder then applies its files too) and "
        "returns `busy`. A holder that missed a heartbeat is presumed dead and waited out instead. "
        "`totesys run --wait` sets this for the CLI (default 45 s).",
    )
    retention_days: int = Field(
        30,
        ge=RETENTION_DAYS_MIN,
        le=RETENTION_DAYS_MAX,
        description="Time-travel window kept by `totesys maintain` (days, 1 to 3650): vacuum "
        "never removes files a version inside this window needs.",
    )

    min_date: date = Field(
        date(1900, 1, 1),
        description="Earliest plausible date: a date or timestamp before this day (in a field "
        "or an ingestion file name) is rejected as implausible, never stored.",
    )
    max_date: date = Field(
        date(2199, 12, 31),
        description="Latest plausible date (inclusive): later dates and timestamps are rejected "
        "as implausible.",
    )
    max_string_chars: int = Field(
        1_000,
        ge=1,
        description="Longest string value accepted (characters); a longer one rejects its row "
        "(the Totesys columns are short varchars).",
    )

    @field_validator("api_token")
    @classmethod
    def _token_is_strong(cls, value: str | None) -> str | None:
        if value and len(value) < API_TOKEN_MIN_CHARS:
            # The value itself is never repeated: it is a secret, if a weak one.
            raise ValueError(
                f"too short ({len(value)} characters; at least {API_TOKEN_MIN_CHARS}): make one "
                f"with {MAKE_A_TOKEN}"
            )
        return value

    @model_validator(mode="after")
    def _window_is_not_empty(self) -> Settings:
        if self.max_date < self.min_date:
            raise ValueError(f"max_date {self.max_date} is before min_date {self.min_date}")
        return self

    def parse_limits(self) -> ParseLimits:
        """The plausibility limits the transforms apply to every value."""
        return ParseLimits(
            min_date=self.min_date, max_date=self.max_date, max_string_chars=self.max_string_chars
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
