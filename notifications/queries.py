"""Reading notifications: the unread count, pages of clusters, a cluster's items.

Every read is scoped to one recipient first, so another user's rows are never found, and
each page is one index range scan: the cursor is a (time, id) position, never an offset.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.postgresql.base import CursorDebugWrapper, ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django.db.models import Exists, OuterRef, Q, QuerySet

from graphspace.models import User
from notifications.models import GroupNotification, NotificationCluster, OwnerNotification, WatchingNotification

MAX_LIMIT = 100
PREVIEW = 3
TYPES = ("upload", "create", "update", "delete", "share", "unshare", "add", "remove")
RESOURCES = ("graph", "layout", "group", "group_member")
NotificationModel = type[OwnerNotification] | type[GroupNotification] | type[WatchingNotification]
Notification = OwnerNotification | GroupNotification | WatchingNotification
TABLE_MODEL: dict[str, NotificationModel] = {
    "owner": OwnerNotification, "group": GroupNotification, "watching": WatchingNotification,
}
# Each table's recipient column.
RECIPIENT_COLUMN = {OwnerNotification: "owner_email", GroupNotification: "member_email",
                    WatchingNotification: "watcher_email"}
TOPICS = tuple(TABLE_MODEL)


def topic_of(row: Notification) -> str:
    return "group" if isinstance(row, GroupNotification) else "watching" if isinstance(row, WatchingNotification) else "owner"


# Filters are parsed here for the API and the page alike: whatever passes fits its column.
FILTER_TEXT_MAX = 1000
BIGINT_MAX = 2**63 - 1
# since/until: dates every later computation can shift by a day without overflowing.
WHEN_MIN = datetime(1900, 1, 1, tzinfo=UTC)
WHEN_MAX = datetime(9999, 12, 31, tzinfo=UTC)


class BadFilter(ValueError):
    pass


class _PreparedCursor(ServerBindingCursor):
    """psycopg's cursor with the parameters bound by the server, each statement prepared on the
    connection the first time it runs there (psycopg keeps the names): PostgreSQL plans it once
    per connection, not once per request. The first page's statement took 1.0 ms to plan and
    0.07 ms to run (EXPLAIN ANALYZE, loaded machine); the web process's pooled connections live
    long. Django's own cursors bind on the client and never prepare."""

    # Results in PostgreSQL's binary format: psycopg reads those with its C loaders. In text,
    # every timestamp went through Django's timestamptz loader (psycopg's Python parser): a
    # third of the CPU of a 20-cluster page (80 timestamps).
    results_binary = False

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,  # type: ignore[override]
                binary: bool | None = None) -> Any:
        return super().execute(query, params, prepare=True, binary=self.results_binary or binary)


class _PreparedDebugWrapper(CursorDebugWrapper):
    """Django's query log (tests count and read it): a prepared statement runs by its name, so
    psycopg has no text of it to give back; the log gets the statement as written instead."""

    @contextmanager
    def debug_sql(self, sql: Any = None, params: Any = None, use_last_executed_query: bool = False,
                  many: bool = False) -> Iterator[None]:
        with super().debug_sql(sql, params, use_last_executed_query=False, many=many):
            yield


@contextmanager
def prepared_cursor(binary: bool = False) -> Iterator[CursorWrapper]:
    """A cursor for the site's hottest statements (the session, the user, the count, the first
    page), wrapped as Django wraps its own: errors become Django's, and tests count its queries.
    `binary`: results in binary format (timestamps then come in the connection's time zone,
    UTC, as ZoneInfo("UTC") instead of datetime.UTC; the same instants and the same text)."""
    # The connection of this thread, looked up once (each attribute of django.db.connection is
    # a lookup through the connection handler's thread-local).
    wrapper = connections[DEFAULT_DB_ALIAS]
    # What Django's own cursor() does first: a persistent connection (no pool) that broke since
    # the last request is replaced here rather than failing this request.
    wrapper.close_if_health_check_failed()
    wrapper.ensure_connection()
    db = wrapper.connection
    if db.prepare_threshold is None:
        # Django turns psycopg's preparing off (None); its own cursors bind on the client and
        # never prepare, whatever this says, so only these cursors do.
        db.prepare_threshold = 5
    with wrapper.wrap_database_errors:
        raw = _PreparedCursor(db)
        raw.results_binary = binary
    wrapper.validate_thread_sharing()
    cursor = _PreparedDebugWrapper(raw, wrapper) if wrapper.queries_logged else wrapper.make_cursor(raw)
    with cursor:
        yield cursor


