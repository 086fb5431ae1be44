"""The one way GraphSpace sends mail. Everything else builds a `Mail` and calls `send()`.

A failure comes back as a `TransportError` that says whether a retry can help: the mail
server's 4xx answers, a refused or dropped connection and a timeout are transient; its 5xx
answers (no such mailbox, relaying denied, bad credentials) are permanent.
"""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend


class TransportError(Exception):
    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __str__(self) -> str:
        return f"{'permanent' if self.permanent else 'transient'}: {self.message}"


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str
    headers: Mapping[str, str] = field(default_factory=dict)


def one_click_unsubscribe_headers(url: str) -> dict[str, str]:
    """RFC 2369 and RFC 8058: mail clients show an unsubscribe button that POSTs to `url`."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


def send(mail: Mail, connection: BaseEmailBackend | None = None) -> None:
    """Hand `mail` to the mail server; return only once the server has accepted it.

    With a shared `connection` (one SMTP session for many emails), a failure closes it so
    that the next email opens a fresh session instead of reusing a broken one.
    """
    message = EmailMultiAlternatives(
        subject=mail.subject, body=mail.text, from_email=settings.DEFAULT_FROM_EMAIL,
        to=[mail.to], headers={"Auto-Submitted": "auto-generated", **mail.headers}, connection=connection,
    )
    message.attach_alternative(mail.html, "text/html")
    try:
        if connection is not None:
            # Opens the shared session once; a no-op while it is open.
            connection.open()
        accepted = message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        _close(connection)
        raise TransportError(f"recipient refused: {exc.recipients}", permanent=all(map(_is_permanent, codes)))
    except smtplib.SMTPResponseException as exc:
        _close(connection)
        detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        raise TransportError(f"mail server said {exc.smtp_code} {detail}", permanent=_is_permanent(exc.smtp_code))
    except (smtplib.SMTPException, OSError) as exc:
        # Refused, dropped or timed-out connections (OSError covers socket.timeout and
        # ConnectionRefusedError): the server may well be back in a minute.
        _close(connection)
        raise TransportError(f"mail server unreachable: {exc!r}", permanent=False)
    if accepted != 1:
        raise TransportError("the mail backend accepted nothing", permanent=False)


@contextlib.contextmanager
def session() -> Iterator[BaseEmailBackend]:
    """One connection to the mail server for many emails, opened by the first send."""
    connection = get_connection()
    try:
        yield connection
    finally:
        _close(connection)


def _close(connection: BaseEmailBackend | None) -> None:
    if connection is not None:
        # The session is broken already; closing it is only tidying up before a fresh one.
        with contextlib.suppress(Exception):
            connection.close()
