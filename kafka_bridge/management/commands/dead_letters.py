"""`python manage.py dead_letters list | show ID | replay ID... | replay --all`

The dead letters in PostgreSQL (`notification_dead_letter`): messages the bridge rejected that
the dead-letter topic could not take, and events the persist task could not store. Each row
keeps the bytes as they came and the reason. Once the cause is fixed (the producer, the schema,
a bound), `replay` parses each again exactly as its stage did and hands the valid ones to
Celery in one persist task per 500; a letter still invalid keeps its row, and the command
says why. Replaying twice is harmless: the persist task's unique keys store each event once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import F, Func, IntegerField
from django.utils import timezone

from kafka_bridge.submit import submit_batch
from notifications.events import Event, InvalidEvent, event_from_dict, parse_message
from notifications.models import DeadLetter

# One persist task per this many events, as the bridge's batches (KAFKA_BATCH_MAX).
REPLAY_BATCH = 500
REASON_WIDTH = 100


def reparse(letter: DeadLetter) -> Event:
    """The letter's event, parsed as its stage parsed it; InvalidEvent if it still is not one."""
    value = bytes(letter.value)
    if letter.stage == DeadLetter.BRIDGE:
        logical = {name: topic for topic, name in settings.KAFKA_TOPICS.items()}.get(letter.topic)
        if logical is None:
            raise InvalidEvent(f"topic {letter.topic!r} is none of the notification topics now "
                               f"({', '.join(settings.KAFKA_TOPICS.values())})")
        # Its position gives a message without an event_id the same id it would have had.
        return parse_message(logical, value, partition=letter.partition or 0, offset=letter.offset)
    # A persist letter holds the event as the bridge handed it on (Event.to_task(), with its
    # topic): validated by the same function, with the same reasons, as any other event.
    try:
        data = json.loads(value)
    except ValueError as error:
        raise InvalidEvent(f"cannot be read: {type(error).__name__}") from None
    return event_from_dict(str(data.get("topic")) if isinstance(data, dict) else "", data)


def printable(value: bytes) -> str:
    """The bytes as text a terminal shows safely: UTF-8 where it is, escapes elsewhere."""
    text = value.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


def when(moment: datetime | None) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S}" if moment is not None else "no"


def position(letter: DeadLetter) -> str:
    if not letter.topic:
        return "-"
    where = f"{letter.topic}[{letter.partition}]" if letter.partition is not None else letter.topic
    return f"{where}@{letter.offset}" if letter.offset is not None else where


