"""The load an experiment puts on the stack, and the count of what came out of it.

Every action is recorded in a ledger with the rows it must produce: one per owner event,
and for a group event one per member of the group at the action (plus the removed member
on a remove). A row is known by (table, type, resource, resource name, group, recipient);
each experiment has users and resource names of its own, so its rows are counted exactly.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from django.contrib.auth.hashers import make_password
from django.db import DatabaseError, connection, transaction

from graphspace.models import User
from graphspace.producer import send_message

PASSWORD = "chaos-password"
RowKey = tuple[str, str, str, str, int | None, str]

_password_hash: list[str] = []


def make_users(emails: Iterable[str]) -> list[User]:
    """Users sharing one password hash: hashing costs about half a second each."""
    if not _password_hash:
        _password_hash.append(make_password(PASSWORD))
    users = User.objects.bulk_create([User(email=e.lower(), password=_password_hash[0]) for e in emails])
    return list(User.objects.filter(email__in=[u.email for u in users]).order_by("id"))


def owner_row(type: str, resource: str, name: str, recipient: str) -> RowKey:
    return ("owner", type, resource, name, None, recipient)


def group_rows(type: str, resource: str, name: str, group_id: int, recipients: Iterable[str]) -> list[RowKey]:
    return [("group", type, resource, name, group_id, r) for r in recipients]


class Ledger:
    """What an experiment did and what it expects to find. Safe to fill from threads."""

    def __init__(self, recipients: Iterable[str] = ()) -> None:
        self.recipients: set[str] = set(recipients)
        self.expected: set[RowKey] = set()
        self.acknowledged = 0
        self.refused = 0
        self.last_ack = time.monotonic()
        self._lock = threading.Lock()

    def watch(self, emails: Iterable[str]) -> None:
        with self._lock:
            self.recipients |= set(emails)

    def ack(self, rows: Iterable[RowKey]) -> None:
        """An action was acknowledged (committed, or answered 2xx): its rows must come."""
        with self._lock:
            self.expected |= set(rows)
            self.acknowledged += 1
            self.last_ack = time.monotonic()

    def refuse(self) -> None:
        with self._lock:
            self.refused += 1

    def snapshot(self) -> set[RowKey]:
        with self._lock:
            return set(self.expected)


_ROWS_SQL = """
SELECT 'owner', type, resource, resource_name, NULL::bigint, owner_email
  FROM owner_notification WHERE owner_email = ANY(%s)
UNION ALL
SELECT 'group', type, resource, resource_name, group_id, member_email
  FROM group_notification WHERE member_email = ANY(%s)
"""


def found_rows(recipients: set[str]) -> Counter[RowKey]:
    with connection.cursor() as cursor:
        cursor.execute(_ROWS_SQL, [sorted(recipients), sorted(recipients)])
        return Counter(tuple(row) for row in cursor.fetchall())  # type: ignore[misc]


@dataclass
class Count:
    expected: int
    found: int
    missing: int
    duplicated: int
    unexpected: int
    missing_keys: list[RowKey] = field(default_factory=list)
    unexpected_keys: list[RowKey] = field(default_factory=list)


def count(ledger: Ledger) -> Count:
    expected = ledger.snapshot()
    rows = found_rows(ledger.recipients)
    missing = sorted(expected - set(rows), key=str)
    unexpected = sorted((k for k in rows if k not in expected), key=str)
    return Count(
        expected=len(expected), found=sum(rows.values()), missing=len(missing),
        duplicated=sum(n - 1 for k, n in rows.items() if n > 1 and k in expected),
        unexpected=sum(rows[k] for k in unexpected), missing_keys=missing[:5], unexpected_keys=unexpected[:5],
    )


def wait_stored(ledger: Ledger, keys: set[RowKey] | None = None, timeout: float = 60.0) -> float | None:
    """When (time.monotonic()) every expected row, or every row of `keys`, was found
    stored; None if they were not all there within `timeout`. A database error (it may be
    down) counts as "not yet"."""
    began = time.monotonic()
    while True:
        wanted = ledger.snapshot() if keys is None else keys
        try:
            if wanted <= set(found_rows(ledger.recipients)):
                return time.monotonic()
        except DatabaseError:
            connection.close()
        if time.monotonic() - began > timeout:
            return None
        time.sleep(0.25)


# Zero before the outbox exists (a checkout without the relay).
_OUTBOX_SQL = "SELECT CASE WHEN to_regclass('event_outbox') IS NULL THEN 0 ELSE (SELECT count(*) FROM event_outbox) END"


def wait_idle(redis_url: str, queue: str = "celery", timeout: float = 30.0, quiet: float = 1.5) -> bool:
    """Wait until nothing is left to do: the outbox empty, no task queued or held by a
    worker, for `quiet` seconds on end (late duplicates would show up by then)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    began = time.monotonic()
    calm_since: float | None = None
    while time.monotonic() - began < timeout:
        try:
            with connection.cursor() as cursor:
                cursor.execute(_OUTBOX_SQL)
                outbox = cursor.fetchone()[0]
            busy = outbox or client.llen(queue) or client.hlen("unacked")
        except (DatabaseError, redis.RedisError):
            connection.close()
            busy = True
        if busy:
            calm_since = None
        elif calm_since is None:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return True
        time.sleep(0.25)
    return False


