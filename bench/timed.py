"""A measurement in a process of its own: its last stdout line is its JSON result, and the wall
time seen from outside is added (`wall_s`)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any


def timed_json(
    command: list[str], env: dict[str, str], what: str, cwd: Path | None = None
) -> dict[str, Any]:
    """Run `command` (stderr passes through, for progress); RuntimeError naming `what` if it
    fails."""
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result
