"""`make bench`: every benchmark against a stack of its own, then one table.

PostgreSQL, Redis and the Kafka-protocol broker are started on free ports by the chaos
suite's Stack (chaos/stack.py, the broker on memory storage), so a developer's `make run` or
another suite on the usual ports neither disturbs nor is disturbed by the figures. The
benchmarks (pytest, benchmarks/) start the project's processes against it as the
integration tests do, and record each figure (benchmarks/record.py). The table goes to the
terminal and to var/bench/latest.md with the date and the machine.

    python -m benchmarks [pytest arguments, e.g. -k storage]
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import uuid
from datetime import UTC, datetime

from benchmarks.record import ROOT, read, table
from chaos.stack import Stack


def machine() -> str:
    memory = ""
    try:
        with open("/proc/meminfo") as info:
            kib = int(info.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    run_id = uuid.uuid4().hex[:8]
    results = ROOT / "var" / "bench" / f"results-{run_id}.jsonl"
    stack = Stack(run_id, broker_storage="memory")
    started = datetime.now(UTC)
    try:
        stack.start()
        env = stack.app_env()
        # pytest.ini names the test settings; the stack's own name would override it.
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env["BENCH_RESULTS"] = str(results)
        code = subprocess.run(
            [sys.executable, "-m", "pytest", "benchmarks", "-s", "-q", "-p", "no:warnings", "-p", "no:cacheprovider",
             *argv], env=env, cwd=ROOT,
        ).returncode
    finally:
        stack.close()
    text = (f"## make bench, {started:%Y-%m-%d %H:%M} UTC\n\nMachine: {machine()}.\n\n"
            f"{table(read(results))}\n")
    latest = ROOT / "var" / "bench" / "latest.md"
    latest.write_text(text)
    print("\n" + text + f"\n(also in {latest.relative_to(ROOT)})")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