def unread_counts(emails: list[str]) -> dict[str, int]:
    """Unread notifications per user: one primary-key read of the counter the database keeps
    (notifications/models.py: UnreadCount). A user with no row has none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e, COALESCE(c.count, 0) FROM unnest(%s::text[]) AS e"
            " LEFT JOIN notification_unread_count AS c ON c.recipient_email = e",
            [emails],
        )
        return {row[0]: int(row[1]) for row in cursor.fetchall()}


def unread_count(email: str) -> int:
    with prepared_cursor() as cursor:
        cursor.execute("SELECT count FROM notification_unread_count WHERE recipient_email = %s", [email])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def recipient_of(model: NotificationModel, user: User) -> Q:
    if model is OwnerNotification:
        return Q(owner_id=user.email)
    return Q(member_id=user.email) if model is GroupNotification else Q(watcher_id=user.email)


@dataclass(frozen=True)
class Filters:
    """What the notifications page and API filter by; every field optional."""

    unread_only: bool = False
    topic: str | None = None
    group_id: int | None = None
    type: str | None = None
    resource: str | None = None
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> Filters:
        def one(name: str) -> str | None:
            value = params.get(name)
            if value in (None, ""):
                return None
            text = str(value).strip()
            if "\x00" in text or len(text) > FILTER_TEXT_MAX:
                raise BadFilter(f"{name} must be text of at most {FILTER_TEXT_MAX} characters, without NUL.")
            return text

        state = one("state") or "all"
        if state not in ("all", "unread"):
            raise BadFilter("state must be 'all' or 'unread'.")
        topic = one("topic")
        if topic not in (None, *TOPICS):
            raise BadFilter("topic must be 'owner', 'group' or 'watching'.")
        kind, resource = one("type"), one("resource")
        if kind is not None and kind not in TYPES:
            raise BadFilter(f"type must be one of {', '.join(TYPES)}.")
        if resource is not None and resource not in RESOURCES:
            raise BadFilter(f"resource must be one of {', '.join(RESOURCES)}.")
        group_id = one("group_id")
        if group_id is not None and not (group_id.isascii() and group_id.isdigit() and int(group_id) <= BIGINT_MAX):
            raise BadFilter("group_id must be an integer.")
        return cls(
            unread_only=state == "unread", topic=topic, group_id=int(group_id) if group_id else None,
            type=kind, resource=resource, q=one("q"),
            since=_when(one("since"), "since"), until=_when(one("until"), "until", end_of_day=True),
        )

    def as_params(self) -> dict[str, str]:
        out = {"state": "unread" if self.unread_only else "all"}
        for name in ("topic", "group_id", "type", "resource", "q"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
        return out


def _when(value: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """A date (a whole day) or a datetime; naive values are UTC."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            moment = moment + timedelta(days=1) if end_of_day else moment
        else:
            moment = datetime.fromisoformat(value)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        raise BadFilter(f"{name} must be a date (YYYY-MM-DD) or an ISO-8601 time.") from None
    except OverflowError:  # until=9999-12-31 (its end is past datetime.max), or an offset past it
        moment = datetime.max.replace(tzinfo=UTC)
    if not WHEN_MIN <= moment <= WHEN_MAX:
        raise BadFilter(f"{name} must be between {WHEN_MIN:%Y-%m-%d} and {WHEN_MAX:%Y-%m-%d}.")
    return moment


def _kind(f: Filters) -> Q:
    """The filters clusters and items share: group, type and resource kind."""
    q = Q()
    if f.group_id is not None:
        q &= Q(group_id=f.group_id)
    if f.type:
        q &= Q(type=f.type)
    if f.resource:
        q &= Q(resource=f.resource)
    return q


def _text(words: str) -> Q:
    """Free text: in the resource's name, the stored message or the actor's email."""
    return Q(resource_name__icontains=words) | Q(message__icontains=words) | Q(actor_email__icontains=words)


