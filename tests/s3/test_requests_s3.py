"""S3 economy, counted: SeaweedFS behind the counting proxy (tests/s3/fault_proxy.py), the real
Totesys snapshot as baseline (synthetic without ../shared), then small runs of one 10-order
update file each. The targets: a small run touching one fact in at most 30 requests (median) and
flat, one touching all three facts (a small update file of sales orders, purchase orders and
payments) in at most 45, a run with nothing to do in at most 12, each API read in at most 15.
(`make bench` runs the long version: 500 runs with the daily maintenance between, and the time
per run with 25 ms added to every request.)"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator

import pytest

from bench.s3_requests import measure

pytestmark = [pytest.mark.xdist_group("seaweedfs"), pytest.mark.seaweedfs]


@pytest.fixture
def restored_environment() -> Iterator[None]:
    """measure() points this process's AWS environment at its proxy: put it back after."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_small_runs_noop_and_api_reads_stay_within_their_request_budgets(
    seaweedfs_endpoint: str, restored_environment: None
) -> None:
    measured = measure(
        runs=20, maintain_every=10, timed_runs=0, upstream=seaweedfs_endpoint, three_fact_runs=6
    )
    totals = measured.totals()
    summary = measured.summary()
    assert len(totals) == 20
    assert statistics.median(totals) <= 30, summary
    assert len(measured.three_fact_runs) == 6, summary  # the real snapshot has all three
    assert statistics.median(measured.three_totals()) <= 45, summary
    first, last = statistics.median(totals[:5]), statistics.median(totals[-5:])
    assert last <= 1.15 * first, summary  # flat: runs after a maintenance cost what early ones did
    assert measured.noop["total"] <= 12, measured.noop
    for read, count in measured.api.items():
        assert count <= 15, (read, summary)
    # the counts are real: a small run reads its file, commits the fact table, writes state
    kinds = summary["median_by_kind"]
    assert kinds["PUT-conditional"] >= 2 and kinds["GET"] >= 1 and kinds["LIST"] >= 2
