"""The daily digest: who gets one, what is in it, and sending it exactly once per period.

The rules are pure functions of plain data (`Item` rows in, `Contents` and text out).
`send_chunk()` does the I/O for a chunk of users (`CHUNK_SIZE`), in a fixed number of queries:

1. claim the users' `Digest` rows for the period: one INSERT ... SELECT ... ON CONFLICT under
   the unique (user, period) key, so of two runs or two workers only one goes on per user;
2. read their unread, not yet emailed notifications (one query per table) and unread counts;
3. hand each email to the mail server over one SMTP session (notifications/email.py returns
   once the server accepted it); a refusal fails that user alone;
4. in one transaction, mark exactly the notifications the accepted emails listed as emailed
   (`... WHERE is_email_sent = false`), those digests as sent, and give the other claims back.

A worker that dies between 3 and 4 leaves the chunk's claims "sending" with nothing marked;
once the claims' lease has run out a retry claims them again and sends again. So a digest is
delivered at least once, and twice only to the users whose emails the server had accepted
in the chunk the worker died in (docs/digest.md).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from graphspace.models import User
from notifications import email
from notifications.models import Digest, GroupNotification, OwnerNotification, WatchingNotification
from notifications.queries import unread_counts
from notifications.recipients import Preferences, in_digest
from notifications.wording import cluster_text, item_text, name_preview
from ops import metrics

log = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "notifications.digest.unsubscribe"
UNSUBSCRIBE_PURPOSE = "digest-unsubscribe"
# How long an unsubscribe link works: long enough for an email read weeks late, short enough
# that a leaked old email stops being a credential (docs/digest.md).
UNSUBSCRIBE_MAX_AGE = timedelta(days=60)
# Users per chunk: claimed, read and recorded together, over one SMTP session. It bounds
# what a worker dying mid-chunk can make go twice (docs/digest.md has the measurements).
CHUNK_SIZE = 100
# Seconds of sending per chunk before the rest is given back for a retry: well inside the
# digest task's soft time limit (120 s, tasks/base.py), so no chunk is killed half-way.
CHUNK_SECONDS = 60.0


# --- The rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One unread, not yet emailed notification, as the digest needs it."""

    topic: str  # "owner" | "group" | "watching"
    id: int
    type: str
    resource: str
    name: str
    actor: str | None
    occurred_at: datetime
    cluster_id: int | None
    group_name: str | None = None


@dataclass(frozen=True)
class Recipient:
    user_id: int
    email: str
    nonce: UUID  # the user's digest_nonce, which the unsubscribe link carries


@dataclass(frozen=True)
class Line:
    """One line of the email: a cluster ("5 graphs uploaded") or a single notification."""

    text: str
    preview: str  # the first few names of a cluster; "" for a single notification
    count: int
    newest: datetime
    url: str


@dataclass(frozen=True)
class Contents:
    lines: tuple[Line, ...]
    # Exactly the notifications the lines stand for: these, and only these, are marked emailed.
    listed: tuple[Item, ...]
    # Unread, not yet emailed notifications beyond the cap: "and N more".
    more: int

    @property
    def new(self) -> int:
        return len(self.listed) + self.more

    def ids(self, topic: str) -> list[int]:
        return [i.id for i in self.listed if i.topic == topic]


def absolute(path: str) -> str:
    """A link for an email: the site's public address, never the host the worker runs on."""
    return settings.SITE_URL.rstrip("/") + path


def _newest_first(item: Item) -> tuple[datetime, str, int]:
    return (item.occurred_at, item.topic, item.id)


def _cluster_of(item: Item) -> tuple[str, int]:
    # A row written before clustering existed stands alone.
    return ("cluster", item.cluster_id) if item.cluster_id is not None else (item.topic, item.id)


def line_for(items: Sequence[Item], viewer: str) -> Line:
    """The line for the items of one cluster (newest first), worded as on the page; group
    notifications lead with the group: "Lab: alice@example.com shared graph XYZ"."""
    first = items[0]
    where = f"{first.group_name}: " if first.topic == "group" and first.group_name else ""
    if len(items) == 1:
        text = item_text(type=first.type, resource=first.resource, name=first.name, actor=first.actor, viewer=viewer,
                         topic=first.topic)
        return Line(where + text, "", 1, first.occurred_at, absolute(f"/notifications/open/{first.topic}/{first.id}/"))
    text = cluster_text(topic=first.topic, type=first.type, resource=first.resource, count=len(items),
                        actor=first.actor, viewer=viewer)
    preview = name_preview([i.name for i in items], len(items))
    return Line(where + text, preview, len(items), first.occurred_at, absolute("/notifications/"))


