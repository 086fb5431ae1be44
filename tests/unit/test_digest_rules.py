"""The digest's pure rules: grouping, order, cap, wording, subject, tokens, and which mail
failures a retry can cure. No database, no mail server."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from django.core import signing
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

from notifications import digest, email
from notifications.digest import Item, UnsubscribeToken, build_contents, subject
from notifications.digest import TokenState as State

A, B = "alice@example.com", "bob@example.com"
ALICE = digest.Recipient(42, A, UUID("0b3c2d5e-8f1a-4b6c-9d7e-1f2a3b4c5d6e"))
VALID, EXPIRED, INVALID = State.VALID, State.EXPIRED, State.INVALID
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def item(pk: int, minutes: int, *, topic: str = "owner", type: str = "upload", resource: str = "graph",
         name: str = "", actor: str | None = A, cluster: int | None = None, group: str | None = None) -> Item:
    return Item(topic, pk, type, resource, name or f"g{pk}", actor, T0 + timedelta(minutes=minutes), cluster, group)


@pytest.fixture(autouse=True)
def site(settings: object) -> None:
    settings.SITE_URL = "https://graphspace.example.org/"  # type: ignore[attr-defined]


def test_a_cluster_is_one_line_counting_its_notifications_with_the_first_names() -> None:
    items = [item(i, i, cluster=7) for i in range(1, 6)]
    contents = build_contents(items, A, cap=20)
    assert [(line.text, line.preview, line.count) for line in contents.lines] == [
        ("5 graphs uploaded", "g5, g4, g3 and 2 more", 5),
    ]
    assert contents.new == 5 and contents.more == 0


def test_group_lines_lead_with_the_group_and_name_the_actor() -> None:
    one = item(1, 0, topic="group", type="share", name="XYZ", cluster=3, group="Lab")
    contents = build_contents([one], B, cap=20)
    assert contents.lines[0].text == "Lab: alice@example.com shared graph XYZ"
    two = [item(2, 1, topic="group", type="share", cluster=4, group="Lab"), item(3, 2, topic="group", type="share",
                                                                                 cluster=4, group="Lab")]
    assert build_contents(two, A, cap=20).lines[0].text == "Lab: You shared 2 graphs"


def test_clusters_come_newest_first_by_their_newest_notification() -> None:
    items = [item(1, 0, cluster=1), item(2, 50, cluster=1), item(3, 10, type="delete", cluster=2),
             item(4, 30, cluster=None)]
    contents = build_contents(items, A, cap=20)
    assert [line.text for line in contents.lines] == ["2 graphs uploaded", "You uploaded graph g4", "You deleted graph g3"]
    assert [line.newest for line in contents.lines] == [T0 + timedelta(minutes=m) for m in (50, 30, 10)]


def test_rows_without_a_cluster_stand_alone_and_topics_never_merge() -> None:
    items = [item(1, 0), item(2, 1), item(1, 2, topic="group", type="share", group="Lab")]
    assert len(build_contents(items, A, cap=20).lines) == 3


def test_the_cap_lists_the_newest_clusters_and_counts_the_rest() -> None:
    items = [item(i, i, cluster=i // 2) for i in range(10)]  # clusters 0..4 of two each
    contents = build_contents(items, A, cap=2)
    assert [line.count for line in contents.lines] == [2, 2]
    assert contents.more == 6
    # Only what the lines stand for is listed, so only that is marked emailed.
    assert sorted(i.id for i in contents.listed) == [6, 7, 8, 9]
    assert contents.ids("owner") == [9, 8, 7, 6] and contents.ids("group") == []


def test_links_are_absolute_on_the_site_url() -> None:
    contents = build_contents([item(1, 0), item(2, 1, cluster=5), item(3, 2, cluster=5)], A, cap=20)
    assert [line.url for line in contents.lines] == [
        "https://graphspace.example.org/notifications/",
        "https://graphspace.example.org/notifications/open/owner/1/",
    ]


def test_the_subject_counts_notifications_not_clusters() -> None:
    assert subject(1) == "You have 1 unread notification on GraphSpace"
    assert subject(27) == "You have 27 unread notifications on GraphSpace"


def test_both_parts_render_the_same_lines_and_the_html_escapes_names() -> None:
    evil = "<img src=x onerror=alert(1)>"
    contents = build_contents([item(1, 0, name=evil), item(2, 1)], A, cap=1)
    mail = digest.render(ALICE, contents, unread=9)
    assert mail.subject == "You have 9 unread notifications on GraphSpace"
    assert "You have 9 unread notifications on GraphSpace; 2 of them are new since your last digest." in mail.text
    assert "- You uploaded graph g2" in mail.text and "...and 1 more: https://graphspace.example.org/notifications/" in mail.text
    assert evil not in mail.html and "&lt;img src=x" not in mail.html  # capped away
    shown = digest.render(ALICE, build_contents([item(1, 0, name=evil)], A, cap=1), unread=1)
    assert evil in shown.text and evil not in shown.html and "You uploaded graph &lt;img src=x onerror=alert(1)&gt;" in shown.html
    link = mail.headers["List-Unsubscribe"]
    assert link.startswith("<https://graphspace.example.org/digest/unsubscribe/") and link.endswith("/>")
    assert digest.read_unsubscribe_token(link.split("/")[-2]) == UnsubscribeToken(VALID, 42, ALICE.nonce.hex)
    assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_an_unsubscribe_token_names_its_user_and_their_nonce_and_nothing_else() -> None:
    token = digest.unsubscribe_token(ALICE)
    assert digest.read_unsubscribe_token(token) == UnsubscribeToken(VALID, 42, ALICE.nonce.hex)
    # Signed, not encrypted: the nonce is in it, so only the user's own emails hold it.
    bob = digest.Recipient(43, B, uuid4())
    forged = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # altered signature
        digest.unsubscribe_token(bob).split(":")[0] + token[token.index(":"):],  # bob's payload, alice's signature
        # Signed by this site, dated, but for another purpose or under another salt.
        signing.dumps({"u": 42, "n": ALICE.nonce.hex, "p": "password-reset"}, salt=digest.UNSUBSCRIBE_SALT),
        signing.dumps({"u": 42, "n": ALICE.nonce.hex, "p": digest.UNSUBSCRIBE_PURPOSE}, salt="accounts.reset"),
        # Dated and for this, but naming no user or no nonce as it should.
        signing.dumps({"u": "42", "n": ALICE.nonce.hex, "p": digest.UNSUBSCRIBE_PURPOSE}, salt=digest.UNSUBSCRIBE_SALT),
        signing.dumps({"u": True, "n": ALICE.nonce.hex, "p": digest.UNSUBSCRIBE_PURPOSE}, salt=digest.UNSUBSCRIBE_SALT),
        signing.dumps({"u": 42, "p": digest.UNSUBSCRIBE_PURPOSE}, salt=digest.UNSUBSCRIBE_SALT),
        signing.dumps([42], salt=digest.UNSUBSCRIBE_SALT),
        "not-a-token",
    ]
    for bad in forged:
        assert digest.read_unsubscribe_token(bad) == UnsubscribeToken(INVALID), bad


def test_an_unsubscribe_token_expires_after_60_days() -> None:
    now = datetime.now(UTC)
    fresh = digest.unsubscribe_token(ALICE, issued_at=now - timedelta(days=59, hours=23))
    old = digest.unsubscribe_token(ALICE, issued_at=now - timedelta(days=60, minutes=1))
    assert digest.UNSUBSCRIBE_MAX_AGE == timedelta(days=60)
    assert digest.read_unsubscribe_token(fresh).state is VALID
    assert digest.read_unsubscribe_token(old) == UnsubscribeToken(EXPIRED)
    # The undated links of emails sent before links expired count as expired, not as forged.
    undated = signing.Signer(salt=digest.UNSUBSCRIBE_SALT).sign_object({"u": 42, "p": digest.UNSUBSCRIBE_PURPOSE})
    assert digest.read_unsubscribe_token(undated) == UnsubscribeToken(EXPIRED)


class Refusing(BaseEmailBackend):
    """A mail backend whose server answers with `error`."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.closed = False

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        raise self.error

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("error", "permanent"), [
    (smtplib.SMTPRecipientsRefused({A: (450, b"4.2.1 mailbox busy")}), False),
    (smtplib.SMTPRecipientsRefused({A: (550, b"5.1.1 no such user")}), True),
    (smtplib.SMTPSenderRefused(451, b"4.3.0 try later", "n@g"), False),
    (smtplib.SMTPDataError(554, b"5.7.1 rejected"), True),
    (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), True),
    (smtplib.SMTPServerDisconnected("gone"), False),
    (ConnectionRefusedError(111, "Connection refused"), False),
    (TimeoutError("timed out"), False),
])
def test_only_4xx_and_connection_failures_are_worth_a_retry(error: Exception, permanent: bool) -> None:
    backend = Refusing(error)
    with pytest.raises(email.TransportError) as raised:
        email.send(email.Mail(to=A, subject="s", text="t", html="<p>t</p>"), backend)
    assert raised.value.permanent is permanent
    # A shared session that failed is closed, so the next email opens a fresh one.
    assert backend.closed
