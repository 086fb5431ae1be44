"""The daily digest: who gets one, what is in it, and sending it exactly once per period.

The rules are pure functions of plain data (`Item` rows in, `Contents` and text out).
`send_digest()` does the I/O for one user, in this order:

1. claim the user's `Digest` row for the period: INSERT ... ON CONFLICT under the unique
   (user, period) key, so of two runs or two workers only one goes on;
2. read the user's unread, not yet emailed notifications and build the email;
3. hand it to the mail server (notifications/email.py returns once the server accepted it);
4. in one transaction, mark exactly the notifications the email listed as emailed
   (`... WHERE is_email_sent = false`) and the row as sent.

A worker that dies between 3 and 4 leaves the row "sending" with nothing marked; once the
claim's lease has run out a retry claims it again and sends again. So a digest is delivered
at least once, and twice only when a worker dies inside that window (docs/digest.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

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
from notifications.models import Digest, GroupNotification, OwnerNotification
from notifications.queries import unread_count
from notifications.wording import cluster_text, item_text, name_preview

log = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "notifications.digest.unsubscribe"
UNSUBSCRIBE_PURPOSE = "digest-unsubscribe"


# --- The rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One unread, not yet emailed notification, as the digest needs it."""

    topic: str  # "owner" | "group"
    id: int
    type: str
    resource: str
    name: str
    actor: str | None
    occurred_at: datetime
    cluster_id: int | None
    group_name: str | None = None


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
        text = item_text(type=first.type, resource=first.resource, name=first.name, actor=first.actor, viewer=viewer)
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


def unsubscribe_token(user_id: int) -> str:
    """A signed token that can do one thing: turn off this user's digest."""
    # No timestamp: an unsubscribe link in an old email must keep working.
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign_object({"u": user_id, "p": UNSUBSCRIBE_PURPOSE})


def user_id_from_token(token: str) -> int | None:
    """The user an unsubscribe token is for; None if it was altered or made for anything else."""
    try:
        data = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):
        # ValueError: signed by this site, but not an object (a token of another format).
        return None
    if not isinstance(data, dict) or data.get("p") != UNSUBSCRIBE_PURPOSE:
        return None
    user_id = data.get("u")
    return user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else None


def unsubscribe_url(user_id: int) -> str:
    return absolute(reverse("digest-unsubscribe", args=[unsubscribe_token(user_id)]))


def render(recipient: str, user_id: int, contents: Contents, unread: int) -> email.Mail:
    """The email: a plain-text and an HTML part from the same context."""
    unsubscribe = unsubscribe_url(user_id)
    context = {
        "recipient": recipient,
        "unread": unread,
        "new": contents.new,
        "lines": contents.lines,
        "more": contents.more,
        "notifications_url": absolute("/notifications/"),
        "unsubscribe_url": unsubscribe,
        "site_url": settings.SITE_URL.rstrip("/"),
    }
    return email.Mail(
        to=recipient,
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


def _pending(model: type[OwnerNotification] | type[GroupNotification], recipient: OuterRef | str) -> Q:
    field = "owner" if model is OwnerNotification else "member"
    return Q(**{field: recipient}, is_read=False, is_email_sent=False)


def due_user_ids(period: date, after: int = 0, limit: int | None = None) -> list[int]:
    """Opted-in users with unread, not yet emailed notifications and no digest sent for
    `period`, by id (keyset paging: `after` is the last id of the previous chunk)."""
    # Each EXISTS is a probe of the partial unread index of its table.
    owner = OwnerNotification.objects.filter(_pending(OwnerNotification, OuterRef("email")))
    group = GroupNotification.objects.filter(_pending(GroupNotification, OuterRef("email")))
    sent = Digest.objects.filter(user=OuterRef("pk"), period=period, status=Digest.SENT)
    qs = (
        User.objects.filter(receive_notification_email=True, is_active=True, id__gt=after)
        .filter(Exists(owner) | Exists(group))
        .exclude(Exists(sent))
        .order_by("id")
        .values_list("id", flat=True)
    )
    return list(qs[:limit] if limit else qs)


def due_user_id_chunks(period: date, size: int = 500) -> Iterator[list[int]]:
    after = 0
    while chunk := due_user_ids(period, after=after, limit=size):
        yield chunk
        after = chunk[-1]


def pending_items(recipient: str) -> list[Item]:
    """The user's unread, not yet emailed notifications: one query per table."""
    fields = ("id", "type", "resource", "resource_name", "resource_id", "actor_email", "occurred_at", "cluster_id")
    items = [
        Item("owner", pk, type_, resource, name or str(rid), actor, at, cluster)
        for pk, type_, resource, name, rid, actor, at, cluster in OwnerNotification.objects.filter(
            _pending(OwnerNotification, recipient)
        ).values_list(*fields)
    ]
    items += [
        Item("group", pk, type_, resource, name or str(rid), actor, at, cluster, group)
        for pk, type_, resource, name, rid, actor, at, cluster, group in GroupNotification.objects.filter(
            _pending(GroupNotification, recipient)
        ).values_list(*fields, "group__name")
    ]
    return items


# --- Sending, once ---------------------------------------------------------------------


class Outcome(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already sent"
    IN_FLIGHT = "in flight"  # another worker holds the claim (or died holding it)
    NOTHING_NEW = "nothing new"
    OPTED_OUT = "opted out"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    listed: int = 0
    # For IN_FLIGHT: seconds until the claim's lease runs out.
    retry_in: float = 0.0


@dataclass(frozen=True)
class Claim:
    id: int
    attempt: int


_CLAIM_SQL = f"""
INSERT INTO "{Digest._meta.db_table}" (user_id, period, status, attempts, claimed_at, notification_count, error)
VALUES (%(user)s, %(period)s, '{Digest.SENDING}', 1, %(now)s, 0, '')
ON CONFLICT (user_id, period) DO UPDATE
   SET status = '{Digest.SENDING}', attempts = "{Digest._meta.db_table}".attempts + 1,
       claimed_at = EXCLUDED.claimed_at, error = ''
 WHERE "{Digest._meta.db_table}".status IN ('{Digest.FAILED}', '{Digest.EMPTY}')
    OR ("{Digest._meta.db_table}".status = '{Digest.SENDING}' AND "{Digest._meta.db_table}".claimed_at < %(expired)s)
RETURNING id, attempts
"""


def claim(user_id: int, period: date, now: datetime) -> Claim | None:
    """Take the (user, period) row, or None if it is sent or another live claim holds it.

    One statement under the unique key: of two concurrent claimers the second waits for the
    first's row, then finds it "sending" and gets nothing back. A failed or empty attempt,
    or a claim whose lease ran out, is taken over.
    """
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"user": user_id, "period": period, "now": now, "expired": now - lease()})
        row = cursor.fetchone()
    return Claim(row[0], row[1]) if row else None


