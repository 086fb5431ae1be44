"""Write a batch of events as notification rows: bulk, idempotent, clustered, one transaction.

Group recipients are the members as of the action: each group event carries the group's
membership number when it committed, and the members of that moment are read from the
membership spans (graphspace/models.py: MembershipSpan), however late the batch is processed.
Watching recipients are the watchers as of the action, the same way: each watching event
carries the watch number when it committed, and the watches on at that number are read from
notification_watch (notifications/models.py: Watch). Preferences and group mutes are read as
of processing (a person who just turned something off expects it off), with the recipients'
ids, and applied by the pure rules of notifications/recipients.py.

Query budget for a batch, whatever its size: lock the groups, read their members (also those
of the groups a watching event's action told), read the watchers (only for a batch with
watching events), read (and key-share lock) the recipients with their preferences and mutes,
skip rows already stored (one query per table the batch writes), read the open clusters, and only if
some recipient needs a new cluster lock those recipients and read their clusters again;
create the new clusters, lock the recipients' unread counters, insert the rows (their
triggers add to the counters), update the clusters' counts.
"""

from __future__ import annotations

import gc
import json
import logging
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg import pq

from graphspace.models import Group, MembershipSpan, User
from notifications import dead_letters
from notifications.clustering import Pair, Span, cluster_key, place
from notifications.events import Event
from notifications.messages import message_for
from notifications.models import DeadLetter, Watch
from notifications.queries import prepared_cursor
from notifications.recipients import Preferences, keep, recipients, watching_recipients

log = logging.getLogger(__name__)

# Errors a later attempt can cure (the database restarting, a dropped connection, a deadlock
# or a serialisation failure): the whole batch is retried. Anything else is about the data.
TRANSIENT_DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)

# The columns each row brings, with their SQL types: every column travels as one array
# (INSERT ... SELECT FROM unnest), so a statement has the same 13 or 15 parameters for 1 row
# or 10,000 and psycopg never has to parse a statement with a placeholder per value (that
# parsing was half the time of a 10,000-member share: docs/storage.md).
_COMMON = (
    ("event_id", "uuid"), ("message", "text"), ("type", "text"), ("resource", "text"),
    ("resource_id", "bigint"), ("resource_name", "text"), ("actor_email", "text"),
    ("occurred_at", "timestamptz"), ("cluster_id", "bigint"),
)
OWNER_COLUMNS = _COMMON + (("owner_email", "text"),)
GROUP_COLUMNS = _COMMON + (("member_email", "text"), ("owner_email", "text"), ("group_id", "bigint"))
WATCHING_COLUMNS = _COMMON + (("watcher_email", "text"), ("graph_id", "bigint"))
COLUMNS = {"owner": OWNER_COLUMNS, "group": GROUP_COLUMNS, "watching": WATCHING_COLUMNS}
TABLES = {
    "owner": ("owner_notification", "owner_email"),
    "group": ("group_notification", "member_email"),
    "watching": ("watching_notification", "watcher_email"),
}


@dataclass
class PersistResult:
    owner_ids: list[int] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)
    watching_ids: list[int] = field(default_factory=list)
    # Recipients that are not GraphSpace users (an event about an unknown email).
    unknown_recipients: set[str] = field(default_factory=set)
    # Events the database refused, kept as dead letters.
    refused: int = 0
    # The user ids of the recipients of the rows written (a superset when some were stored
    # already): the task asks whether any of them has a page open before it broadcasts.
    recipient_ids: set[int] = field(default_factory=set)

    @property
    def created(self) -> int:
        return len(self.owner_ids) + len(self.group_ids) + len(self.watching_ids)

    def ids(self, topic: str) -> list[int]:
        return {"owner": self.owner_ids, "group": self.group_ids, "watching": self.watching_ids}[topic]

    def merge(self, other: PersistResult) -> PersistResult:
        return PersistResult(
            self.owner_ids + other.owner_ids, self.group_ids + other.group_ids,
            self.watching_ids + other.watching_ids,
            self.unknown_recipients | other.unknown_recipients, self.refused + other.refused,
            self.recipient_ids | other.recipient_ids,
        )


@dataclass
class Planned:
    event: Event
    recipient: str
    key: str
    cluster_id: int | None = None