def build_contents(items: Sequence[Item], viewer: str, cap: int) -> Contents:
    """Group by cluster, newest cluster first, at most `cap` lines; the rest is counted."""
    clusters: dict[tuple[str, int], list[Item]] = {}
    for item in sorted(items, key=_newest_first, reverse=True):
        clusters.setdefault(_cluster_of(item), []).append(item)
    groups = list(clusters.values())
    shown, hidden = groups[:cap], groups[cap:]
    return Contents(
        lines=tuple(line_for(g, viewer) for g in shown),
        listed=tuple(i for g in shown for i in g),
        more=sum(len(g) for g in hidden),
    )


def subject(unread: int) -> str:
    """The true number of unread notifications (not clusters, not only the new ones)."""
    return f"You have {unread} unread notification{'' if unread == 1 else 's'} on GraphSpace"


class _UnsubscribeSigner(signing.TimestampSigner):
    """Django's timestamped signer; `issued_at` dates a token (the tests' expired links)."""

    def __init__(self, issued_at: datetime | None = None) -> None:
        super().__init__(salt=UNSUBSCRIBE_SALT)
        self.issued_at = issued_at

    def timestamp(self) -> str:
        if self.issued_at is None:
            return super().timestamp()
        return signing.b62_encode(int(self.issued_at.timestamp()))


def unsubscribe_token(recipient: Recipient, issued_at: datetime | None = None) -> str:
    """A signed, dated token that can do one thing: turn off this user's digest, while the
    user's digest_nonce is the one it carries and for UNSUBSCRIBE_MAX_AGE."""
    return _UnsubscribeSigner(issued_at).sign_object(
        {"u": recipient.user_id, "n": recipient.nonce.hex, "p": UNSUBSCRIBE_PURPOSE}
    )


class TokenState(StrEnum):
    VALID = "valid"  # signed here, for this, recently: its nonce must still match the user's
    EXPIRED = "expired"  # signed here, for this, but older than UNSUBSCRIBE_MAX_AGE
    INVALID = "invalid"  # altered, or not made for this


@dataclass(frozen=True)
class UnsubscribeToken:
    state: TokenState
    user_id: int = 0
    nonce: str = ""


def read_unsubscribe_token(token: str) -> UnsubscribeToken:
    """What an unsubscribe token says, checked against its signature and its age (the
    nonce, against the user's, is the caller's to check)."""
    try:
        data = _UnsubscribeSigner().unsign_object(token, max_age=UNSUBSCRIBE_MAX_AGE)
    except signing.SignatureExpired:
        return UnsubscribeToken(TokenState.EXPIRED)
    except (signing.BadSignature, ValueError):
        # ValueError: signed here, but not a dated object. The undated tokens of the emails
        # sent before links could expire are such: they have expired.
        return UnsubscribeToken(TokenState.EXPIRED if _undated(token) else TokenState.INVALID)
    if not isinstance(data, dict) or data.get("p") != UNSUBSCRIBE_PURPOSE:
        return UnsubscribeToken(TokenState.INVALID)
    user_id, nonce = data.get("u"), data.get("n")
    if not (isinstance(user_id, int) and not isinstance(user_id, bool) and 0 < user_id < 2**63
            and isinstance(nonce, str) and len(nonce) == 32):
        return UnsubscribeToken(TokenState.INVALID)
    return UnsubscribeToken(TokenState.VALID, user_id, nonce)


def _undated(token: str) -> bool:
    try:
        data = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):
        return False
    return isinstance(data, dict) and data.get("p") == UNSUBSCRIBE_PURPOSE


def unsubscribe_url(recipient: Recipient) -> str:
    return absolute(reverse("digest-unsubscribe", args=[unsubscribe_token(recipient)]))


