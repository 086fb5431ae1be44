"""How long the daily digest takes: 1,000 opted-in users with 20 unread notifications each,
sent in-process (`manage.py send_digests`'s path) to an aiosmtpd sink on 127.0.0.1.

    PGPASSWORD=graphspace psql -h 127.0.0.1 -U graphspace -d postgres -c 'create database graphspace_bench'
    export DATABASE_URL=postgres://graphspace:graphspace@127.0.0.1:5432/graphspace_bench
    .venv/bin/python manage.py migrate
    .venv/bin/python benchmarks/digest.py [--users 1000] [--per-user 20]

It writes to the database DATABASE_URL names (its own users, under @bench.graphspace.local,
replaced on every run), so point it at a throwaway database.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphspace.settings")

import django  # noqa: E402

django.setup()

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import SMTP, Envelope, Session  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from graphspace.models import Group, User  # noqa: E402
from notifications import digest  # noqa: E402
from notifications.models import GroupNotification, NotificationCluster, OwnerNotification  # noqa: E402

DOMAIN = "bench.graphspace.local"


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=20)
    args = parser.parse_args()

    started = time.perf_counter()
    seed(args.users, args.per_user)
    print(f"seeded {args.users} users x {args.per_user} notifications in {time.perf_counter() - started:.1f} s "
          f"({settings.DATABASES['default']['NAME']})")

    # The sink shares this process: keep its per-command log lines out of the measurement.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    # A period of its own, so a rerun on the same day sends again.
    period = digest.current_period() + timedelta(days=1000 + int(time.time()) % 100000)
    try:
        started = time.perf_counter()
        summary = digest.run(period)
        elapsed = time.perf_counter() - started
    finally:
        controller.stop()
    sent = summary.get("sent", 0)
    print(f"digest: {dict(summary)}; {sink.count} emails at the SMTP sink")
    print(f"elapsed {elapsed:.2f} s, {sent / elapsed:.0f} emails/s, {elapsed / max(sent, 1) * 1000:.1f} ms per email")


if __name__ == "__main__":
    main()
