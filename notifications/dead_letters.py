"""Dead letters kept in PostgreSQL: what can never become a notification, with its reason.

The bridge keeps its rejections on the dead-letter topic and comes here only when the topic
cannot take one; the persist task comes here for every event the database refused. Writing
is idempotent (one row per fingerprint), so a redelivered batch records nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection

from notifications.models import DeadLetter

# Reasons are for people; a whole traceback or a huge value in one helps nobody.
REASON_MAX = 2000


@dataclass(frozen=True)
class Letter:
    stage: str
    reason: str
    value: bytes
    topic: str = ""
    partition: int | None = None
    offset: int | None = None
    event_id: str = ""
    key: bytes | None = None

    @property
    def fingerprint(self) -> str:
        """The same message from the same place is the same dead letter. An event that the
        persist task refused is known by its event id (the batch that carried it may be
        redelivered in other company)."""
        digest = hashlib.sha256(self.value).hexdigest()[:32]
        if self.stage == DeadLetter.PERSIST and self.event_id:
            return f"{self.stage}:{self.event_id[:64]}"
        return f"{self.stage}:{self.topic[:40]}:{self.partition}:{self.offset}:{digest}"


def clean_text(text: str, limit: int = REASON_MAX) -> str:
    """Text PostgreSQL accepts: no NUL, within the limit."""
    return text.replace("\x00", "\\x00")[:limit]


_INSERT = (
    f'INSERT INTO "{DeadLetter._meta.db_table}" '
    "(stage, reason, topic, partition, \"offset\", event_id, key, value, fingerprint, created_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (fingerprint) DO NOTHING"
)


def record(letters: Sequence[Letter]) -> int:
    """Store the dead letters not stored yet; returns how many were new."""
    if not letters:
        return 0
    rows = [
        (
            letter.stage, clean_text(letter.reason), clean_text(letter.topic, 255), letter.partition,
            letter.offset, clean_text(letter.event_id, 64), letter.key, letter.value, letter.fingerprint,
        )
        for letter in letters
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_INSERT, rows)
        return max(cursor.rowcount, 0)