# A batch with at most this many rows (and events) runs its statements prepared: PostgreSQL
# plans each once per worker connection instead of once per batch. A batch of 10 owner events
# spent about a third of its statements' time planning them (docs/latency.md). Larger ones
# plan each time: a prepared statement would soon run a generic plan, made without knowing
# how many values its arrays hold, and a 10,000-member share is not the place for that.
PREPARE_MAX_ROWS = 100
_prepare: ContextVar[bool] = ContextVar("persist_prepare", default=False)


def binary_cursor(binary_results: bool = False) -> Any:
    """A cursor that binds parameters on the server in binary (psycopg's Cursor and %b).
    Django's own cursor binds on the client: it renders each array of a 10,000-row batch as
    SQL text in Python, which cost 100-200 ms per array against 19 ms this way (measured in
    docs/storage.md). Wrapped as Django wraps its cursors, so query logging, execute
    wrappers and the tests' query budgets see these statements too. Within a small batch
    (`_prepare`), the statements are also prepared (queries.prepared_cursor)."""
    if _prepare.get():
        return prepared_cursor(binary=binary_results)
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    if binary_results:
        # Results in binary too: 10,000 timestamps parsed from text cost 200 ms.
        cursor.format = pq.Format.BINARY
    return connection._prepare_cursor(cursor)  # type: ignore[attr-defined]


def window() -> timedelta:
    return timedelta(minutes=settings.NOTIFICATION_CLUSTER_WINDOW_MINUTES)


def span() -> timedelta:
    return timedelta(hours=settings.NOTIFICATION_CLUSTER_SPAN_HOURS)


# The members of each (group, membership number) asked for: the spans that had begun by
# that number and not yet ended (group_membership_span, index membership_span_group). A
# null number (an event from a producer that does not send one) means the members now.
_MEMBERS_SQL = f"""
SELECT r.group_id, r.seq, u.email
  FROM unnest(%b::bigint[], %b::bigint[]) AS r(group_id, seq)
  JOIN "{MembershipSpan._meta.db_table}" s ON s.group_id = r.group_id
       AND (s.left_seq IS NULL OR s.left_seq > r.seq)
       AND (r.seq IS NULL AND s.left_seq IS NULL OR s.joined_seq <= r.seq)
  JOIN "{User._meta.db_table}" u ON u.id = s.user_id
"""

MembersAt = tuple[int, int | None]


def _group_members(wanted: Iterable[MembersAt]) -> dict[MembersAt, list[str]]:
    """Members per (group, membership number), read after a key-share lock on each group:
    the group cannot be deleted until this transaction ends (its rows reference it), while
    adds, removes and edits go on. Groups that no longer exist are left out."""
    wanted = sorted(set(wanted), key=lambda w: (w[0], -1 if w[1] is None else w[1]))
    if not wanted:
        return {}
    with binary_cursor() as cursor:
        cursor.execute(
            f'SELECT id FROM "{Group._meta.db_table}" WHERE id = ANY(%b::bigint[]) ORDER BY id FOR KEY SHARE',
            [sorted({gid for gid, _ in wanted})],
        )
        existing = {row[0] for row in cursor.fetchall()}
        asked = [w for w in wanted if w[0] in existing]
        members: dict[MembersAt, list[str]] = {w: [] for w in asked}
        if asked:
            cursor.execute(_MEMBERS_SQL, [[gid for gid, _ in asked], [seq for _, seq in asked]])
            for gid, seq, email in cursor.fetchall():
                members[(gid, seq)].append(email)
    return members


# The watchers of each (resource, id, watch number) asked for: the watches begun by that
# number and not yet ended (notification_watch, index watch_by_resource); the same rule as
# recipients.watched_at. A null number means the watches open now.
_WATCHERS_SQL = f"""
SELECT r.resource, r.resource_id, r.seq, u.email
  FROM unnest(%b::text[], %b::bigint[], %b::bigint[]) AS r(resource, resource_id, seq)
  JOIN "{Watch._meta.db_table}" w ON w.resource = r.resource AND w.resource_id = r.resource_id
       AND (w.ended_seq IS NULL OR w.ended_seq > r.seq)
       AND (r.seq IS NULL AND w.ended_seq IS NULL OR w.started_seq <= r.seq)
  JOIN "{User._meta.db_table}" u ON u.id = w.user_id
"""