def render(recipient: Recipient, contents: Contents, unread: int) -> email.Mail:
    """The email: a plain-text and an HTML part from the same context."""
    unsubscribe = unsubscribe_url(recipient)
    context = {
        "recipient": recipient.email,
        "unread": unread,
        "new": contents.new,
        "lines": contents.lines,
        "more": contents.more,
        "notifications_url": absolute("/notifications/"),
        "unsubscribe_url": unsubscribe,
        "site_url": settings.SITE_URL.rstrip("/"),
    }
    return email.Mail(
        to=recipient.email,
        subject=subject(unread),
        text=render_to_string("notifications/email/digest.txt", context),
        html=render_to_string("notifications/email/digest.html", context),
        headers=email.one_click_unsubscribe_headers(unsubscribe),
    )


def lease() -> timedelta:
    """How long a claim holds: longer than a live worker can take (settings explain)."""
    return timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS)


def current_period() -> date:
    """Today in settings.TIME_ZONE: the beat starts the digest just after local midnight."""
    return timezone.localdate()


# --- Selection -------------------------------------------------------------------------


_RECIPIENT_FIELD = {OwnerNotification: "owner", GroupNotification: "member", WatchingNotification: "watcher"}


def _pending(model: type[OwnerNotification] | type[GroupNotification] | type[WatchingNotification],
             recipient: OuterRef | str) -> Q:
    return Q(**{_RECIPIENT_FIELD[model]: recipient}, is_read=False, is_email_sent=False)


def due_user_ids(period: date, after: int = 0, limit: int | None = None) -> list[int]:
    """Opted-in users with unread, not yet emailed notifications and no digest sent for
    `period`, by id (keyset paging: `after` is the last id of the previous chunk)."""
    # Each EXISTS is a probe of the partial unread index of its table.
    owner = OwnerNotification.objects.filter(_pending(OwnerNotification, OuterRef("email")))
    group = GroupNotification.objects.filter(_pending(GroupNotification, OuterRef("email")))
    watching = WatchingNotification.objects.filter(_pending(WatchingNotification, OuterRef("email")))
    sent = Digest.objects.filter(user=OuterRef("pk"), period=period, status=Digest.SENT)
    qs = (
        User.objects.filter(receive_notification_email=True, is_active=True, id__gt=after)
        .filter(Exists(owner) | Exists(group) | Exists(watching))
        .exclude(Exists(sent))
        .order_by("id")
        .values_list("id", flat=True)
    )
    return list(qs[:limit] if limit else qs)


def due_user_id_chunks(period: date, size: int) -> Iterator[list[int]]:
    after = 0
    while chunk := due_user_ids(period, after=after, limit=size):
        yield chunk
        after = chunk[-1]


# The group and watching rows of the recipients, in one query (the chunk's budget stays
# that of two tables): a watching row has no group, and carries its topic.
_GROUP_AND_WATCHING_SQL = """
SELECT 'group', n.member_email, n.id, n.type, n.resource, n.resource_name, n.resource_id, n.actor_email,
       n.occurred_at, n.cluster_id, g.name
  FROM group_notification n JOIN "group" g ON g.id = n.group_id
 WHERE n.member_email = ANY(%(recipients)s::text[]) AND NOT n.is_read AND NOT n.is_email_sent
UNION ALL
SELECT 'watching', n.watcher_email, n.id, n.type, n.resource, n.resource_name, n.resource_id, n.actor_email,
       n.occurred_at, n.cluster_id, NULL
  FROM watching_notification n
 WHERE n.watcher_email = ANY(%(recipients)s::text[]) AND NOT n.is_read AND NOT n.is_email_sent
"""


def pending_items(recipients: Sequence[str]) -> dict[str, list[Item]]:
    """Each recipient's unread, not yet emailed notifications: one query for the owner
    table and one for the group and watching tables, for all of them."""
    fields = ("id", "type", "resource", "resource_name", "resource_id", "actor_email", "occurred_at", "cluster_id")
    found: dict[str, list[Item]] = {r: [] for r in recipients}
    for owner, pk, type_, resource, name, rid, actor, at, cluster in OwnerNotification.objects.filter(
        owner__in=recipients, is_read=False, is_email_sent=False,
    ).values_list("owner_id", *fields):
        found[owner].append(Item("owner", pk, type_, resource, name or str(rid), actor, at, cluster))
    with connection.cursor() as cursor:
        cursor.execute(_GROUP_AND_WATCHING_SQL, {"recipients": list(recipients)})
        for topic, member, pk, type_, resource, name, rid, actor, at, cluster, group in cursor.fetchall():
            found[member].append(Item(topic, pk, type_, resource, name or str(rid), actor, at, cluster, group))
    return found