# --- the producer's stream -------------------------------------------------------------

Make = Callable[[int], tuple[str, dict[str, Any], list[RowKey]]]


def upload_event(names: str, recipients: list[str]) -> Make:
    """Owner events: graph n uploaded by (and told to) one of the recipients in turn."""
    def make(n: int) -> tuple[str, dict[str, Any], list[RowKey]]:
        owner, name = recipients[n % len(recipients)], f"{names}-{n}"
        message = {"owner_email": owner, "message": f"New graph {name} uploaded.", "resource": "graph",
                   "resource_id": n + 1, "resource_name": name, "type": "upload"}
        return "owner", message, [owner_row("upload", "graph", name, owner)]
    return make


class Stream(threading.Thread):
    """Events through the real producer, each in a transaction of its own, as actions make
    them: `send_message` inside `transaction.atomic()`. Paced to `rate` events a second
    (None: as fast as it goes); runs until `total` events or until stopped. An event whose
    transaction fails (the database is down) is not acknowledged and expected by nobody."""

    def __init__(self, ledger: Ledger, make: Make, *, total: int | None, rate: float | None) -> None:
        super().__init__(daemon=True)
        self.ledger, self.make, self.total, self.rate = ledger, make, total, rate
        self.halt = threading.Event()
        self.sent = 0
        self.event_ids: dict[int, str] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        began = time.monotonic()
        n = 0
        try:
            while not self.halt.is_set() and (self.total is None or n < self.total):
                if self.rate:
                    ahead = began + n / self.rate - time.monotonic()
                    if ahead > 0:
                        self.halt.wait(ahead)
                topic, message, rows = self.make(n)
                try:
                    with transaction.atomic():
                        event = send_message(topic, message)
                except DatabaseError:
                    self.ledger.refuse()
                    connection.close()
                    self.halt.wait(0.2)
                else:
                    self.event_ids[n] = str(event.event_id)
                    self.ledger.ack(rows)
                n += 1
                self.sent = n
        except BaseException as error:  # reported by the experiment, not lost in a thread
            self.error = error
        finally:
            connection.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(60)


# --- the REST API v1 -------------------------------------------------------------------

class Api:
    """API v1 as a client speaks it: Basic auth, JSON bodies, over real HTTP."""

    def __init__(self, base_url: str, email: str, password: str = PASSWORD, timeout: float = 15.0) -> None:
        self.base_url = base_url
        self.auth = "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()
        self.timeout = timeout

    def call(self, method: str, path: str, data: dict[str, Any] | None = None) -> tuple[int, Any]:
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(
            f"{self.base_url}/api/v1/{path}", data=body, method=method,
            headers={"Authorization": self.auth, "Accept": "application/json", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text
        except (urllib.error.URLError, OSError) as error:
            return 0, str(error)

    def upload(self, name: str) -> tuple[int, Any]:
        graph = {"data": {"name": name}, "elements": {"nodes": [{"data": {"id": "a"}}, {"data": {"id": "b"}}],
                                                      "edges": [{"data": {"source": "a", "target": "b"}}]}}
        return self.call("POST", "graphs/", {"name": name, "graph_json": graph})
