"""Storage and the reads a page makes, against django-notifications-hq on the same data.

2,000,000 notifications (BENCH_ROWS) written through the real write path (persist_events:
owner events to 2,000 users, shares into 40 groups of 50 members), among them 50,000 for one
user ("heavy") and about 10,000 for another ("reader"). The same rows are then copied into a
table with django-notifications-hq 1.8's schema and indexes (its notifications_notification:
generic actor and target, verb, description, data, and its indexes on unread, timestamp,
public, deleted, emailed and (recipient, unread)), and each measurement runs the query hq
runs for it. ANALYZE, no VACUUM: both tables as a live database has them after a burst.
Prints figures; asserts only that both sides agree on the counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from django.db import connection

from benchmarks.record import p50_p99, record
from graphspace.models import Group, GroupMember, MembershipSpan, User
from notifications import marking
from notifications.events import Event, new_event
from notifications.persist import persist_events
from notifications.queries import Filters, cluster_page, unread_count
from notifications.serializers import cluster_json

ROWS = int(os.environ.get("BENCH_ROWS", "2000000"))
USERS, GROUPS, MEMBERS = 2000, 40, 50
OWNER_PER_BATCH, SHARES_PER_BATCH = 400, 20
ROWS_PER_BATCH = OWNER_PER_BATCH + SHARES_PER_BATCH * MEMBERS
HEAVY, READER = "heavy@example.com", "reader@example.com"
TYPES = [("upload", "graph"), ("update", "graph"), ("create", "layout"), ("update", "layout"), ("delete", "graph")]

# django-notifications-hq 1.8 (models in notifications/base/models.py, migrations 0001-0009),
# as Django creates it on PostgreSQL; the content-type foreign keys keep their indexes.
HQ_TABLE = """
CREATE TABLE hq_notification (
  id serial PRIMARY KEY, level varchar(20) NOT NULL, recipient_id bigint NOT NULL, unread boolean NOT NULL,
  actor_content_type_id integer NOT NULL, actor_object_id varchar(255) NOT NULL, verb varchar(255) NOT NULL,
  description text NULL, target_content_type_id integer NULL, target_object_id varchar(255) NULL,
  action_object_content_type_id integer NULL, action_object_object_id varchar(255) NULL,
  timestamp timestamptz NOT NULL, public boolean NOT NULL, deleted boolean NOT NULL, emailed boolean NOT NULL,
  data text NULL);
CREATE INDEX hq_recipient ON hq_notification (recipient_id);
CREATE INDEX hq_unread ON hq_notification (unread);
CREATE INDEX hq_actor_ct ON hq_notification (actor_content_type_id);
CREATE INDEX hq_target_ct ON hq_notification (target_content_type_id);
CREATE INDEX hq_action_ct ON hq_notification (action_object_content_type_id);
CREATE INDEX hq_timestamp ON hq_notification (timestamp);
CREATE INDEX hq_public ON hq_notification (public);
CREATE INDEX hq_deleted ON hq_notification (deleted);
CREATE INDEX hq_emailed ON hq_notification (emailed);
CREATE INDEX hq_recipient_unread ON hq_notification (recipient_id, unread);
"""

HQ_COPY = """
INSERT INTO hq_notification (level, recipient_id, unread, actor_content_type_id, actor_object_id, verb, description,
  target_content_type_id, target_object_id, timestamp, public, deleted, emailed, data)
SELECT 'info', u.id, NOT n.is_read, 1, coalesce(a.id, 0)::text, n.type, n.message, 2, n.resource_id::text,
       n.created_at, true, false, false, json_build_object('resource', n.resource, 'name', n.resource_name)::text
  FROM (SELECT owner_email AS r, actor_email, type, message, resource, resource_id, resource_name, created_at, is_read, id, 0 AS t
          FROM owner_notification
        UNION ALL
        SELECT member_email, actor_email, type, message, resource, resource_id, resource_name, created_at, is_read, id, 1
          FROM group_notification) AS n
  JOIN "user" u ON u.email = n.r LEFT JOIN "user" a ON a.email = n.actor_email
 ORDER BY n.created_at, n.t, n.id
