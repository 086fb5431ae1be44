"""The fault-injection suite at its small size (a few hundred events per experiment): each
experiment of the issue's table must lose nothing, store nothing twice, tell nobody who
should not hear, recover in time, and show its own outcome.

The suite starts a stack of its own (PostgreSQL, Redis, the broker and every process, on
free ports and a data folder of its own) in a subprocess, once for the module; the
services the other tests use are never touched. CHAOS_SCALE=full runs the issue's sizes.
Its table and logs are in test-artifacts/chaos-<run>/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chaos_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    path = tmp_path_factory.mktemp("chaos") / "results.json"
    env = {**os.environ, "CHAOS_SCALE": os.environ.get("CHAOS_SCALE", "small")}
    run = subprocess.run([sys.executable, "-m", "chaos", "--json", str(path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1800)
    print(run.stdout)
    if not path.exists():
        pytest.fail(f"the fault-injection suite did not run (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return {r["name"]: r for r in json.loads(path.read_text())["results"]}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_event_is_stored_once_whatever_the_fault(chaos_results: dict[str, dict[str, Any]], name: str) -> None:
    result = chaos_results[name]
    assert result["error"] is None, result["error"]
    # Nothing lost, nothing twice, nobody told who should not be.
    assert (result["missing"], result["duplicated"], result["unexpected"]) == (0, 0, 0), result["notes"]
    assert result["expected"] > 0 and result["found"] == result["expected"]
    # Recovered, within the promise where the issue makes one.
    assert result["recovery"] is not None, "never fully recovered"
    if result["limit"] is not None:
        assert result["recovery"] <= result["limit"]
    # The experiment's own outcome: carol told of the share, 200/200 deletions, ...
    assert all(result["checks"].values()), result["checks"]
    assert result["passed"], result["failures"]