def clusters(user: User, filters: Filters) -> QuerySet[NotificationCluster]:
    """This user's clusters that the filters show, newest first."""
    f = filters
    qs = NotificationCluster.objects.filter(_kind(f), recipient=user)
    if f.unread_only:
        qs = qs.filter(unread__gt=0)
    if f.topic:
        qs = qs.filter(topic=f.topic)
    if f.since:
        qs = qs.filter(last_at__gte=f.since)
    if f.until:
        qs = qs.filter(first_at__lt=f.until)
    if f.q:
        matches = Q()
        for topic, model in TABLE_MODEL.items():
            if f.topic in (None, topic):
                inner = model.objects.filter(recipient_of(model, user), _text(f.q), cluster_id=OuterRef("pk"))
                matches |= Q(Exists(inner))
        qs = qs.filter(matches)
    # The index gives the minute; the clusters of one minute are few and sorted by last_at.
    return qs.order_by("-last_minute", "-last_at", "-id")


# --- cursors ---------------------------------------------------------------------------

def encode_cursor(moment: datetime, key: int | str) -> str:
    return base64.urlsafe_b64encode(f"{moment.isoformat()}|{key}".encode()).decode().rstrip("=")


def _split_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, key = raw.rsplit("|", 1)
        return datetime.fromisoformat(moment), key
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadFilter("cursor is not one this API gave out.") from None


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    moment, key = _split_cursor(cursor)
    if not key.isdigit():
        raise BadFilter("cursor is not one this API gave out.")
    return moment, int(key)


def limit_of(value: Any, default: int = 20) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadFilter("limit must be an integer.") from None
    if not 1 <= number <= MAX_LIMIT:
        raise BadFilter(f"limit must be between 1 and {MAX_LIMIT}.")
    return number


class ClusterRow(NamedTuple):
    """A cluster as the page reads it: the columns it shows, its group's name beside them."""

    id: int
    topic: str
    type: str
    resource: str
    group_id: int | None
    group_name: str | None
    actor_email: str
    size: int
    unread: int
    first_at: datetime
    last_at: datetime


class ItemRow(NamedTuple):
    """A notification as the page's previews read it (the columns item_json shows)."""

    topic: str
    id: int
    type: str
    resource: str
    resource_id: int
    resource_name: str
    actor_email: str | None
    group_id: int | None
    message: str
    is_read: bool
    cluster_id: int
    created_at: datetime
    occurred_at: datetime


@dataclass
class ClusterView:
    cluster: NotificationCluster | ClusterRow
    # The newest few items (all of them when the cluster is small), newest first.
    items: list[Any]


def _like(words: str) -> str:
    """`words` as the pattern of Django's icontains on PostgreSQL (UPPER(col::text) LIKE
    UPPER(pattern)): LIKE's own characters escaped, anywhere in the text."""
    return "%" + connection.ops.prep_for_like_query(words) + "%"