def _not_claimed(user_id: int, period: date, now: datetime) -> Result:
    found = Digest.objects.filter(user_id=user_id, period=period).values_list("status", "claimed_at").first()
    if found and found[0] == Digest.SENT:
        return Result(Outcome.ALREADY_SENT)
    expires = found[1] + lease() if found else now
    return Result(Outcome.IN_FLIGHT, retry_in=max((expires - now).total_seconds(), 1.0))


def _finish(c: Claim, status: str, *, error: str = "") -> None:
    # Conditional on the attempt: a worker whose claim was taken over changes nothing.
    Digest.objects.filter(id=c.id, attempts=c.attempt, status=Digest.SENDING).update(status=status, error=error[:2000])


def mark_sent(c: Claim, contents: Contents, now: datetime) -> None:
    """Mark exactly what the email listed, and the digest sent, together or not at all."""
    with transaction.atomic():
        for model, topic in ((OwnerNotification, "owner"), (GroupNotification, "group")):
            ids = contents.ids(topic)
            if ids:
                model.objects.filter(id__in=ids, is_email_sent=False).update(is_email_sent=True, emailed_at=now)
        Digest.objects.filter(id=c.id, attempts=c.attempt).update(
            status=Digest.SENT, sent_at=now, notification_count=len(contents.listed), error="",
        )


def send_digest(user_id: int, period: date, connection: BaseEmailBackend | None = None) -> Result:
    """Send `user_id` their digest for `period`, unless it was sent or someone is sending it.

    Raises email.TransportError when the mail server refuses or is unreachable; the row is
    then "failed" and the next call for the period tries again.
    """
    user = User.objects.filter(pk=user_id).values_list("email", "receive_notification_email", "is_active").first()
    if user is None or not (user[1] and user[2]):
        return Result(Outcome.OPTED_OUT)
    recipient = user[0]
    c = claim(user_id, period, timezone.now())
    if c is None:
        return _not_claimed(user_id, period, timezone.now())
    try:
        items = pending_items(recipient)
        if not items:
            # Read (or emailed) since the fan-out: no email, and a later run may try again.
            _finish(c, Digest.EMPTY)
            return Result(Outcome.NOTHING_NEW)
        contents = build_contents(items, recipient, settings.DIGEST_MAX_ITEMS)
        mail = render(recipient, user_id, contents, unread_count(recipient))
        email.send(mail, connection)
    except Exception as exc:
        # Nothing was accepted by the mail server: give the claim back for a retry.
        _finish(c, Digest.FAILED, error=str(exc))
        raise
    mark_sent(c, contents, timezone.now())
    log.info("digest %s sent to user %s: %d notifications", period, user_id, len(contents.listed))
    return Result(Outcome.SENT, listed=len(contents.listed))


def run(period: date) -> Counter[str]:
    """The whole digest in this process, user after user, over one SMTP session. One user's
    failure never stops the others; a rerun skips whoever already has theirs."""
    summary: Counter[str] = Counter()
    with email.session() as mail_connection:
        for chunk in due_user_id_chunks(period):
            for user_id in chunk:
                try:
                    result = send_digest(user_id, period, mail_connection)
                except email.TransportError as exc:
                    log.warning("digest %s for user %s not sent: %s", period, user_id, exc)
                    summary["failed"] += 1
                    continue
                except Exception:
                    log.exception("digest %s for user %s not sent", period, user_id)
                    summary["failed"] += 1
                    continue
                summary[result.outcome.value] += 1
    return summary
