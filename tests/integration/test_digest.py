"""The daily digest against a real SMTP server: aiosmtpd on 127.0.0.1 in this process, and
once through the Celery broker and a real worker."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any
from uuid import uuid4

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings as django_settings
from django.core import signing
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult
from prometheus_client import REGISTRY

from graphspace.celery import app
from graphspace.models import Group, User
from notifications import digest
from notifications.digest import Outcome
from notifications.models import Digest, GroupNotification, NotificationCluster, OwnerNotification
from tasks.digest import send_digest, send_digest_chunk, send_digests
from tests.conftest import People
from tests.integration.conftest import Process, free_port, wait_for

SITE = "https://graphspace.example.org"
# The real-worker tests' broker: a Redis database that no test suite flushes (13 and 12 are
# flushed whenever a suite starts, which would drop a task left unacknowledged on purpose),
# and a queue of each test's own, so that no other worker (the pipeline's, whose mail
# settings differ) takes its tasks.
DIGEST_BROKER_DB = 11


# --- A real mail server in this process ------------------------------------------------


@dataclass
class Received:
    rcpt_tos: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        body = self.message.get_body((subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())  # type: ignore[attr-defined]


@dataclass
class Mailbox:
    """aiosmtpd handler: records every message; refuses the recipients in `busy` with a 450
    (as many times as their count says) and those in `unknown` with a 550."""

    messages: list[Received] = field(default_factory=list)
    busy: dict[str, int] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    attempts: list[str] = field(default_factory=list)
    delay: float = 0.0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        self.attempts.append(address)
        if self.busy.get(address, 0) > 0:
            self.busy[address] -= 1
            return "450 4.2.1 Mailbox busy, try again later"
        if address in self.unknown:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(Received(list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def mailbox(settings: Any, smtp_port: int) -> Iterator[Mailbox]:
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    # pytest-django swaps in the in-memory backend; these tests talk SMTP for real.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_port
    settings.EMAIL_TIMEOUT = 10
    settings.SITE_URL = SITE
    yield handler
    controller.stop()


# --- Notification rows, written as the persist task writes them ------------------------


def ago(minutes: float) -> Any:
    return timezone.now() - timedelta(minutes=minutes)


def opt_in(*users: User) -> None:
    User.objects.filter(pk__in=[u.pk for u in users]).update(receive_notification_email=True)


def cluster(user: User, *, topic: str = "owner", type: str = "upload", resource: str = "graph",
            group: Group | None = None, actor: str = "") -> NotificationCluster:
    now = timezone.now()
    return NotificationCluster.objects.create(
        recipient=user, topic=topic, type=type, resource=resource, group=group, actor_email=actor,
        key=f"{topic}:{type}:{resource}:{uuid4()}", first_at=now, last_at=now,
    )


def owned(user: User, name: str, *, type: str = "upload", resource: str = "graph", minutes_ago: float = 0,
          in_cluster: NotificationCluster | None = None, read: bool = False, emailed: bool = False) -> OwnerNotification:
    return OwnerNotification.objects.create(
        event_id=uuid4(), owner=user, message=f"{resource} {name} {type}", type=type, resource=resource,
        resource_id=1, resource_name=name, actor_email=user.email, occurred_at=ago(minutes_ago),
        cluster=in_cluster, is_read=read, is_email_sent=emailed, emailed_at=ago(minutes_ago) if emailed else None,
    )


def shared(user: User, group: Group, name: str, actor: User, *, minutes_ago: float = 0,
           in_cluster: NotificationCluster | None = None, read: bool = False) -> GroupNotification:
    return GroupNotification.objects.create(
        event_id=uuid4(), member=user, group=group, owner_email=actor.email, message=f"Graph {name} shared.",
        type="share", resource="graph", resource_id=2, resource_name=name, actor_email=actor.email,
        occurred_at=ago(minutes_ago), cluster=in_cluster, is_read=read,
    )


def uploads(user: User, count: int, minutes_ago: float = 60) -> list[OwnerNotification]:
    c = cluster(user)
    return [owned(user, f"g{i}", minutes_ago=minutes_ago - i, in_cluster=c) for i in range(1, count + 1)]


def today() -> date:
    return digest.current_period()


def emailed(user: User) -> int:
    return (OwnerNotification.objects.filter(owner=user, is_email_sent=True).count()
            + GroupNotification.objects.filter(member=user, is_email_sent=True).count())


# --- What the email says ---------------------------------------------------------------


def test_the_digest_lists_clusters_newest_first_with_the_true_unread_count(people: People, mailbox: Mailbox) -> None:
    alice, bob = people.alice, people.bob
    opt_in(alice)
    lab = Group.objects.create(name="Lab", owner=bob)
    batch = uploads(alice, 5, minutes_ago=120)
    share = shared(alice, lab, "XYZ", bob, minutes_ago=5, in_cluster=cluster(alice, topic="group", type="share",
                                                                             group=lab, actor=bob.email))
    owned(alice, "old", minutes_ago=60 * 30, emailed=True)  # unread, in yesterday's digest
    owned(alice, "seen", minutes_ago=10, read=True)

    summary = digest.run(today())

    # It should send alice one email, whose subject counts every unread notification (7),
    # not clusters (2) and not only the new ones (6).
    assert summary == {"sent": 1}
    [mail] = mailbox.messages
    assert mail.rcpt_tos == ["alice@example.com"]
    assert mail.message["Subject"] == "You have 7 unread notifications on GraphSpace"
    assert mail.message["From"] == "GraphSpace <notifications@graphspace.local>"
    assert mail.message["To"] == "alice@example.com"
    text, html = mail.part("plain"), mail.part("html")
    assert "You have 7 unread notifications on GraphSpace; 6 of them are new since your last digest." in text
    # Newest cluster first, worded as on the page.
    assert text.index("- Lab: bob@example.com shared graph XYZ") < text.index("- 5 graphs uploaded: g5, g4, g3 and 2 more")
    assert f"{SITE}/notifications/open/group/{share.id}/" in text
    assert "Lab: bob@example.com shared graph XYZ" in html and "5 graphs uploaded" in html
    assert "g5, g4, g3 and 2 more" in html
    assert "old" not in text.split("--")[0].replace("your last digest", "")
    # Absolute links on SITE_URL only: never the host the worker happens to run on.
    for part in (text, html):
        assert f"{SITE}/notifications/" in part and f"{SITE}/digest/unsubscribe/" in part
        assert "127.0.0.1" not in part and "localhost" not in part
    assert 'href="/' not in html

    # Headers for the mail client's unsubscribe button (RFC 2369, RFC 8058).
    # (Long header values are folded onto a second line; unfolded they read the same.)
    assert mail.message["List-Unsubscribe"].strip().startswith(f"<{SITE}/digest/unsubscribe/")
    assert digest.read_unsubscribe_token(unsubscribe_path(mail).split("/")[-2]) == digest.UnsubscribeToken(
        digest.TokenState.VALID, alice.id, User.objects.get(pk=alice.pk).digest_nonce.hex)
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # It should mark exactly the six listed notifications as emailed, and the digest sent.
    listed = [share.id] + [n.id for n in batch]
    assert set(GroupNotification.objects.filter(is_email_sent=True).values_list("id", flat=True)) == {share.id}
    assert set(OwnerNotification.objects.filter(is_email_sent=True, emailed_at__gte=ago(1)).values_list("id", flat=True)) \
        == set(listed[1:])
    assert not OwnerNotification.objects.get(resource_name="seen").is_email_sent
    record = Digest.objects.get(user=alice, period=today())
    assert (record.status, record.notification_count, record.attempts) == (Digest.SENT, 6, 1)


def test_a_long_digest_lists_the_newest_and_says_how_many_more(people: People, mailbox: Mailbox, settings: Any) -> None:
    settings.DIGEST_MAX_ITEMS = 3
    alice = people.alice
    opt_in(alice)
    singles = [owned(alice, f"graph{i}", type="update", minutes_ago=100 - i) for i in range(5)]

    digest.run(today())

    [mail] = mailbox.messages
    text, html = mail.part("plain"), mail.part("html")
    assert mail.message["Subject"] == "You have 5 unread notifications on GraphSpace"
    assert [line for line in text.splitlines() if line.startswith("- ")] == [
        "- You updated graph graph4", "- You updated graph graph3", "- You updated graph graph2",
    ]
    assert f"...and 2 more: {SITE}/notifications/" in text and "…and 2 more" in html
    # Only the listed three are marked emailed; the other two wait for the next digest.
    assert set(OwnerNotification.objects.filter(is_email_sent=True).values_list("id", flat=True)) == {
        n.id for n in singles[2:]
    }


def test_names_are_text_in_the_html_part(people: People, mailbox: Mailbox) -> None:
    alice = people.alice
    opt_in(alice)
    owned(alice, "<img src=x onerror=alert(1)>")
    digest.run(today())
    [mail] = mailbox.messages
    assert "<img src=x" not in mail.part("html")
    assert "You uploaded graph &lt;img src=x onerror=alert(1)&gt;" in mail.part("html")


# --- Exactly once ----------------------------------------------------------------------


def test_running_the_digest_twice_sends_one_email(people: People, mailbox: Mailbox) -> None:
    alice = people.alice
    opt_in(alice)
    uploads(alice, 3)
    assert digest.run(today()) == {"sent": 1}
    # The rerun finds nobody due: alice's digest for today is sent.
    assert digest.run(today()) == {}
    assert digest.send_digest(alice.id, today()).outcome is Outcome.ALREADY_SENT
    assert len(mailbox.messages) == 1


def test_running_the_digest_twice_at_once_sends_one_email_each(transactional_db: None, people: People,
                                                              mailbox: Mailbox) -> None:
    opt_in(people.alice, people.bob, people.carol)
    for user in (people.alice, people.bob, people.carol):
        uploads(user, 2)
    mailbox.delay = 0.2  # a slow mail server keeps each claim "sending" while the other run arrives

    results = in_threads(2, lambda: digest.run(today()))

    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == ["alice@example.com", "bob@example.com", "carol@example.com"]
    assert sum(r["sent"] for r in results) == 3
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.SENT}


def test_two_workers_sending_the_same_users_digest_send_one_email(transactional_db: None, people: People,
                                                                 mailbox: Mailbox) -> None:
    alice = people.alice
    opt_in(alice)
    uploads(alice, 2)
    mailbox.delay = 0.2

    results = in_threads(2, lambda: digest.send_digest(alice.id, today()))

    assert len(mailbox.messages) == 1
    outcomes = sorted(r.outcome.value for r in results)
    # The loser either saw the claim in flight (and its task would look again after the
    # lease) or found the digest already sent.
    assert outcomes in (["in flight", "sent"], ["already sent", "sent"])
    assert emailed(alice) == 2


def in_threads(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` in `count` threads at the same moment, each with its own DB connection."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return results


def test_a_busy_mailbox_is_retried_and_the_others_still_get_theirs(people: People, mailbox: Mailbox) -> None:
    opt_in(people.alice, people.bob, people.carol)
    for user in (people.alice, people.bob, people.carol):
        uploads(user, 2)
    mailbox.busy["bob@example.com"] = 1

    # In-process: bob's send fails as transient, alice's and carol's go out.
    assert digest.run(today()) == {"sent": 2, "failed": 1}
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == ["alice@example.com", "carol@example.com"]
    record = Digest.objects.get(user=people.bob)
    assert record.status == Digest.FAILED and "450" in record.error
    assert emailed(people.bob) == 0

    # The rerun sends bob his, and nobody else a second one.
    assert digest.run(today()) == {"sent": 1}
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == [
        "alice@example.com", "bob@example.com", "carol@example.com",
    ]
    assert Digest.objects.get(user=people.bob).attempts == 2


def test_the_task_retries_a_transient_refusal_and_gives_up_on_a_permanent_one(
    transactional_db: None, people: People, mailbox: Mailbox,
) -> None:
    # (transactional_db: the task's before_start drops a connection that is inside a transaction.)
    opt_in(people.alice, people.bob)
    uploads(people.alice, 2)
    uploads(people.bob, 2)
    mailbox.busy["alice@example.com"] = 1
    mailbox.unknown.add("bob@example.com")

    # Eager: Celery runs the retry at once instead of after its backoff.
    retried = send_digest.apply(args=(people.alice.id, today().isoformat()))
    assert (retried.status, retried.result) == ("SUCCESS", "sent")
    assert mailbox.attempts.count("alice@example.com") == 2
    assert len(mailbox.to("alice@example.com")) == 1

    refused = send_digest.apply(args=(people.bob.id, today().isoformat()))
    assert refused.status == "FAILURE" and refused.result.permanent
    assert mailbox.attempts.count("bob@example.com") == 1
    assert Digest.objects.get(user=people.bob).status == Digest.FAILED


def test_a_mail_server_that_is_down_fails_as_transient(people: People, mailbox: Mailbox, settings: Any) -> None:
    opt_in(people.alice)
    uploads(people.alice, 1)
    settings.EMAIL_PORT = free_port()  # nothing listens there
    with pytest.raises(digest.email.TransportError) as raised:
        digest.send_digest(people.alice.id, today())
    assert not raised.value.permanent
    assert Digest.objects.get(user=people.alice).status == Digest.FAILED
    assert emailed(people.alice) == 0


class WorkerDied(BaseException):
    """Stands for SIGKILL: nothing after it in the worker runs, no handler sees it."""


def test_a_worker_dying_between_sending_and_marking_sends_again_after_the_lease(
    people: People, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = people.alice
    opt_in(alice)
    uploads(alice, 2)

    def die(*args: Any) -> None:
        raise WorkerDied

    with monkeypatch.context() as m:
        m.setattr(digest, "record", die)
        with pytest.raises(WorkerDied):
            digest.send_digest(alice.id, today())
    # The mail server has the email; nothing is marked; the claim is left "sending".
    assert len(mailbox.messages) == 1 and emailed(alice) == 0
    assert Digest.objects.get(user=alice).status == Digest.SENDING

    # The redelivered task finds the claim still leased: no second email yet; its task
    # looks again when the lease is over.
    early = digest.send_digest(alice.id, today())
    assert early.outcome is Outcome.IN_FLIGHT and 250 < early.retry_in <= digest.lease().total_seconds()
    assert len(mailbox.messages) == 1

    # After the lease: sent again (at least once), then marked; the duplicate is the price.
    Digest.objects.filter(user=alice).update(claimed_at=timezone.now() - digest.lease() - timedelta(seconds=1))
    assert digest.send_digest(alice.id, today()).outcome is Outcome.SENT
    assert len(mailbox.messages) == 2 and emailed(alice) == 2
    assert Digest.objects.get(user=alice).attempts == 2


def test_sending_one_digest_takes_a_fixed_number_of_queries(people: People, mailbox: Mailbox,
                                                            django_assert_num_queries: Any) -> None:
    alice, bob = people.alice, people.bob
    opt_in(alice)
    lab = Group.objects.create(name="Lab", owner=bob)
    uploads(alice, 30)
    shares = cluster(alice, topic="group", type="share", group=lab, actor=bob.email)
    for i in range(20):
        shared(alice, lab, f"s{i}", bob, minutes_ago=i, in_cluster=shares)
    # The claim (with the user's address), owner rows, group rows (with the group's name),
    # unread count; then the record: savepoint, digest update, owner update, group update,
    # release.
    with django_assert_num_queries(9):
        assert digest.send_digest(alice.id, today()).listed == 50


# --- Chunks: many users per query, one SMTP session --------------------------------------


def more_people(*names: str) -> list[User]:
    return [User.objects.create_user(f"{name}@example.com", "x") for name in names]


class Stopped(BaseException):
    """Something unforeseen that still unwinds the stack (SystemExit, a soft time limit)."""


def test_a_chunk_takes_the_same_number_of_queries_for_4_users_as_for_30(people: People, mailbox: Mailbox) -> None:
    lab = Group.objects.create(name="Lab", owner=people.bob)

    def chunk_of(prefix: str, size: int) -> list[int]:
        users = more_people(*(f"{prefix}{i}" for i in range(size)))
        opt_in(*users)
        for user in users:
            uploads(user, 2)
            shared(user, lab, "XYZ", people.bob, in_cluster=cluster(user, topic="group", type="share", group=lab,
                                                                     actor=people.bob.email))
        # In each chunk: one refused, one who read everything, one who has today's digest.
        mailbox.unknown.add(users[0].email)
        OwnerNotification.objects.filter(owner=users[1]).update(is_read=True)
        GroupNotification.objects.filter(member=users[1]).update(is_read=True)
        Digest.objects.create(user=users[2], period=today(), status=Digest.SENT, attempts=1, claimed_at=timezone.now())
        return [u.id for u in users]

    counted = []
    for prefix, size in (("small", 4), ("large", 30)):
        ids = chunk_of(prefix, size)
        with CaptureQueriesContext(connection) as queries:
            results = digest.send_chunk(ids, today())
        assert Counter(r.outcome.value for r in results.values()) == {
            "failed": 1, "nothing new": 1, "already sent": 1, "sent": size - 3,
        }
        counted.append(len(queries))
    # The claim; why the others were not claimed; owner rows, group rows, unread counts; the
    # record: savepoint, sent digests, owner marks, group marks, the claims given back, release.
    assert counted == [11, 11]
    assert len(mailbox.messages) == 1 + 27 and emailed(User.objects.get(email="large3@example.com")) == 3


def test_one_refused_recipient_fails_alone_in_its_chunk(people: People, mailbox: Mailbox) -> None:
    alice, bob, carol = people.alice, people.bob, people.carol
    opt_in(alice, bob, carol)
    for user in (alice, bob, carol):
        uploads(user, 2)
    mailbox.unknown.add(bob.email)
    counted = REGISTRY.get_sample_value("graphspace_digest_emails_sent_total") or 0.0

    results = digest.send_chunk([alice.id, bob.id, carol.id], today())

    # It should send alice's and carol's over the same session, and record bob's refusal.
    assert (REGISTRY.get_sample_value("graphspace_digest_emails_sent_total") or 0.0) == counted + 2
    assert [results[u.id].outcome for u in (alice, bob, carol)] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT]
    refusal = results[bob.id].error
    assert isinstance(refusal, digest.email.TransportError) and refusal.permanent and not results[bob.id].retryable
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == ["alice@example.com", "carol@example.com"]
    assert (emailed(alice), emailed(bob), emailed(carol)) == (2, 0, 2)
    record = Digest.objects.get(user=bob)
    assert record.status == Digest.FAILED and "550" in record.error
    assert set(Digest.objects.exclude(user=bob).values_list("status", flat=True)) == {Digest.SENT}


def test_a_worker_dying_before_its_chunk_is_recorded_resends_that_chunk_only(
    people: People, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dave, = more_people("dave")
    users = [people.alice, people.bob, people.carol, dave]
    opt_in(*users)
    for user in users:
        uploads(user, 2)
    monkeypatch.setattr(digest, "CHUNK_SIZE", 2)
    real_record = digest.record
    calls = []

    def record_then_die(*args: Any) -> set[int]:
        calls.append(args)
        if len(calls) == 2:
            raise WorkerDied  # the second chunk's emails are out; its record never commits
        return real_record(*args)

    with monkeypatch.context() as m:
        m.setattr(digest, "record", record_then_die)
        with pytest.raises(WorkerDied):
            digest.run(today())
    # The server has all four; the first chunk (alice, bob) is recorded, the second is not.
    assert len(mailbox.messages) == 4
    assert [emailed(u) for u in users] == [2, 2, 0, 0]
    assert list(Digest.objects.order_by("user_id").values_list("status", flat=True)) == [
        Digest.SENT, Digest.SENT, Digest.SENDING, Digest.SENDING,
    ]

    # Run again at once: the second chunk's claims are still leased, so nobody gets a thing.
    assert digest.run(today()) == {"in flight": 2}
    assert len(mailbox.messages) == 4

    # Once the lease is over: carol and dave get theirs again (at least once), alice and bob,
    # recorded as sent, never do.
    Digest.objects.filter(status=Digest.SENDING).update(claimed_at=timezone.now() - digest.lease() - timedelta(seconds=1))
    assert digest.run(today()) == {"sent": 2}
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages[4:]) == ["carol@example.com", "dave@example.com"]
    assert [emailed(u) for u in users] == [2, 2, 2, 2]
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.SENT}


def test_what_the_server_accepted_is_recorded_even_when_the_chunk_stops_half_way(
    people: People, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob, carol = people.alice, people.bob, people.carol
    opt_in(alice, bob, carol)
    for user in (alice, bob, carol):
        uploads(user, 2)
    real_send = digest.email.send

    def send(mail: digest.email.Mail, connection: Any = None) -> None:
        if mail.to == bob.email:
            raise Stopped
        real_send(mail, connection)

    with monkeypatch.context() as m:
        m.setattr(digest.email, "send", send)
        with pytest.raises(Stopped):
            digest.send_chunk([alice.id, bob.id, carol.id], today())
    # alice's email went out and is recorded; bob's and carol's never left, and their
    # claims wait for the lease.
    assert [m.rcpt_tos[0] for m in mailbox.messages] == ["alice@example.com"]
    assert (emailed(alice), emailed(bob), emailed(carol)) == (2, 0, 0)
    assert Digest.objects.get(user=alice).status == Digest.SENT
    assert {Digest.objects.get(user=u).status for u in (bob, carol)} == {Digest.SENDING}

    Digest.objects.filter(status=Digest.SENDING).update(claimed_at=timezone.now() - digest.lease() - timedelta(seconds=1))
    assert digest.run(today()) == {"sent": 2}
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == ["alice@example.com", "bob@example.com", "carol@example.com"]


def test_a_chunk_out_of_time_gives_the_rest_back_for_a_retry(people: People, mailbox: Mailbox) -> None:
    alice, bob = people.alice, people.bob
    opt_in(alice, bob)
    uploads(alice, 1)
    uploads(bob, 1)
    results = digest.send_chunk([alice.id, bob.id], today(), time_budget=-1)
    assert all(r.outcome is Outcome.FAILED and r.retryable for r in results.values())
    assert mailbox.messages == [] and set(Digest.objects.values_list("status", flat=True)) == {Digest.FAILED}
    # Given back at once, not after the lease: the retry sends.
    assert digest.run(today()) == {"sent": 2}


def test_the_chunk_task_hands_refused_users_to_a_retrying_task_of_their_own(
    transactional_db: None, people: People, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob, carol = people.alice, people.bob, people.carol
    opt_in(alice, bob, carol)
    for user in (alice, bob, carol):
        uploads(user, 2)
    mailbox.busy[alice.email] = 1
    mailbox.unknown.add(bob.email)
    queued: list[tuple[Any, float]] = []
    monkeypatch.setattr(send_digest, "apply_async", lambda args, countdown: queued.append((args, countdown)))

    chunk = send_digest_chunk.apply(args=([alice.id, bob.id, carol.id], today().isoformat()))

    # It should leave the permanent refusal (bob) alone and retry the busy mailbox (alice)
    # after a jittered first backoff.
    assert (chunk.status, chunk.result) == ("SUCCESS", {"sent": 1, "retrying": 1, "failed": 1})
    [(args, countdown)] = queued
    assert args == (alice.id, today().isoformat()) and 0 <= countdown <= 60
    assert send_digest.apply(args=args).result == "sent"
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == ["alice@example.com", "carol@example.com"]
    assert Digest.objects.get(user=bob).status == Digest.FAILED


# --- Who gets one ----------------------------------------------------------------------


def test_a_user_who_read_everything_gets_no_email(people: People, mailbox: Mailbox) -> None:
    alice, bob = people.alice, people.bob
    opt_in(alice, bob)
    owned(alice, "seen", read=True)
    uploads(bob, 2)
    assert digest.due_user_ids(today()) == [bob.id]

    # bob reads his after the fan-out picked him, before his task runs.
    OwnerNotification.objects.filter(owner=bob).update(is_read=True)
    assert digest.send_digest(bob.id, today()).outcome is Outcome.NOTHING_NEW
    assert mailbox.messages == []
    # A later run the same day may still send him what arrives meanwhile.
    assert Digest.objects.get(user=bob).status == Digest.EMPTY
    uploads(bob, 1)
    assert digest.run(today()) == {"sent": 1}


def test_a_user_who_did_not_opt_in_gets_nothing(people: People, mailbox: Mailbox) -> None:
    alice = people.alice
    uploads(alice, 3)
    assert digest.due_user_ids(today()) == []
    assert digest.run(today()) == {}
    assert digest.send_digest(alice.id, today()).outcome is Outcome.OPTED_OUT
    assert mailbox.messages == [] and not Digest.objects.exists()


# --- Unsubscribe -----------------------------------------------------------------------


def unsubscribe_path(mail: Received) -> str:
    return mail.message["List-Unsubscribe"].strip().strip("<>").removeprefix(SITE)


def link_for(user: User, **kwargs: Any) -> str:
    """The unsubscribe path an email to `user` would carry now (kwargs: issued_at)."""
    fresh = User.objects.get(pk=user.pk)  # the trigger renews digest_nonce behind the ORM's back
    recipient = digest.Recipient(fresh.pk, fresh.email, fresh.digest_nonce)
    return f"/digest/unsubscribe/{digest.unsubscribe_token(recipient, **kwargs)}/"


def nonce(user: User) -> Any:
    return User.objects.values_list("digest_nonce", flat=True).get(pk=user.pk)


def test_the_unsubscribe_link_asks_then_turns_the_digest_off(people: People, mailbox: Mailbox) -> None:
    alice = people.alice
    opt_in(alice)
    uploads(alice, 1)
    digest.run(today())
    path = unsubscribe_path(mailbox.messages[0])
    browser = Client(enforce_csrf_checks=True)

    # Following the link (as a mail scanner would) only asks.
    page = browser.get(path)
    assert page.status_code == 200 and b"Turn off the daily digest" in page.content
    assert User.objects.get(pk=alice.pk).receive_notification_email

    done = browser.post(path)
    assert done.status_code == 200 and b"Daily digest turned off" in done.content
    assert not User.objects.get(pk=alice.pk).receive_notification_email

    # Nothing more for alice, however many notifications arrive.
    uploads(alice, 2)
    assert digest.run(digest.current_period() + timedelta(days=1)) == {}
    assert len(mailbox.messages) == 1

    # The change retired the link: it says so, and changes nothing (not even back).
    again = browser.get(path)
    assert again.status_code == 410 and b"This link no longer works" in again.content


def test_one_click_unsubscribe_from_the_mail_client(people: People) -> None:
    opt_in(people.alice)
    response = Client(enforce_csrf_checks=True).post(
        link_for(people.alice), "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert not User.objects.get(pk=people.alice.pk).receive_notification_email


def test_the_digest_nonce_changes_whenever_the_opt_in_does_by_any_path(people: People) -> None:
    alice = people.alice
    start = nonce(alice)
    # The settings API (the notifications page's checkbox): on, then on again (no change).
    api = Client()
    api.force_login(alice)
    assert api.put("/api/v1/notifications/settings", {"receive_notification_email": True},
                   content_type="application/json").status_code == 200
    turned_on = nonce(alice)
    assert turned_on != start
    api.put("/api/v1/notifications/settings", {"receive_notification_email": True}, content_type="application/json")
    assert nonce(alice) == turned_on
    # A model save (the admin), even one that writes back the nonce it read.
    stale = User.objects.get(pk=alice.pk)
    stale.receive_notification_email = False
    stale.save()
    assert nonce(alice) not in (start, turned_on, stale.digest_nonce)
    # Other changes of the user leave it alone.
    before = nonce(alice)
    User.objects.filter(pk=alice.pk).update(is_admin=True)
    assert nonce(alice) == before
    # Every user has a nonce of their own.
    assert len({nonce(u) for u in (people.alice, people.bob, people.carol)}) == 3


def test_a_link_from_before_a_change_of_the_setting_is_refused(people: People) -> None:
    alice = people.alice
    opt_in(alice)
    old_link = link_for(alice)
    # alice turns the digest off and on again on the notifications page.
    api = Client()
    api.force_login(alice)
    for value in (False, True):
        api.put("/api/v1/notifications/settings", {"receive_notification_email": value},
                content_type="application/json")
    for method in (Client().get, Client().post):
        response = method(old_link)
        assert response.status_code == 410 and b"This link no longer works" in response.content
        assert b"Nothing was changed" in response.content
    assert User.objects.get(pk=alice.pk).receive_notification_email
    # The next email's link works.
    assert Client().post(link_for(alice)).status_code == 200
    assert not User.objects.get(pk=alice.pk).receive_notification_email


def test_an_expired_link_is_refused_and_says_so(people: People) -> None:
    alice = people.alice
    opt_in(alice)
    expired = link_for(alice, issued_at=timezone.now() - digest.UNSUBSCRIBE_MAX_AGE - timedelta(minutes=1))
    nearly = link_for(alice, issued_at=timezone.now() - digest.UNSUBSCRIBE_MAX_AGE + timedelta(minutes=1))
    for method in (Client().get, Client().post):
        response = method(expired)
        assert response.status_code == 410 and b"This link has expired" in response.content
        assert b"60 days" in response.content and b"Nothing was changed" in response.content
    assert User.objects.get(pk=alice.pk).receive_notification_email
    assert Client().get(nearly).status_code == 200


def test_a_tampered_or_foreign_token_changes_nothing_and_says_so(people: People) -> None:
    alice = people.alice
    opt_in(alice)
    token = link_for(alice).split("/")[-2]
    bob_token = link_for(people.bob).split("/")[-2]
    alice_nonce = nonce(alice).hex
    forged = [
        token[:-2] + ("xx" if not token.endswith("xx") else "yy"),  # altered signature
        bob_token.split(":")[0] + token[token.index(":"):],  # bob's payload, alice's signature
        signing.dumps({"u": alice.id, "n": alice_nonce, "p": digest.UNSUBSCRIBE_PURPOSE}, salt="another.purpose"),
        signing.dumps({"u": alice.id, "n": alice_nonce, "p": "something-else"}, salt=digest.UNSUBSCRIBE_SALT),
        digest.unsubscribe_token(digest.Recipient(10**9, "nobody@example.com", nonce(alice))),  # no such user
    ]
    client = Client()
    for bad in forged:
        for method in (client.get, client.post):
            response = method(f"/digest/unsubscribe/{bad}/")
            assert response.status_code == 400, bad
            assert b"This link is not valid" in response.content and b"Nothing was changed" in response.content
    # Knowing the SECRET_KEY is not enough: without alice's nonce, a token made for her is refused.
    guessed = digest.unsubscribe_token(digest.Recipient(alice.id, alice.email, uuid4()))
    assert client.post(f"/digest/unsubscribe/{guessed}/").status_code == 410
    assert User.objects.get(pk=alice.pk).receive_notification_email


def test_links_over_real_http_fresh_works_expired_revoked_and_tampered_do_not(
    web: str, transactional_db: None, people: People,
) -> None:
    alice, bob = people.alice, people.bob
    opt_in(alice, bob)
    fresh = link_for(alice)
    expired = link_for(bob, issued_at=timezone.now() - digest.UNSUBSCRIBE_MAX_AGE - timedelta(days=1))

    def request(path: str, method: str = "GET") -> tuple[int, str]:
        body = b"List-Unsubscribe=One-Click" if method == "POST" else None
        req = urllib.request.Request(web + path, data=body, method=method,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()

    status, page = request(fresh)
    assert status == 200 and "Turn off the daily digest" in page
    assert request(expired, "POST")[0] == 410
    assert request(fresh[:-3] + ("xx/" if not fresh.endswith("xx/") else "yy/"), "POST")[0] == 400
    # The mail client's one-click POST, over HTTP, without a cookie or a CSRF token.
    status, page = request(fresh, "POST")
    assert status == 200 and "Daily digest turned off" in page
    assert not User.objects.get(pk=alice.pk).receive_notification_email
    assert User.objects.get(pk=bob.pk).receive_notification_email
    # The change retired the link.
    assert request(fresh, "POST")[0] == 410


# --- The schedule and the command ------------------------------------------------------


def test_the_daily_schedule_exists_after_migrate_at_the_configured_time(db: None, settings: Any) -> None:
    # Migrate this app back and forth (inside the test's transaction, so it all rolls back):
    # other tests' flushes may have emptied the beat tables since the database was set up.
    call_command("migrate", "notifications", "0002_clusters", verbosity=0)
    assert not PeriodicTask.objects.filter(name="notifications daily digest").exists()
    call_command("migrate", "notifications", verbosity=0)
    task = PeriodicTask.objects.select_related("crontab").get(name="notifications daily digest")
    assert task.task == "tasks.send_digests" and task.enabled
    assert (task.crontab.minute, task.crontab.hour) == (str(django_settings.DIGEST_MINUTE), str(django_settings.DIGEST_HOUR))
    assert (task.crontab.day_of_week, task.crontab.day_of_month, task.crontab.month_of_year) == ("*", "*", "*")
    assert str(task.crontab.timezone) == django_settings.TIME_ZONE

    # A database migrated with DIGEST_HOUR=6, DIGEST_MINUTE=30 in Europe/Berlin gets that time.
    settings.DIGEST_HOUR, settings.DIGEST_MINUTE, settings.TIME_ZONE = 6, 30, "Europe/Berlin"
    call_command("migrate", "notifications", "0002_clusters", verbosity=0)
    call_command("migrate", "notifications", verbosity=0)
    again = PeriodicTask.objects.select_related("crontab").get(name="notifications daily digest")
    assert (again.crontab.hour, again.crontab.minute, str(again.crontab.timezone)) == ("6", "30", "Europe/Berlin")


def test_the_send_digests_command_sends_now(people: People, mailbox: Mailbox) -> None:
    opt_in(people.alice)
    uploads(people.alice, 2)
    out = _call("send_digests")
    assert f"digest {today()}: 1 sent" in out
    assert len(mailbox.to("alice@example.com")) == 1
    assert f"digest {today()}: nobody is due" in _call("send_digests")


def test_the_command_can_hand_the_digest_to_celery_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    queued: list[str] = []

    class Queued:
        id = "task-1"

    def delay(period: str) -> Queued:
        queued.append(period)
        return Queued()

    monkeypatch.setattr(send_digests, "delay", delay)
    assert _call("send_digests", "--queue", "--period", "2026-03-01") == "digest 2026-03-01: queued as task task-1\n"
    assert queued == ["2026-03-01"]
    with pytest.raises(CommandError):
        _call("send_digests", "--period", "yesterday")


def _call(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- Through the broker and a real worker ----------------------------------------------


@dataclass(frozen=True)
class Broker:
    url: str
    queue: str

    def send(self, task: Any, *args: Any) -> Any:
        with app.connection_for_write(self.url) as conn:
            return task.apply_async(args, connection=conn, queue=self.queue)


@pytest.fixture
def digest_broker(broker_url: str) -> Broker:
    return Broker(f"{broker_url.rsplit('/', 1)[0]}/{DIGEST_BROKER_DB}", f"digest-{uuid4().hex[:8]}")


def digest_worker(process_env: dict[str, str], broker: Broker, smtp_port: int, **extra: str) -> Process:
    return Process("worker", {
        **process_env, "CELERY_BROKER_URL": broker.url, "CELERY_QUEUE": broker.queue,
        "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port), "SITE_URL": SITE, **extra,
    }, label="worker-digest")


def test_beats_task_sends_through_the_broker_and_a_real_worker(
    transactional_db: None, people: People, mailbox: Mailbox, smtp_port: int, process_env: dict[str, str],
    digest_broker: Broker,
) -> None:
    opt_in(people.alice, people.bob)
    uploads(people.alice, 3)
    uploads(people.bob, 1)
    worker = digest_worker(process_env, digest_broker, smtp_port)
    worker.start(ready="ready.")
    try:
        fanout = digest_broker.send(send_digests)
        wait_for(lambda: len(mailbox.messages) >= 2, timeout=60, what="two digest emails")
        # The digest tasks keep their results (django-celery-results): one chunk of two users.
        chunk = wait_for(lambda: TaskResult.objects.filter(task_name="tasks.send_digest_chunk", status="SUCCESS").first(),
                         timeout=30, what="the send_digest_chunk result")
        assert '"sent": 2' in chunk.result
        stored = TaskResult.objects.get(task_id=fanout.id)
        assert stored.task_name == "tasks.send_digests" and stored.status == "SUCCESS"
        assert '"users": 2' in stored.result and '"chunks": 1' in stored.result
        time.sleep(0.5)  # time enough for a duplicate to show up
    finally:
        worker.stop()
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == ["alice@example.com", "bob@example.com"]
    assert mailbox.to("alice@example.com")[0].message["Subject"] == "You have 3 unread notifications on GraphSpace"
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.SENT}
    assert emailed(people.alice) == 3 and emailed(people.bob) == 1


def waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock'")
        return bool(cursor.fetchone()[0])


def test_a_worker_killed_between_sending_and_marking_sends_the_digest_again(
    transactional_db: None, people: People, mailbox: Mailbox, smtp_port: int, process_env: dict[str, str],
    digest_broker: Broker,
) -> None:
    alice = people.alice
    opt_in(alice)
    uploads(alice, 2)
    # A short lease and visibility timeout, so the redelivery happens within the test.
    worker = digest_worker(process_env, digest_broker, smtp_port,
                           DIGEST_CLAIM_LEASE_SECONDS="4", CELERY_VISIBILITY_TIMEOUT="2")
    worker.start(ready="ready.")
    try:
        with transaction.atomic():
            # Hold alice's notifications, so that the worker's mark waits on their row locks.
            list(OwnerNotification.objects.select_for_update().filter(owner=alice))
            digest_broker.send(send_digest, alice.id, today().isoformat())
            wait_for(lambda: len(mailbox.messages) == 1, timeout=30, what="the digest email")
            wait_for(waiting_on_a_lock, what="the worker's mark to wait")
            worker.stop(signal.SIGKILL)
        # The mail server accepted the email, and nothing says so: the mark's transaction
        # died with the worker, and the claim is left "sending".
        time.sleep(0.5)
        assert emailed(alice) == 0
        assert Digest.objects.get(user=alice).status == Digest.SENDING

        # The unacknowledged task comes back to a new worker; once the claim's lease is over
        # it sends again and marks. At least once: alice gets the digest twice.
        time.sleep(2.5)
        worker.start(ready="ready.")
        wait_for(lambda: Digest.objects.get(user=alice).status == Digest.SENT, timeout=60, what="the digest resent")
    finally:
        worker.stop()
    assert [m.rcpt_tos for m in mailbox.messages] == [["alice@example.com"], ["alice@example.com"]]
    assert emailed(alice) == 2
    assert Digest.objects.get(user=alice).attempts == 2
