"""The daily digest for 1,000 users x 20 notifications, to the project's SMTP catcher in a
process of its own: the chunked path (digest.run) and one user at a time (a retry's path), 3
runs each, p50 and p99. benchmarks/digest.py has the details and runs by hand too."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.digest import PATHS, measure, summary_line
from benchmarks.record import record

USERS, PER_USER, RUNS = 1000, 20, 3


def test_bench_digest_for_1000_users(transactional_db: Any) -> None:
    print()
    results = {path: measure(path, USERS, PER_USER, RUNS) for path in PATHS}
    for path, samples in results.items():
        print(summary_line(path, USERS, samples))
        ordered = sorted(samples)
        record("digest", f"digest, {USERS:,} users x {PER_USER} notifications ({path})",
               f"p50 {statistics.median(ordered):.2f} s, max {ordered[-1]:.2f} s ({RUNS} runs)",
               baseline="20.4 s" if path == "chunked" else "", target="<= 10 s, exactly once" if path == "chunked" else "",
               note="one user at a time: a retry's path" if path == "per-user" else "")