WatchersAt = tuple[str, int, int | None]


def _watched(event: Event) -> list[WatchersAt]:
    """Whose watchers hear of a watching event: the graph's, and the layout's for a layout."""
    assert event.graph_id is not None
    wanted: list[WatchersAt] = [(Watch.GRAPH, event.graph_id, event.watch_seq)]
    if event.resource == "layout":
        wanted.append((Watch.LAYOUT, event.resource_id, event.watch_seq))
    return wanted


def _watchers(wanted: Iterable[WatchersAt]) -> dict[WatchersAt, list[str]]:
    """Watchers per (resource, id, watch number), in one query."""
    asked = sorted(set(wanted), key=lambda w: (w[0], w[1], -1 if w[2] is None else w[2]))
    found: dict[WatchersAt, list[str]] = {w: [] for w in asked}
    if not asked:
        return found
    with binary_cursor() as cursor:
        cursor.execute(_WATCHERS_SQL, [[w[0] for w in asked], [w[1] for w in asked], [w[2] for w in asked]])
        for resource, resource_id, seq, email in cursor.fetchall():
            found[(resource, resource_id, seq)].append(email)
    return found


# The recipients, key-share locked, with what they turned off for the site and the groups
# they muted: preferences cost no query of their own.
_RECIPIENTS_SQL = f"""
SELECT u.email, u.id,
       ARRAY(SELECT p.kind || '.' || p.type FROM notification_preference p WHERE p.user_id = u.id AND NOT p.site),
       ARRAY(SELECT m.group_id FROM notification_group_mute m WHERE m.user_id = u.id)
  FROM "{User._meta.db_table}" u WHERE u.email = ANY(%b::text[]) ORDER BY u.id FOR KEY SHARE OF u
"""


def _lock_recipients(emails: Sequence[str]) -> datetime:
    """Serialise cluster assignment per recipient: two workers writing for the same user at
    once would otherwise both see no open cluster and open two for the same key. Locks are
    taken in sorted order in one statement, so two batches cannot deadlock on them.

    Returns the database's clock read after the locks are held: the arrival time of the
    batch, so a batch that waited for another one arrives after it."""
    with binary_cursor() as cursor:
        cursor.execute(
            "SELECT count(*), clock_timestamp() FROM (SELECT pg_advisory_xact_lock(hashtext('notification-cluster:' || e)) "
            "FROM unnest(%b::text[]) AS e ORDER BY e) AS locks",
            [sorted(emails)],
        )
        return cursor.fetchone()[1]


def _stored_sql(topic: str) -> str:
    """The (event, recipient) rows of these events that a table holds already."""
    table, column = TABLES[topic]
    return f'SELECT event_id, "{column}" FROM "{table}" WHERE event_id = ANY(%b::uuid[])'


def _recipients_and_stored(
    emails: set[str], event_ids: dict[str, list[uuid.UUID]],
) -> tuple[dict[str, int], dict[str, Preferences], set[tuple[uuid.UUID, str]]]:
    """The recipients' user ids and site preferences (only non-default ones are returned),
    under a key-share lock: a user deleted meanwhile waits for this transaction (and then
    takes its rows along) instead of failing it. With them, the rows already stored of each
    topic's events. In one round trip: the statements do not depend on each other, so they go
    to PostgreSQL together in pipeline mode (with the transaction's BEGIN) and their results
    come back together. A small batch made a round trip each, and on a loaded machine every round trip
    also waits for the worker and the database's process to get a core again."""
    if not emails:
        return {}, {}, set()
    with ExitStack() as stack:
        cursors = [stack.enter_context(binary_cursor()) for _ in range(1 + len(event_ids))]
        with connection.wrap_database_errors, connection.connection.pipeline():
            cursors[0].execute(_RECIPIENTS_SQL, [sorted(emails)])
            for cursor, (topic, ids) in zip(cursors[1:], event_ids.items(), strict=True):
                cursor.execute(_stored_sql(topic), [ids])
        user_ids: dict[str, int] = {}
        prefs: dict[str, Preferences] = {}
        for email, uid, site_off, muted in cursors[0].fetchall():
            user_ids[email] = uid
            if site_off or muted:
                prefs[email] = Preferences(site_off=frozenset(site_off), muted_groups=frozenset(muted))
        stored = {(row[0], row[1]) for cursor in cursors[1:] for row in cursor.fetchall()}
    return user_ids, prefs, stored