class Command(BaseCommand):
    help = "List, show and replay the dead letters kept in PostgreSQL."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="the dead letters not replayed yet, oldest first")
        listing.add_argument("--all", action="store_true", help="include those replayed already")
        listing.add_argument("--limit", type=int, default=200, help="show at most this many (default 200)")
        show = actions.add_parser("show", help="one dead letter: where it came from, why, and its value")
        show.add_argument("id", type=int)
        show.add_argument("--max-bytes", type=int, default=64 * 1024, help="print at most this much of the value")
        replay = actions.add_parser("replay", help="parse again and hand the valid ones to Celery")
        replay.add_argument("ids", type=int, nargs="*", metavar="ID")
        replay.add_argument("--all", action="store_true", help="every dead letter not replayed yet")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self.list_letters(include_replayed=options["all"], limit=options["limit"])
        elif action == "show":
            self.show_letter(options["id"], options["max_bytes"])
        else:
            if bool(options["ids"]) == bool(options["all"]):
                raise CommandError("name the dead letters to replay, or --all (not both)")
            self.replay_letters(options["ids"] or None)

    def list_letters(self, *, include_replayed: bool, limit: int) -> None:
        letters = DeadLetter.objects.defer("value", "key").order_by("id")
        if not include_replayed:
            letters = letters.filter(replayed_at__isnull=True)
        total = letters.count()
        # The size without loading the values (a letter may hold megabytes).
        rows = letters.annotate(size=Func(F("value"), function="octet_length", output_field=IntegerField()))[:limit]
        self.stdout.write(f"{'id':>6}  {'stage':<7}  {'when':<19}  {'where':<40}  {'event id':<36}  {'size':>8}  reason")
        for letter in rows:
            replayed = f" [replayed {when(letter.replayed_at)}]" if letter.replayed_at else ""
            reason = letter.reason.replace("\n", " ")
            if len(reason) > REASON_WIDTH:
                reason = reason[: REASON_WIDTH - 3] + "..."
            self.stdout.write(
                f"{letter.id:>6}  {letter.stage:<7}  {when(letter.created_at)}  "
                f"{position(letter):<40}  {letter.event_id or '-':<36}  {letter.size:>8}  {reason}{replayed}"
            )
        shown = min(total, limit)
        what = "dead letters" if include_replayed else "dead letters not replayed"
        self.stdout.write(f"{total} {what}" + (f" ({shown} shown; --limit for more)" if shown < total else ""))

    def show_letter(self, letter_id: int, max_bytes: int) -> None:
        letter = DeadLetter.objects.filter(id=letter_id).first()
        if letter is None:
            raise CommandError(f"no dead letter {letter_id}")
        value = bytes(letter.value)
        key = bytes(letter.key) if letter.key is not None else None
        self.stdout.write(f"dead letter {letter.id} ({letter.stage}), kept {when(letter.created_at)}")
        self.stdout.write(f"from:     {position(letter)}")
        self.stdout.write(f"event id: {letter.event_id or '-'}")
        self.stdout.write(f"key:      {printable(key) if key is not None else '-'}")
        self.stdout.write(f"replayed: {when(letter.replayed_at)}")
        self.stdout.write(f"reason:   {letter.reason}")
        self.stdout.write(f"value:    {len(value)} bytes")
        self.stdout.write(printable(value[:max_bytes]))
        if len(value) > max_bytes:
            self.stdout.write(f"... ({len(value) - max_bytes} more bytes; --max-bytes to see them)")

    def replay_letters(self, ids: Sequence[int] | None) -> None:
        letters = DeadLetter.objects.order_by("id")
        if ids is not None:
            found = list(letters.filter(id__in=ids))
            missing = sorted(set(ids) - {letter.id for letter in found})
            if missing:
                raise CommandError(f"no dead letter {', '.join(map(str, missing))}")
        else:
            found = list(letters.filter(replayed_at__isnull=True))
        valid: list[tuple[DeadLetter, Event]] = []
        invalid = 0
        for letter in found:
            if letter.replayed_at is not None:
                self.stdout.write(f"{letter.id}: replayed already on {when(letter.replayed_at)}; skipped")
                continue
            try:
                valid.append((letter, reparse(letter)))
            except InvalidEvent as error:
                invalid += 1
                self.stdout.write(f"{letter.id}: still invalid, kept: {error.reason}")
        replayed = 0
        for start in range(0, len(valid), REPLAY_BATCH):
            chunk = valid[start:start + REPLAY_BATCH]
            try:
                task_id = submit_batch([event for _, event in chunk])
            except Exception as error:
                raise CommandError(f"Celery did not take the events ({error}); {replayed} replayed, the rest kept") from error
            # Marked after Celery took them: a crash in between replays them again, which
            # stores nothing twice; marking first could lose them.
            DeadLetter.objects.filter(id__in=[letter.id for letter, _ in chunk], replayed_at__isnull=True).update(
                replayed_at=timezone.now())
            for letter, event in chunk:
                self.stdout.write(f"{letter.id}: replayed as event {event.event_id} (task {task_id})")
            replayed += len(chunk)
        self.stdout.write(f"{replayed} replayed, {invalid} still invalid")
        if invalid:
            raise CommandError(f"{invalid} dead letters are still invalid (kept; reasons above)")