def _page_where(user: User, f: Filters, cursor: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause of the page's clusters: `clusters(user, f)` (which mark-all-read uses)
    written in SQL, and the cursor's position. tests/integration/test_page_query.py holds the
    two to the same clusters for every filter."""
    where, params = ["c.recipient_id = %s"], [user.id]
    for column, value in (("group_id", f.group_id), ("type", f.type), ("resource", f.resource), ("topic", f.topic)):
        if value is not None and value != "":
            where.append(f"c.{column} = %s")
            params.append(value)
    if f.unread_only:
        where.append("c.unread > 0")
    if f.since:
        where.append("c.last_at >= %s")
        params.append(f.since)
    if f.until:
        where.append("c.first_at < %s")
        params.append(f.until)
    if f.q:
        pattern = _like(f.q)
        matches = []
        for topic, model in TABLE_MODEL.items():
            if f.topic in (None, topic):
                matches.append(
                    f'EXISTS (SELECT 1 FROM "{model._meta.db_table}" x WHERE x."{RECIPIENT_COLUMN[model]}" = %s'
                    " AND x.cluster_id = c.id AND (UPPER(x.resource_name::text) LIKE UPPER(%s)"
                    " OR UPPER(x.message::text) LIKE UPPER(%s) OR UPPER(x.actor_email::text) LIKE UPPER(%s)))")
                params += [user.email, pattern, pattern, pattern]
        where.append(f"({' OR '.join(matches)})")
    position = decode_cursor(cursor)
    if position:
        moment, pk = position
        # The first bound is where the cluster_newest index starts: the cursor's minute.
        where.append("c.last_minute <= %s AND (c.last_at < %s OR (c.last_at = %s AND c.id < %s))")
        params += [moment.replace(second=0, microsecond=0), moment, moment, pk]
    return " AND ".join(where), params


# The previews: for each cluster of the page, the newest PREVIEW items of its topic's table, one
# LATERAL lookup on that table's (cluster, created_at, id) index (the other two tables' branches
# are skipped by their topic test).
_PREVIEWS = " UNION ALL ".join(
    f"(SELECT '{topic}'::text AS topic, x.id, x.type, x.resource, x.resource_id, x.resource_name, x.actor_email,"
    f" {'x.group_id' if model is GroupNotification else 'NULL::bigint'} AS group_id, x.message, x.is_read,"
    f" x.created_at, x.occurred_at FROM \"{model._meta.db_table}\" x"
    # Only the cluster: its rows are its recipient's (persist places a row in a cluster of its
    # own recipient), and the page's clusters are the user's. With the recipient's email here
    # as well, PostgreSQL ANDed the user's whole (recipient, created_at) index range into a
    # bitmap for each cluster: 45 ms p50 for a page of the 50,000-notification reader in
    # `make bench`, where this walk stops after PREVIEW entries.
    f" WHERE p.topic = '{topic}' AND x.cluster_id = p.id"
    f" ORDER BY x.created_at DESC, x.id DESC LIMIT {PREVIEW})"
    for topic, model in TABLE_MODEL.items()
)


def cluster_page_and_count(
    user: User, filters: Filters, cursor: str | None, limit: int,
) -> tuple[list[ClusterView], str | None, int]:
    """One page of clusters, the cursor of the next (None on the last page) and the user's
    unread count: one query, one snapshot. Rows are read as tuples, not model instances: the
    first page is the site's most read answer after the count (docs/web.md)."""
    where, where_params = _page_where(user, filters, cursor)
    sql = (
        # The count first, so that a page without clusters still has its row.
        "SELECT k.n, p.id, p.topic, p.type, p.resource, p.group_id, p.group_name, p.actor_email, p.size, p.unread,"
        " p.first_at, p.last_at, i.topic, i.id, i.type, i.resource, i.resource_id, i.resource_name, i.actor_email,"
        " i.group_id, i.message, i.is_read, i.created_at, i.occurred_at"
        " FROM (SELECT COALESCE((SELECT u.count FROM notification_unread_count u"
        " WHERE u.recipient_email = %s), 0) AS n) k"
        " LEFT JOIN LATERAL (SELECT c.id, c.topic, c.type, c.resource, c.group_id, g.name AS group_name,"
        " c.actor_email, c.size, c.unread, c.first_at, c.last_at,"
        # The index gives the minute (c.last_minute); the clusters of one minute are few and
        # put in last_at order by an incremental sort (docs/storage.md).
        " row_number() OVER (ORDER BY c.last_minute DESC, c.last_at DESC, c.id DESC) AS rn"
        ' FROM notification_cluster c LEFT JOIN "group" g ON g.id = c.group_id'
        # The limits are written in (validated integers), so that the plan is made for them.
        f" WHERE {where} ORDER BY c.last_minute DESC, c.last_at DESC, c.id DESC LIMIT {int(limit) + 1:d}) p ON true"
        # The cluster past the page only says that there is a next one: no previews for it.
        f" LEFT JOIN LATERAL ({_PREVIEWS}) i ON p.rn <= {int(limit):d}"
        " ORDER BY p.last_at DESC, p.id DESC, i.created_at DESC, i.id DESC"
    )
    params = [user.email, *where_params]
    with prepared_cursor(binary=True) as db:
        db.execute(sql, params)
        rows = db.fetchall()
    unread = int(rows[0][0]) if rows else 0
    views: list[ClusterView] = []
    last: ClusterView | None = None
    for row in rows:
        if row[1] is None:  # no clusters: the count's row alone
            break
        if last is None or last.cluster.id != row[1]:
            last = ClusterView(ClusterRow._make(row[1:12]), [])
            views.append(last)
        if row[13] is not None:
            last.items.append(ItemRow._make((*row[12:22], row[1], row[22], row[23])))
    more = len(views) > limit
    views = views[:limit]
    next_cursor = encode_cursor(views[-1].cluster.last_at, views[-1].cluster.id) if more and views else None
    return views, next_cursor, unread


def cluster_page(user: User, filters: Filters, cursor: str | None, limit: int) -> tuple[list[ClusterView], str | None]:
    """One page of clusters and the cursor of the next (None on the last page)."""
    views, next_cursor, _ = cluster_page_and_count(user, filters, cursor, limit)
    return views, next_cursor


def _after(qs: QuerySet[Any], time_field: str, cursor: str | None, limit: int) -> tuple[list[Any], str | None]:
    """The `limit` rows of `qs` (ordered newest first by time_field, then id) after the
    cursor's position, and the cursor of the row after them (None on the last page)."""
    position = decode_cursor(cursor)
    if position:
        moment, pk = position
        qs = qs.filter(Q(**{f"{time_field}__lt": moment}) | Q(**{time_field: moment, "id__lt": pk}))
    rows = list(qs[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(getattr(rows[-1], time_field), rows[-1].id) if more and rows else None
    return rows, next_cursor


def cluster_items(
    user: User, cluster_id: int, cursor: str | None, limit: int,
) -> tuple[NotificationCluster, list[Any], str | None] | None:
    """A cluster's items, newest first, by cursor; None if it is not this user's."""
    cluster = NotificationCluster.objects.select_related("group").filter(pk=cluster_id, recipient=user).first()
    if cluster is None:
        return None
    model = TABLE_MODEL[cluster.topic]
    qs = model.objects.filter(recipient_of(model, user), cluster_id=cluster.id).order_by("-created_at", "-id")
    items, next_cursor = _after(qs, "created_at", cursor, limit)
    return cluster, items, next_cursor


# Flat lists merge the three tables in one order: newest first, then owner before group
# before watching at the same instant, then the higher id.
TOPIC_RANK = {"owner": 1, "group": 0, "watching": -1}


def _item_filters(model: NotificationModel, user: User, f: Filters) -> Any:
    qs = model.objects.filter(recipient_of(model, user), _kind(f))
    if f.unread_only:
        qs = qs.filter(is_read=False)
    if f.since:
        qs = qs.filter(created_at__gte=f.since)
    if f.until:
        qs = qs.filter(created_at__lt=f.until)
    if f.q:
        qs = qs.filter(_text(f.q))
    return qs


def items(user: User, filters: Filters, cursor: str | None, limit: int) -> tuple[list[Any], str | None]:
    """This user's notifications themselves (not clusters), the three tables merged newest first,
    by cursor: at most limit + 1 rows read from each table."""
    position = None
    if cursor:
        moment, rest = _split_cursor(cursor)
        cursor_topic, _, cursor_pk = rest.partition(":")
        if cursor_topic not in TOPIC_RANK or not cursor_pk.isdigit():
            raise BadFilter("cursor is not one this API gave out.")
        position = (moment, TOPIC_RANK[cursor_topic], int(cursor_pk))
    found: list[Any] = []
    for topic, model in TABLE_MODEL.items():
        if filters.topic not in (None, topic) or (topic != "group" and filters.group_id is not None):
            continue
        qs = _item_filters(model, user, filters)
        if position:
            at, rank, last_id = position
            mine = TOPIC_RANK[topic]
            same_instant = Q(created_at=at, id__lt=last_id) if mine == rank else Q(created_at=at) if mine < rank else Q()
            qs = qs.filter(Q(created_at__lt=at) | same_instant) if same_instant else qs.filter(created_at__lt=at)
        rows = list(qs.order_by("-created_at", "-id")[: limit + 1])
        for row in rows:
            row.topic = topic
        found += rows
    found.sort(key=lambda r: (r.created_at, TOPIC_RANK[r.topic], r.id), reverse=True)
    page = found[:limit]
    next_cursor = None
    if len(found) > limit and page:
        last = page[-1]
        next_cursor = encode_cursor(last.created_at, f"{last.topic}:{last.id}")
    return page, next_cursor


def item(user: User, topic: str, pk: int) -> Notification | None:
    model = TABLE_MODEL.get(topic)
    if model is None:
        return None
    return model.objects.filter(recipient_of(model, user), pk=pk).first()
