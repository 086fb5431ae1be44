"""One table for `make bench`: each benchmark records its figures here, beside the issue's
baseline and target, and `python -m benchmarks` prints them together at the end.

A figure is one line of JSON in the file BENCH_RESULTS names (var/bench/results.jsonl when
it is not set), so figures from every benchmark process of a run land in one table.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def results_file() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", ROOT / "var" / "bench" / "results.jsonl"))


def record(section: str, figure: str, value: str, *, baseline: str = "", target: str = "", note: str = "") -> None:
    """Print one figure now (as a benchmark always has) and keep it for the table."""
    print(f"\n  [{section}] {figure}: {value}" + (f"   (baseline {baseline}; target {target})" if baseline or target else ""))
    path = results_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps({"section": section, "figure": figure, "value": value, "baseline": baseline,
                              "target": target, "note": note}) + "\n")


def p50_p99(samples_ms: Sequence[float]) -> str:
    """'p50 X / p99 Y ms' of a list of milliseconds."""
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, max(0, round(len(ordered) * 0.99) - 1))]
    return f"p50 {statistics.median(ordered):.2f} / p99 {p99:.2f} ms"


def table(rows: list[dict[str, str]]) -> str:
    """The recorded figures as one Markdown table, in the order they were recorded."""
    lines = ["| section | figure | measured | baseline (issue 9, before) | target |", "|---|---|---|---|---|"]
    for r in rows:
        value = r["value"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(f"| {r['section']} | {r['figure']} | {value} | {r['baseline']} | {r['target']} |")
    return "\n".join(lines)


def read(path: Path | None = None) -> list[dict[str, str]]:
    path = path or results_file()
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