"""


def fill() -> int:
    """Write ROWS notifications through persist_events; return how many were stored."""
    User.objects.bulk_create([User(email=f"b{i}@example.com", password="!") for i in range(USERS)]
                             + [User(email=HEAVY, password="!"), User(email=READER, password="!")])
    users = list(User.objects.filter(email__startswith="b").order_by("id"))
    heavy = User.objects.get(email=HEAVY)
    groups = Group.objects.bulk_create([Group(name=f"Lab {g}", owner=users[g * MEMBERS]) for g in range(GROUPS)])
    members, spans = [], []
    for g, group in enumerate(groups):
        people = users[g * MEMBERS:(g + 1) * MEMBERS] + ([heavy] if g < 2 else [])
        members += [GroupMember(group=group, user=u) for u in people]
        spans += [MembershipSpan(group=group, user=u, joined_seq=i + 1) for i, u in enumerate(people)]
        group.membership_seq = len(people)
    GroupMember.objects.bulk_create(members)
    MembershipSpan.objects.bulk_create(spans)
    Group.objects.bulk_update(groups, ["membership_seq"])
    batches = max(1, ROWS // ROWS_PER_BATCH)
    heavy_owner = max(0, (ROWS // 40) // batches - 1)  # one share a batch reaches heavy too
    reader_owner = max(1, min(10_000, ROWS // 200) // batches)
    stored = 0
    n = 0
    for b in range(batches):
        events: list[Event] = []
        for k in range(OWNER_PER_BATCH):
            n += 1
            owner = HEAVY if k < heavy_owner else READER if k < heavy_owner + reader_owner else users[n % USERS].email
            kind, resource = TYPES[(n // 7) % len(TYPES)]
            events.append(new_event("owner", {
                "owner_email": owner, "actor_email": users[(n * 7) % USERS].email, "message": "m",
                "resource": resource, "resource_id": n, "resource_name": f"Graph {n}", "type": kind}))
        for s in range(SHARES_PER_BATCH):
            n += 1
            group = groups[(b * SHARES_PER_BATCH + s) % GROUPS]
            # A few members of each group do the sharing, as in a lab.
            actor = users[((b * SHARES_PER_BATCH + s) % GROUPS) * MEMBERS + b % 3].email
            events.append(new_event("group", {
                "group_id": group.id, "owner_email": actor, "actor_email": actor, "message": "m",
                "resource": "graph", "resource_id": n, "resource_name": f"Shared {n}", "type": "share",
                "membership_seq": group.membership_seq}))
        stored += persist_events(events).created
    with connection.cursor() as cursor:
        cursor.execute(HQ_TABLE)
        cursor.execute(HQ_COPY)
        cursor.execute("ANALYZE")
    return stored


def size(relations: list[str]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(pg_total_relation_size(r::regclass)) FROM unnest(%s::text[]) AS r", [relations])
        return int(cursor.fetchone()[0])


def breakdown(relations: list[str], rows: int) -> str:
    """Bytes per notification of each table's heap (with TOAST) and of each of its indexes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_table_size(c.oid), NULL FROM pg_class c WHERE c.relname = ANY(%s) "
            "UNION ALL SELECT i.relname, pg_relation_size(i.oid), t.relname FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname = ANY(%s) ORDER BY 3 NULLS FIRST, 1", [relations, relations])
        return "; ".join(f"{name} {size / rows:.0f}" for name, size, _ in cursor.fetchall())


def samples(fn: Callable[[], Any], runs: int, reset: Callable[[], Any] | None = None) -> list[float]:
    fn()
    out = []
    for _ in range(runs):
        if reset:
            reset()
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def one(sql: str, params: list[Any]) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_bench_storage_count_page_and_mark_all_read_against_django_notifications_hq(transactional_db: None) -> None:
    started = time.perf_counter()
    stored = fill()
    took = time.perf_counter() - started
    print(f"\nfilled {stored} notifications through persist_events in {took:.0f}s ({stored / took:.0f} rows/s)")
    (hq_rows,) = one("SELECT count(*) FROM hq_notification", [])[0]
    assert hq_rows == stored
    ours = size(["owner_notification", "group_notification", "notification_cluster", "notification_unread_count"])
    theirs = size(["hq_notification"])
    print("bytes per notification, by relation:", breakdown(
        ["owner_notification", "group_notification", "notification_cluster", "notification_unread_count"], stored))
    record("storage", "bytes stored per notification (tables + indexes)",
           f"{ours / stored:.0f} (hq {theirs / stored:.0f})", baseline="603 (hq 238)", target="<= 350",
           note=f"{stored:,} rows")

    heavy, reader = User.objects.get(email=HEAVY), User.objects.get(email=READER)
    heavy_rows = unread_count(HEAVY)
    (hq_heavy,) = one("SELECT count(*) FROM hq_notification WHERE recipient_id = %s AND unread", [heavy.id])[0]
    assert heavy_rows == hq_heavy
    mine = samples(lambda: unread_count(HEAVY), 500)
    hq = samples(lambda: one("SELECT count(*) FROM hq_notification WHERE recipient_id = %s AND unread", [heavy.id]), 500)
    ratio = sorted(mine)[len(mine) // 2] / sorted(hq)[len(hq) // 2]
    record("reads", f"unread count, user with {heavy_rows:,} of {stored:,}",
           f"{p50_p99(mine)}; hq {p50_p99(hq)}; {ratio:.2f}x hq", baseline="0.83x hq", target="<= 0.2x hq")

    def first_page() -> None:
        views, _ = cluster_page(heavy, Filters(), None, 20)
        [cluster_json(v, heavy.email) for v in views]

    mine = samples(first_page, 200)
    hq = samples(lambda: one("SELECT * FROM hq_notification WHERE recipient_id = %s ORDER BY timestamp DESC LIMIT 20",
                             [heavy.id]), 200)
    record("reads", "first page (20 clusters as served / hq: 20 rows)", f"{p50_p99(mine)}; hq {p50_p99(hq)}")

    reader_rows = unread_count(READER)

    def unread_again() -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE owner_notification SET is_read = false WHERE owner_email = %s AND is_read", [READER])
            cursor.execute("UPDATE notification_cluster SET unread = size WHERE recipient_id = %s", [reader.id])
            cursor.execute("UPDATE hq_notification SET unread = true WHERE recipient_id = %s AND NOT unread", [reader.id])

    changed: list[int] = []
    mine = samples(lambda: changed.append(marking.mark_all(reader, Filters())), 30, reset=unread_again)
    assert changed[-1] == reader_rows and unread_count(READER) == 0
    hq = samples(lambda: one("UPDATE hq_notification SET unread = false WHERE recipient_id = %s AND unread "
                             "RETURNING id", [reader.id]), 30, reset=unread_again)
    record("writes", f"mark-all-read of {reader_rows:,}", f"{p50_p99(mine)}; hq {p50_p99(hq)}",
           baseline="424 ms p50 (hq 269)", target="<= 200 ms p99")
