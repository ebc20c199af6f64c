"""The one settings object: every field comes from an environment variable `TOTESYS_<FIELD>`."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        description="Bearer token the control plane accepts. Unset: only IAM (API Gateway) "
        "protects the API, and `totesys serve` binds to loopback only.",
    )
    batch_max_bytes: int = Field(
        512 * 1024 * 1024,
        description="Raw JSON bytes applied in one batch (one commit per table); larger runs "
        "are split into several batches so memory stays bounded.",
    )
    chunk_bytes: int = Field(
        32 * 1024 * 1024,
        description="A sales_order file larger than this is read and applied in pieces of about "
        "this many bytes (whole records), its fact rows committed in one commit at the end: "
        "memory is then set by this, not by the file (a 3 GB baseline needs no more than a "
        "100 MB one). Such a file is a batch of its own.",
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
        description="Time-travel window kept by `totesys maintain`: vacuum never removes files "
        "a version inside this window needs.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
