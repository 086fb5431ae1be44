"""The worker keeps its database connection from task to task and does not ping it before each
one (tasks/base.py): a connection the database dropped in between fails the next task's first
query, the task is retried, and the retry connects anew. Here the database drops the worker's
connections (pg_terminate_backend, as a PostgreSQL restart or an idle-session kill would) between
two batches; the second batch must still be stored, exactly once."""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.db import connection, transaction

from graphspace import producer
from notifications.models import OwnerNotification
from tests.conftest import People
from tests.integration.conftest import Process, wait_for


def _session_ports(session: int) -> set[int]:
    """The local TCP ports of the sockets held by the processes of one session (the worker's
    main and pool processes: scripts/process.sh runs in a session of its own)."""
    inodes: set[str] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3]) != session:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except (OSError, ValueError, IndexError):
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def upload(n: int) -> None:
    with transaction.atomic():
        producer.send_message("owner", {
            "owner_email": "alice@example.com", "message": f"New graph D{n} uploaded.", "resource": "graph",
            "resource_id": 7_000 + n, "resource_name": f"D{n}", "type": "upload"})


def test_a_batch_after_the_database_dropped_the_workers_connection_is_stored_once(
    people: People, pipeline: None, worker: Process,
) -> None:
    rows = OwnerNotification.objects.filter(resource_id__gte=7_000, resource_id__lt=7_100)
    upload(0)
    wait_for(lambda: rows.count() == 1, what="the first batch's row")
    assert worker.proc is not None
    ports = _session_ports(worker.proc.pid)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND client_port = ANY(%s)", [sorted(ports)])
        dropped = len(cursor.fetchall())
    assert dropped >= 1, "the worker holds a connection to the test database between tasks"

    upload(1)
    upload(2)
    wait_for(lambda: rows.count() >= 3, timeout=60, what="the rows of the batches after the drop")
    time.sleep(1.0)  # time for a duplicate to show up
    assert sorted(rows.values_list("resource_id", flat=True)) == [7_000, 7_001, 7_002]
