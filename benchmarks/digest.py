"""How long the daily digest takes: 1,000 opted-in users with 20 unread notifications each,
sent in-process (`manage.py send_digests`'s path) to the project's own SMTP catcher
(`scripts/process.sh smtp`, notifications/smtp_catcher.py: aiosmtpd, one .eml file written per
message) running as a process of its own on a free port of 127.0.0.1.

`make bench` runs it against the test database (benchmarks/test_bench_digest.py). By hand:

    PGPASSWORD=graphspace psql -h 127.0.0.1 -U graphspace -d postgres -c 'create database graphspace_bench'
    export DATABASE_URL=postgres://graphspace:graphspace@127.0.0.1:5432/graphspace_bench
    .venv/bin/python manage.py migrate
    .venv/bin/python benchmarks/digest.py [--users 1000] [--per-user 20] [--runs 3] [--path chunked|per-user]

It writes to the database DATABASE_URL names (its own users, under @bench.graphspace.local,
replaced on every run), so point it at a throwaway database. Each run seeds afresh and sends
one period's digests; the figures are the p50 and p99 of the runs.

Two paths, measured in the same conditions:
- `chunked`: `digest.run()`, what `manage.py send_digests` and the nightly fan-out's tasks do;
- `per-user`: `digest.send_digest()` for one user after another over one SMTP session, the
  path of a single user's retry task, and what `run()` did before the chunked digest.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphspace.settings")
    import django

    django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from graphspace.models import Group, User  # noqa: E402
from notifications import digest, email  # noqa: E402
from notifications.models import GroupNotification, NotificationCluster, OwnerNotification  # noqa: E402

DOMAIN = "bench.graphspace.local"
PATHS = ("chunked", "per-user")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_catcher() -> Iterator[tuple[int, Path]]:
    """The project's SMTP catcher as its own process; yields its port and its mail folder."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="digest-bench-mail-") as folder:
        env = {**os.environ, "SMTP_CATCHER_HOST": "127.0.0.1", "EMAIL_PORT": str(port), "SMTP_CATCHER_DIR": folder}
        # Its one line per message goes nowhere: printing is not what is measured.
        catcher = subprocess.Popen([str(ROOT / "scripts" / "process.sh"), "smtp"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if catcher.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the SMTP catcher did not start") from None
                    time.sleep(0.05)
            yield port, Path(folder)
        finally:
            catcher.terminate()
            catcher.wait(10)


def seed(users: int, per_user: int) -> None:
    """Per user: half uploads in one cluster, a quarter single updates, a quarter shares of
    one group's cluster; all unread and not emailed."""
    User.objects.filter(email__endswith=f"@{DOMAIN}").delete()
    people = User.objects.bulk_create([
        User(email=f"user{i:05d}@{DOMAIN}", password="!", receive_notification_email=True) for i in range(users)
    ])
    lab = Group.objects.create(name="Bench lab", owner=people[0])
    now = timezone.now()
    uploads, shares = per_user // 2, per_user // 4
    updates = per_user - uploads - shares
    clusters = NotificationCluster.objects.bulk_create([
        NotificationCluster(recipient=u, topic=topic, type=type_, resource="graph", group=group, actor_email=actor,
                            key=f"{topic}:{type_}:{uuid4()}", first_at=now, last_at=now, size=size, unread=size)
        for u in people
        for topic, type_, group, actor, size in (("owner", "upload", None, "", uploads),
                                                 ("group", "share", lab, people[0].email, shares))
    ], batch_size=1000)
    owner_rows: list[OwnerNotification] = []
    group_rows: list[GroupNotification] = []
    for n, user in enumerate(people):
        upload_cluster, share_cluster = clusters[2 * n], clusters[2 * n + 1]
        common: dict[str, Any] = {"resource": "graph", "resource_id": 1, "is_read": False, "is_email_sent": False}
        for i in range(uploads):
            owner_rows.append(OwnerNotification(
                event_id=uuid4(), owner=user, message=f"New graph g{i} uploaded.", type="upload", resource_name=f"g{i}",
                actor_email=user.email, occurred_at=now - timedelta(minutes=60 - i), cluster=upload_cluster, **common,
            ))
        for i in range(updates):
            owner_rows.append(OwnerNotification(
                event_id=uuid4(), owner=user, message=f"Graph u{i} updated.", type="update", resource_name=f"u{i}",
                actor_email=user.email, occurred_at=now - timedelta(minutes=30 - i), **common,
            ))
        for i in range(shares):
            group_rows.append(GroupNotification(
                event_id=uuid4(), member=user, group=lab, owner_email=people[0].email, message=f"Graph s{i} shared.",
                type="share", resource_name=f"s{i}", actor_email=people[0].email,
                occurred_at=now - timedelta(minutes=10 - i), cluster=share_cluster, **common,
            ))
    OwnerNotification.objects.bulk_create(owner_rows, batch_size=2000)
    GroupNotification.objects.bulk_create(group_rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def per_user(period: date) -> Counter[str]:
    """One user after another, each with digest.send_digest(), over one SMTP session."""
    summary: Counter[str] = Counter()
    with email.session() as mail_connection:
        for chunk in digest.due_user_id_chunks(period, digest.CHUNK_SIZE):
            for user_id in chunk:
                try:
                    summary[digest.send_digest(user_id, period, mail_connection).outcome.value] += 1
                except email.TransportError:
                    summary["failed"] += 1
    return summary


SENDERS: dict[str, Callable[[date], Counter[str]]] = {"chunked": digest.run, "per-user": per_user}


def measure(path: str, users: int, per_user_count: int, runs: int, out: Callable[[str], None] = print) -> list[float]:
    """Seconds per run (each run seeds afresh, then sends one period's digests)."""
    # One INFO line per email would be part of what is measured.
    logging.getLogger("notifications.digest").setLevel(logging.WARNING)
    samples: list[float] = []
    with smtp_catcher() as (port, folder), override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=port,
    ):
        for run in range(runs):
            seed(users, per_user_count)
            before = len(list(folder.iterdir()))
            # A period of its own, so every run (and a rerun on the same day) sends again.
            period = digest.current_period() + timedelta(days=1000 + (time.time_ns() // 1000) % 1_000_000)
            started = time.perf_counter()
            summary = SENDERS[path](period)
            elapsed = time.perf_counter() - started
            received = len(list(folder.iterdir())) - before
            assert summary == {"sent": users} and received == users, (summary, received)
            samples.append(elapsed)
            out(f"digest {path}, run {run + 1}: {users} users x {per_user_count} notifications in {elapsed:.2f} s "
                f"({users / elapsed:.0f} emails/s, {elapsed / users * 1000:.1f} ms per email)")
    return samples


def summary_line(path: str, users: int, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"digest {path}: {users} users, {len(samples)} runs: p50 {statistics.median(ordered):.2f} s, "
            f"p99 {p99:.2f} s, min {ordered[0]:.2f} s (load average {os.getloadavg()[0]:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--path", choices=(*PATHS, "both"), default="both")
    args = parser.parse_args()
    print(f"database {settings.DATABASES['default']['NAME']}, load average {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    for path in PATHS if args.path == "both" else (args.path,):
        results[path] = measure(path, args.users, args.per_user, args.runs, lambda line: print(line, flush=True))
    for path, samples in results.items():
        print(summary_line(path, args.users, samples))


if __name__ == "__main__":
    main()