def for_email(items: Sequence[Item], prefs: Preferences) -> list[Item]:
    """The items the recipient wants in the digest (their per-kind, per-type email settings).
    The others stay unread on the site and are never emailed."""
    return [i for i in items if in_digest(i.topic, i.type, prefs)]


# --- Sending, once ---------------------------------------------------------------------


class Outcome(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already sent"
    IN_FLIGHT = "in flight"  # another worker holds the claim (or died holding it)
    NOTHING_NEW = "nothing new"
    OPTED_OUT = "opted out"
    FAILED = "failed"  # not sent; `error` says why and whether a retry can help


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    listed: int = 0
    # For IN_FLIGHT: seconds until the claim's lease runs out.
    retry_in: float = 0.0
    # For FAILED: a TransportError (the mail server refused, or was not reached), or the bug.
    error: Exception | None = None

    @property
    def retryable(self) -> bool:
        return isinstance(self.error, email.TransportError) and not self.error.permanent


@dataclass(frozen=True)
class Claim:
    id: int
    attempt: int
    recipient: Recipient
    # What the user turned off for email (preference keys), read with the claim.
    email_off: frozenset[str] = frozenset()


_DIGEST = Digest._meta.db_table
_USER = User._meta.db_table

# The users are inserted in id order, so two runs claiming overlapping chunks take the rows'
# locks in the same order and never deadlock. Users who opted out (or were deactivated) are
# not claimed: they get no row at all.
_CLAIM_SQL = f"""
WITH claimed AS (
    INSERT INTO "{_DIGEST}" AS d (user_id, period, status, attempts, claimed_at, notification_count, error)
    SELECT u.id, %(period)s, '{Digest.SENDING}', 1, %(now)s, 0, ''
      FROM "{_USER}" u
     WHERE u.id = ANY(%(users)s::bigint[]) AND u.receive_notification_email AND u.is_active
     ORDER BY u.id
    ON CONFLICT (user_id, period) DO UPDATE
       SET status = '{Digest.SENDING}', attempts = d.attempts + 1, claimed_at = EXCLUDED.claimed_at, error = ''
     WHERE d.status IN ('{Digest.FAILED}', '{Digest.EMPTY}')
        OR (d.status = '{Digest.SENDING}' AND d.claimed_at < %(expired)s)
    RETURNING d.id, d.attempts, d.user_id
)
SELECT c.id, c.attempts, u.id, u.email, u.digest_nonce,
       ARRAY(SELECT p.kind || '.' || p.type FROM notification_preference p WHERE p.user_id = u.id AND NOT p.email)
  FROM claimed c JOIN "{_USER}" u ON u.id = c.user_id
 ORDER BY u.id
"""


def claim(user_ids: Sequence[int], period: date, now: datetime) -> list[Claim]:
    """Take the (user, period) rows of those of `user_ids` who are opted in and whose digest
    is neither sent nor claimed by someone else, in one statement (committed at once).

    Of two concurrent claimers of one user, the second waits for the first's row, then finds
    it "sending" and does not get it. A failed or empty attempt, or a claim whose lease ran
    out, is taken over (`attempts` + 1: the old claimer's late writes then change nothing).
    """
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"users": sorted(set(user_ids)), "period": period, "now": now,
                                    "expired": now - lease()})
        return [Claim(pk, attempt, Recipient(user_id, address, nonce), frozenset(email_off))
                for pk, attempt, user_id, address, nonce, email_off in cursor.fetchall()]


def _not_claimed(user_ids: Sequence[int], period: date, now: datetime) -> dict[int, Result]:
    """Why each of `user_ids` was not claimed, in one query."""
    rows = {user: (status, at) for user, status, at in Digest.objects.filter(
        user_id__in=user_ids, period=period).values_list("user_id", "status", "claimed_at")}
    results = {}
    for user_id in user_ids:
        status, claimed_at = rows.get(user_id, (None, None))
        if status == Digest.SENT:
            results[user_id] = Result(Outcome.ALREADY_SENT)
        elif status == Digest.SENDING and claimed_at is not None and claimed_at + lease() > now:
            results[user_id] = Result(Outcome.IN_FLIGHT, retry_in=max((claimed_at + lease() - now).total_seconds(), 1.0))
        else:
            # No row, or one the claim would have taken over: the user is not (or no longer)
            # opted in, is inactive, or does not exist.
            results[user_id] = Result(Outcome.OPTED_OUT)
    return results


