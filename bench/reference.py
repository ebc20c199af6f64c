"""Reference programs the benchmark reports set the pipeline against (issue 21):

- the bare floor: Polars `read_ndjson` with an explicit schema and one `write_delta`, nothing
  else (`bench.worker floor`);
- dlt (filesystem source `read_jsonl` -> filesystem destination, Delta, append), in its own
  virtual environment `.venv-dlt` beside the project, made on first use; when it cannot be made
  (no network, no wheel) the reports say so and skip the row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.timed import timed_json

ROOT = Path(__file__).resolve().parent.parent
DLT_VENV = ROOT / ".venv-dlt"
DLT_REQUIREMENT = "dlt[filesystem,deltalake]==1.31.0"


def dlt_python() -> tuple[Path | None, str]:
    """The dlt environment's interpreter (made if missing), or None and why not."""
    python = DLT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import dlt, deltalake; print(dlt.__version__)"]
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return python, f"dlt {done.stdout.strip()}"
    print(f"[bench] making {DLT_VENV} ({DLT_REQUIREMENT})", file=sys.stderr, flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(DLT_VENV)],
        [str(DLT_VENV / "bin" / "pip"), "install", "--quiet", DLT_REQUIREMENT],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            note = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"[bench] dlt skipped: {' '.join(step[:3])} failed: {note}", file=sys.stderr)
            return None, f"skipped: dlt could not be installed ({note})"
    done = subprocess.run(probe, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None, "skipped: dlt installed but does not import"
    return python, f"dlt {done.stdout.strip()}"


def run_dlt(python: Path, ingestion: Path, out: Path) -> dict[str, Any]:
    """One dlt load of the ingestion tree's sales_order files into `out` (a fresh folder)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [str(python), str(ROOT / "bench" / "dlt_load.py"), str(ingestion), str(out)]
    return timed_json(command, env, "dlt load")
