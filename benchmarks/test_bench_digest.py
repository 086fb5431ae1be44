"""The daily digest for 1,000 users x 20 notifications, to the project's SMTP catcher in a
process of its own: the chunked path (digest.run) and one user at a time (a retry's path), 3
runs each, p50 and p99. benchmarks/digest.py has the details and runs by hand too."""

from __future__ import annotations

from typing import Any

from benchmarks.digest import PATHS, measure, summary_line

USERS, PER_USER, RUNS = 1000, 20, 3


def test_bench_digest_for_1000_users(transactional_db: Any) -> None:
    print()
    results = {path: measure(path, USERS, PER_USER, RUNS) for path in PATHS}
    for path, samples in results.items():
        print(summary_line(path, USERS, samples))