@dataclass(frozen=True)
class Accepted:
    """An email the mail server accepted, and what it listed."""

    claim: Claim
    contents: Contents


@dataclass(frozen=True)
class Unsent:
    """A claim that ends without an email: `status` is Digest.FAILED or Digest.EMPTY."""

    claim: Claim
    status: str
    error: str = ""


_SENT_SQL = f"""
UPDATE "{_DIGEST}" AS d
   SET status = '{Digest.SENT}', sent_at = %(now)s, notification_count = v.listed, error = ''
  FROM unnest(%(ids)s::bigint[], %(attempts)s::int[], %(listed)s::int[]) AS v(id, attempt, listed)
 WHERE d.id = v.id AND d.attempts = v.attempt AND d.status = '{Digest.SENDING}'
RETURNING d.id
"""

_UNSENT_SQL = f"""
UPDATE "{_DIGEST}" AS d
   SET status = v.status, error = v.error
  FROM unnest(%(ids)s::bigint[], %(attempts)s::int[], %(statuses)s::text[], %(errors)s::text[])
       AS v(id, attempt, status, error)
 WHERE d.id = v.id AND d.attempts = v.attempt AND d.status = '{Digest.SENDING}'
"""


def record(accepted: Sequence[Accepted], unsent: Sequence[Unsent], now: datetime) -> set[int]:
    """In one transaction: the accepted emails' digests become "sent" and exactly the
    notifications they listed are marked emailed; the others' claims are given back (failed
    or empty). Three statements and the notifications' two, however many users.

    Every write is conditional on the attempt the worker claimed: a worker whose claim was
    taken over (its lease ran out) changes nothing, and the notifications stay for the
    worker that took it over. Returns the claim ids recorded as sent.
    """
    held: set[int] = set()
    if not accepted and not unsent:
        return held
    with transaction.atomic(), connection.cursor() as cursor:
        if accepted:
            cursor.execute(_SENT_SQL, {
                "now": now, "ids": [a.claim.id for a in accepted], "attempts": [a.claim.attempt for a in accepted],
                "listed": [len(a.contents.listed) for a in accepted],
            })
            held = {row[0] for row in cursor.fetchall()}
            for model, topic in ((OwnerNotification, "owner"), (GroupNotification, "group"),
                                 (WatchingNotification, "watching")):
                ids = [pk for a in accepted if a.claim.id in held for pk in a.contents.ids(topic)]
                if ids:
                    model.objects.filter(id__in=ids, is_email_sent=False).update(is_email_sent=True, emailed_at=now)
        if unsent:
            cursor.execute(_UNSENT_SQL, {
                "ids": [u.claim.id for u in unsent], "attempts": [u.claim.attempt for u in unsent],
                "statuses": [u.status for u in unsent], "errors": [u.error[:2000] for u in unsent],
            })
    return held


class _OutOfTime(email.TransportError):
    def __init__(self) -> None:
        super().__init__("not sent: the chunk ran out of time; a retry sends it", permanent=False)