def _open_clusters(pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], tuple[int, Span]]:
    """The newest cluster of each (recipient, key): one step down the cluster_by_key index per
    pair, however many clusters of that key the recipient collected over the years."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    with binary_cursor(binary_results=True) as cursor:
        cursor.execute(
            "SELECT p.uid, p.key, c.id, c.first_at, c.last_at FROM unnest(%b::bigint[], %b::text[]) AS p(uid, key) "
            "CROSS JOIN LATERAL (SELECT id, first_at, last_at FROM notification_cluster "
            "WHERE recipient_id = p.uid AND key = p.key ORDER BY id DESC LIMIT 1) AS c",
            [[uid for uid, _ in wanted], [key for _, key in wanted]],
        )
        return {(uid, key): (cid, Span(first, last)) for uid, key, cid, first, last in cursor.fetchall()}


def _create_clusters(pairs: list[Pair], rows: dict[Pair, list[Planned]], now: datetime) -> dict[Pair, int]:
    """One new cluster per pair, holding its rows' count already (one INSERT of arrays, bound
    in binary: the ORM's bulk_create of 10,000 clusters cost 1.2 s, 0.6 s of it compiling
    the statement). `_count_into_clusters` corrects a count only where some rows turned out
    to be stored already."""
    if not pairs:
        return {}
    firsts = [rows[pair][0].event for pair in pairs]
    sizes = [len(rows[pair]) for pair in pairs]
    with binary_cursor() as cursor:
        cursor.execute(
            "INSERT INTO notification_cluster (recipient_id, key, topic, type, resource, group_id, actor_email, size, "
            "unread, first_at, last_at, created_at) SELECT *, %b, %b, %b FROM unnest(%b::bigint[], %b::text[], "
            "%b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[], %b::int[], %b::int[]) "
            "RETURNING id, recipient_id, key",
            [now, now, now, [uid for uid, _ in pairs], [key for _, key in pairs],
             [e.topic for e in firsts], [e.type for e in firsts], [e.resource for e in firsts],
             [e.group_id for e in firsts],
             [(e.actor or "") if e.topic in ("group", "watching") else "" for e in firsts], sizes, sizes],
        )
        return {(uid, key): cid for cid, uid, key in cursor.fetchall()}


def _assign_clusters(planned: list[Planned], user_ids: dict[str, int], now: datetime) -> tuple[dict[int, int], datetime]:
    """Give every planned row its cluster, creating the clusters it needs. Returns the
    clusters created (id -> the rows planned into it) and the batch's arrival time.

    Only a recipient who needs a new cluster is locked: two workers writing for one user at
    once would otherwise both see no open cluster and open two for one key. Rows that join an
    open cluster need no lock (their counts are added in one UPDATE at the end), so batches
    for the same busy recipients run side by side instead of in a convoy. Once locked, those
    recipients' open clusters are read again: another worker may have opened one meanwhile."""
    by_pair: dict[Pair, list[Planned]] = defaultdict(list)
    for p in planned:
        by_pair[(user_ids[p.recipient], p.key)].append(p)
    joins, needing = place(by_pair, _open_clusters(by_pair), now, window=window(), span=span())
    created: dict[int, int] = {}
    if needing:
        email_of = {uid: email for email, uid in user_ids.items()}
        now = _lock_recipients(sorted({email_of[uid] for uid, _ in needing}))
        again, new = place(needing, _open_clusters(needing), now, window=window(), span=span())
        joins.update(again)
        for pair, cid in _create_clusters(new, by_pair, now).items():
            joins[pair] = cid
            created[cid] = len(by_pair[pair])
    for pair, rows in by_pair.items():
        cid = joins[pair]
        for p in rows:
            p.cluster_id = cid
    return created, now