def send_chunk(user_ids: Sequence[int], period: date, connection: BaseEmailBackend | None = None,
               time_budget: float = CHUNK_SECONDS) -> dict[int, Result]:
    """Send each of `user_ids` their digest for `period`, unless it was sent or someone is
    sending it, over one SMTP session; a fixed number of queries whatever the number of users.

    1. claim the users' rows (one statement, committed at once);
    2. read their unread, not yet emailed notifications and their unread counts (three queries);
    3. hand each email to the mail server, one after another; a refusal fails that user alone;
    4. record, in one transaction, the accepted emails as sent with what they listed, and
       give the other claims back.

    The emails accepted before 4 commits are recorded by nobody: if the worker dies in
    between, they are sent again once the claims' lease runs out (at least once,
    docs/digest.md). An exception that stops the loop still records what was accepted.
    After `time_budget` seconds of sending, the rest are given back as failed (transient):
    the task never reaches its hard time limit, where it would be killed mid-chunk.
    """
    now = timezone.now()
    claims = claim(user_ids, period, now)
    claimed = {c.recipient.user_id for c in claims}
    others = [u for u in dict.fromkeys(user_ids) if u not in claimed]
    results = _not_claimed(others, period, now) if others else {}
    if not claims:
        return results
    addresses = [c.recipient.email for c in claims]
    try:
        items = pending_items(addresses)
        unread = unread_counts(addresses)
    except Exception as exc:
        # Nothing was sent: give the claims back at once rather than after the lease.
        with contextlib.suppress(Exception):
            record([], [Unsent(c, Digest.FAILED, str(exc)) for c in claims], now)
        raise
    accepted: list[Accepted] = []
    unsent: list[Unsent] = []
    deadline = time.monotonic() + time_budget
    try:
        with contextlib.nullcontext(connection) if connection is not None else email.session() as mail_connection:
            for c in claims:
                wanted = for_email(items[c.recipient.email], Preferences(email_off=c.email_off))
                result = _send_one(c, wanted, unread.get(c.recipient.email, 0), mail_connection,
                                   out_of_time=time.monotonic() > deadline)
                if isinstance(result, Accepted):
                    accepted.append(result)
                else:
                    unsent.append(result[0])
                    results[c.recipient.user_id] = result[1]
    finally:
        # Also when something unforeseen stops the loop: what the server accepted is recorded.
        metrics.digest_emails_sent.inc(len(accepted))
        held = record(accepted, unsent, timezone.now())
    for a in accepted:
        if a.claim.id not in held:
            log.warning("digest %s for user %s: sent, but the claim was taken over meanwhile", period,
                        a.claim.recipient.user_id)
        results[a.claim.recipient.user_id] = Result(Outcome.SENT, listed=len(a.contents.listed))
    log.info("digest %s: %d sent of %d users", period, len(accepted), len(user_ids))
    return results


def _send_one(c: Claim, items: list[Item], unread: int, mail_connection: BaseEmailBackend,
              out_of_time: bool) -> Accepted | tuple[Unsent, Result]:
    if not items:
        # Read (or emailed) since the fan-out: no email, and a later run may try again.
        return Unsent(c, Digest.EMPTY), Result(Outcome.NOTHING_NEW)
    error: Exception
    if out_of_time:
        error = _OutOfTime()
    else:
        try:
            contents = build_contents(items, c.recipient.email, settings.DIGEST_MAX_ITEMS)
            mail = render(c.recipient, contents, unread)
            email.send(mail, mail_connection)
            return Accepted(c, contents)
        except email.TransportError as exc:
            error = exc
        except Exception as exc:
            # A bug building this one email: the others still go, and this one is logged.
            log.exception("digest for user %s not built", c.recipient.user_id)
            error = exc
    return Unsent(c, Digest.FAILED, str(error)), Result(Outcome.FAILED, error=error)


def send_digest(user_id: int, period: date, connection: BaseEmailBackend | None = None) -> Result:
    """One user's digest (the chunk of one: a retry's path). Raises what stopped the email:
    email.TransportError when the mail server refused or was unreachable; the row is then
    "failed" and the next call for the period tries again."""
    result = send_chunk([user_id], period, connection)[user_id]
    if result.outcome is Outcome.FAILED and result.error is not None:
        raise result.error
    return result


def run(period: date) -> Counter[str]:
    """The whole digest in this process, chunk after chunk, over one SMTP session. One
    user's failure never stops the others; a rerun skips whoever already has theirs."""
    summary: Counter[str] = Counter()
    with email.session() as mail_connection:
        for chunk in due_user_id_chunks(period, CHUNK_SIZE):
            try:
                results = send_chunk(chunk, period, mail_connection)
            except Exception:
                log.exception("digest %s for users %s..%s not sent", period, chunk[0], chunk[-1])
                summary["failed"] += len(chunk)
                continue
            for user_id, result in results.items():
                if result.outcome is Outcome.FAILED:
                    log.warning("digest %s for user %s not sent: %s", period, user_id, result.error)
                summary[result.outcome.value] += 1
    return summary