def _event_values(e: Event) -> tuple[Any, ...]:
    """An event's own columns (its topic's COLUMNS but the cluster and the recipient), the same
    for all its recipients, in that order."""
    row = (e.event_id, e.message, e.type, e.resource, e.resource_id, e.resource_name, e.actor, e.occurred_at)
    if e.topic == "group":
        return row + (e.actor, e.group_id)
    if e.topic == "watching":
        return row + (e.graph_id,)
    return row


def _lock_counters(emails: set[str]) -> None:
    """Lock the recipients' unread counters (creating missing ones) in email order, before
    the inserts whose triggers add to them. Needed only when a batch inserts into both
    tables: the owner rows' and then the group rows' statements would lock them in two
    sorted runs, and two such batches could deadlock. One statement's trigger locks in order."""
    with binary_cursor() as cursor:
        cursor.execute(
            "INSERT INTO notification_unread_count (recipient_email, count) "
            "SELECT e, 0 FROM unnest(%b::text[]) AS e ORDER BY e "
            "ON CONFLICT (recipient_email) DO UPDATE SET count = notification_unread_count.count",
            [sorted(emails)],
        )


def _insert(topic: str, planned: list[Planned], now: datetime) -> list[tuple[int, int]]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, cluster_id: only new rows come back,
    so a redelivered batch returns nothing and changes nothing.

    What an event's rows share travels once per event, and per row only the recipient, the
    cluster and a message of its own where it has one (the removed member's): the rows are
    joined to their event by its position. A 10,000-member share sent 13 arrays of 10,000
    values, a fifth of its time spent encoding them."""
    table, column = TABLES[topic]
    shared = [(name, kind) for name, kind in COLUMNS[topic] if name not in ("cluster_id", column)]
    position: dict[uuid.UUID, int] = {}
    events: list[tuple[Any, ...]] = []
    at: list[int] = []
    recipients: list[str] = []
    clusters: list[int | None] = []
    messages: list[str | None] = []
    for p in planned:
        e = p.event
        n = position.get(e.event_id)
        if n is None:
            n = position[e.event_id] = len(events) + 1
            events.append(_event_values(e))
        at.append(n)
        recipients.append(p.recipient)
        clusters.append(p.cluster_id)
        message = message_for(e, p.recipient)
        messages.append(None if message == e.message else message)
    names = ", ".join(f'"{name}"' for name, _ in COLUMNS[topic])
    values = ", ".join(
        "r.cluster_id" if name == "cluster_id" else "r.recipient" if name == column
        else "COALESCE(r.message, e.message)" if name == "message" else f'e."{name}"'
        for name, _ in COLUMNS[topic]
    )
    arrays = ", ".join(f"%b::{kind}[]" for _, kind in shared)
    aliases = ", ".join(f'"{name}"' for name, _ in shared)
    with binary_cursor(binary_results=True) as cursor:
        cursor.execute(
            f'INSERT INTO "{table}" ({names}, "is_read", "is_email_sent", "created_at", "updated_at") '
            f"SELECT {values}, false, false, %b, %b "
            f"FROM unnest(%b::int[], %b::text[], %b::bigint[], %b::text[]) AS r(n, recipient, cluster_id, message) "
            f"JOIN unnest({arrays}) WITH ORDINALITY AS e({aliases}, n) ON e.n = r.n "
            # On the table's once key: (event, recipient), or the event alone for owner rows.
            'ON CONFLICT DO NOTHING RETURNING "id", "cluster_id"',
            [now, now, at, recipients, clusters, messages, *(list(values) for values in zip(*events, strict=True))],
        )
        return [(r[0], r[1]) for r in cursor.fetchall()]


def _count_into_clusters(inserted: list[tuple[int, int]], now: datetime, created: dict[int, int]) -> None:
    """Add the rows really inserted to the existing clusters' size and unread count. A new
    cluster was created with its planned count: only where fewer of its rows were inserted
    (another delivery of the batch stored some meanwhile) is it corrected, or dropped if
    none were."""
    per_cluster: dict[int, int] = defaultdict(int)
    for _, cid in inserted:
        per_cluster[cid] += 1
    add = {cid: n for cid, n in per_cluster.items() if cid not in created}
    for cid, planned in created.items():
        if 0 < per_cluster.get(cid, 0) != planned:
            add[cid] = per_cluster[cid] - planned
    with binary_cursor() as cursor:
        if add:
            # Rows locked in id order first: two batches adding to the same clusters wait for
            # each other here (the last step before commit) and never deadlock.
            ids = sorted(add)
            cursor.execute(
                "WITH locked AS (SELECT id FROM notification_cluster WHERE id = ANY(%b::bigint[]) ORDER BY id "
                "FOR NO KEY UPDATE) UPDATE notification_cluster AS c SET size = c.size + v.n, unread = c.unread + v.n, "
                "last_at = GREATEST(c.last_at, %b) FROM unnest(%b::bigint[], %b::int[]) AS v(id, n), locked "
                "WHERE c.id = v.id AND locked.id = v.id",
                [ids, now, ids, [add[i] for i in ids]],
            )
        empty = [cid for cid in created if cid not in per_cluster]
        if empty:
            # Opened by this transaction, so nobody else has seen them.
            cursor.execute("DELETE FROM notification_cluster WHERE id = ANY(%b::bigint[])", [empty])


def _members_at(event: Event) -> MembersAt:
    assert event.group_id is not None
    return (event.group_id, event.membership_seq)


@dataclass(frozen=True)
class Part:
    """One of `count` disjoint shares of a batch's recipients, by a hash of the email. The
    parts of one large fan-out run in parallel, in different worker processes, and never
    write for the same recipient: no two of them wait for the same cluster, counter or
    advisory lock, so they cannot deadlock, and each is idempotent on its own through the
    unique (event, recipient) keys."""

    index: int
    count: int

    def holds(self, recipient: str) -> bool:
        return zlib.crc32(recipient.encode()) % self.count == self.index


@dataclass
class Split:
    """How a batch with many recipients is split, once: when its recipients number at least
    twice `part_min`, `hand_on(count)` is called (inside the transaction, before any write)
    to give parts 1 .. count-1 to other workers, and this call stores part 0 itself. If
    `hand_on` says it could not, this call stores every part (a part also handed on then
    stores nothing twice)."""

    hand_on: Callable[[int], bool]
    part_min: int
    parts_max: int
    part: Part | None = None

    def part_for(self, recipients: int) -> Part | None:
        if self.part is None:
            count = min(self.parts_max, recipients // max(1, self.part_min))
            if count > 1 and self.hand_on(count):
                self.part = Part(0, count)
        return self.part


def persist_batch(events: Sequence[Event], part: Part | None = None, split: Split | None = None) -> PersistResult:
    """Store every notification the events produce (only those of `part`'s recipients when
    given), in one transaction; return the ids of the new rows. Raises whatever the database
    raises: `persist_events` decides."""
    prepare = _prepare.set(len(events) <= PREPARE_MAX_ROWS)
    try:
        return _persist_batch(events, part, split)
    finally:
        _prepare.reset(prepare)


def _persist_batch(events: Sequence[Event], part: Part | None, split: Split | None) -> PersistResult:
    result = PersistResult()
    now = timezone.now()
    with transaction.atomic():
        watching = [e for e in events if e.topic == "watching"]
        members = _group_members(
            [_members_at(e) for e in events if e.topic == "group" and e.group_id is not None]
            + [pair for e in watching for pair in e.announced_groups]
        )
        watchers = _watchers(w for e in watching for w in _watched(e)) if watching else {}
        pairs: list[tuple[Event, str]] = []
        for event in events:
            if event.topic == "watching":
                told = [m for pair in event.announced_groups for m in members.get(pair, [])]
                audience = [w for at in _watched(event) for w in watchers[at]]
                pairs.extend((event, r) for r in watching_recipients(event, audience, told))
                continue
            if event.topic == "group" and _members_at(event) not in members:
                log.info("event %s: group %s no longer exists", event.event_id, event.group_id,
                         extra={"event_id": str(event.event_id)})
                continue
            group_members = members[_members_at(event)] if event.topic == "group" else []
            pairs.extend((event, r) for r in recipients(event, group_members))
        if part is None and split is not None:
            part = split.part_for(len(pairs))
        if part is not None:
            pairs = [(e, r) for e, r in pairs if part.holds(r)]
        # The group reads above had one value per event at most; the rest have one per row.
        _prepare.set(_prepare.get() and len(pairs) <= PREPARE_MAX_ROWS)
        emails = {r for _, r in pairs}
        event_ids = {topic: ids for topic in TABLES if (ids := list({e.event_id for e, _ in pairs if e.topic == topic}))}
        user_ids, prefs, stored = _recipients_and_stored(emails, event_ids)
        result.unknown_recipients = emails - set(user_ids)
        if prefs:
            pairs = [(e, r) for e, r in pairs if r not in prefs or keep(e, [r], prefs)]
        planned: list[Planned] = []
        keys: dict[uuid.UUID, str] = {}
        for event, recipient in pairs:
            if recipient not in user_ids or (event.event_id, recipient) in stored:
                continue
            stored.add((event.event_id, recipient))
            key = keys.get(event.event_id)
            if key is None:
                key = keys[event.event_id] = cluster_key(
                    topic=event.topic, type=event.type, resource=event.resource,
                    group_id=event.group_id if event.topic == "group" else None, actor=event.actor)
            planned.append(Planned(event, recipient, key))
        if planned:
            created, now = _assign_clusters(planned, user_ids, now)
            if len({p.event.topic for p in planned}) > 1:
                _lock_counters({p.recipient for p in planned})
            inserted: list[tuple[int, int]] = []
            for topic in TABLES:
                rows = [p for p in planned if p.event.topic == topic]
                if rows:
                    got = _insert(topic, rows, now)
                    inserted += got
                    result.ids(topic).extend(i for i, _ in got)
            _count_into_clusters(inserted, now, created)
            result.recipient_ids = {user_ids[p.recipient] for p in planned}
    if result.unknown_recipients:
        log.warning("no such users, not notified: %s", ", ".join(sorted(result.unknown_recipients)))
    return result


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a batch is stored. A 10,000-row batch
    allocates about a million objects and triggered full collections of the whole process
    all along the way: 400 of 1,320 ms (measured in benchmarks/test_bench_fanout.py). Persist
    makes no reference cycles worth collecting early; the collector runs again after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def persist_events(events: Sequence[Event], *, part: Part | None = None, split: Split | None = None) -> PersistResult:
    """Store what the events produce, isolating any event the database refuses.

    A transient error (the database away, a deadlock) is raised for the task to retry the
    whole batch; rows already stored make that retry change nothing. Any other error means
    some event in the batch can never be stored: the batch is split in halves and each half
    tried on its own, down to the single event, which becomes a dead letter with its reason.
    A batch of n events with one such event costs about 2·log2(n) extra transactions.

    `part`: store only that part's recipients. `split`: a batch with many recipients may be
    split into parts (Split), this call storing part 0.
    """
    with _gc_paused():
        return _persist(events, part, split)


def _persist(events: Sequence[Event], part: Part | None, split: Split | None) -> PersistResult:
    try:
        return persist_batch(events, part, split)
    except TRANSIENT_DATABASE_ERRORS:
        raise
    except Exception as error:
        if len(events) == 1:
            refuse(events[0], error)
            return PersistResult(refused=1)
        log.warning("batch of %d events refused (%r); splitting it", len(events), error)
    if part is None and split is not None:
        part = split.part
    middle = len(events) // 2
    first, second = _persist(events[:middle], part, split), _persist(events[middle:], part, split)
    return first.merge(second)


def refuse(event: Event, error: BaseException) -> None:
    """Keep an event the database refused as a dead letter, with the database's reason."""
    refuse_payload(event.to_task(), error)


def refuse_payload(data: Any, error: BaseException) -> None:
    """Keep a persist task's event (its JSON data) as a dead letter with the reason."""
    reason = f"{type(error).__name__}: {error}".strip()
    event_id = str(data.get("event_id", ""))[:64] if isinstance(data, dict) else ""
    topic = str(data.get("topic", ""))[:16] if isinstance(data, dict) else ""
    log.error("event %s cannot be stored: %s", event_id, reason, extra={"event_id": event_id})
    dead_letters.record([dead_letters.Letter(
        stage=DeadLetter.PERSIST, reason=reason, value=json.dumps(data, default=str).encode("utf-8"),
        topic=topic, event_id=event_id,
    )])
