"""`manage.py dead_letters`: an operator lists the dead letters, reads one, and replays them
once the cause is fixed; a letter still invalid keeps its row and the command says why."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kafka_bridge.management.commands import dead_letters as command
from notifications import dead_letters
from notifications.events import Event, new_event, parse_message
from notifications.models import DeadLetter, OwnerNotification
from tests.conftest import People
from tests.integration.conftest import ROOT, Process, wait_for

TOPICS = {"owner": "dl-owner", "group": "dl-group"}


def upload(n: int, **fields: Any) -> dict[str, Any]:
    return {"owner_email": "alice@example.com", "message": f"New graph G{n} uploaded.", "resource": "graph",
            "resource_id": n, "type": "upload", **fields}


def bridge_letter(offset: int, value: bytes, reason: str, topic: str = "dl-owner", event_id: str = "") -> DeadLetter:
    dead_letters.record([dead_letters.Letter(
        stage=DeadLetter.BRIDGE, reason=reason, value=value, topic=topic, partition=0, offset=offset,
        event_id=event_id, key=b"owner:alice@example.com",
    )])
    return DeadLetter.objects.get(topic=topic, offset=offset)


def persist_letter(event: Event, reason: str = "DataError: refused") -> DeadLetter:
    dead_letters.record([dead_letters.Letter(
        stage=DeadLetter.PERSIST, reason=reason, value=json.dumps(event.to_task()).encode(), topic=event.topic,
        event_id=str(event.event_id),
    )])
    return DeadLetter.objects.get(event_id=str(event.event_id))


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("dead_letters", *args, stdout=out)
    return out.getvalue()


class Celery:
    """Stands in for submit_batch: takes every batch, or refuses them all."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.batches: list[list[Event]] = []

    def __call__(self, events: Sequence[Event]) -> str:
        if self.refuse:
            raise ConnectionError("redis is down")
        self.batches.append(list(events))
        return f"task-{len(self.batches)}"


@pytest.fixture
def celery(monkeypatch: pytest.MonkeyPatch) -> Celery:
    fake = Celery()
    monkeypatch.setattr(command, "submit_batch", fake)
    return fake


@pytest.fixture
def topics(settings: Any) -> dict[str, str]:
    settings.KAFKA_TOPICS = TOPICS
    return TOPICS


@pytest.mark.django_db
def test_the_list_shows_position_event_id_size_and_reason_of_those_not_replayed() -> None:
    big = bridge_letter(7, b"x" * 2_000_000, "message is 2000000 bytes, more than the 65536 allowed", event_id="ev-7")
    bad = bridge_letter(8, b"{oops", "message is not JSON: Expecting property name enclosed in double quotes at position 1")
    done = bridge_letter(9, b"[]", "message must be a JSON object, not list")
    DeadLetter.objects.filter(id=done.id).update(replayed_at="2026-01-01T00:00:00Z")

    out = run("list")

    lines = out.splitlines()
    assert lines[0].split() == ["id", "stage", "when", "where", "event", "id", "size", "reason"]
    assert f"{big.id:>6}  bridge " in lines[1]
    assert "dl-owner[0]@7" in lines[1] and "ev-7" in lines[1] and " 2000000  message is 2000000 bytes" in lines[1]
    assert "dl-owner[0]@8" in lines[2] and "       5  message is not JSON" in lines[2]
    assert "@9" not in out
    assert lines[-1] == "2 dead letters not replayed"
    every = run("list", "--all")
    assert "dl-owner[0]@9" in every and "[replayed 2026-01-01" in every
    assert every.splitlines()[-1] == "3 dead letters"
    assert bad.id != done.id


@pytest.mark.django_db
def test_show_prints_the_value_so_a_terminal_can_show_it() -> None:
    letter = bridge_letter(3, b'{"message": "caf\xc3\xa9\x00"}\xff\x1b[31m', "message is not UTF-8")

    out = run("show", str(letter.id))

    assert f"dead letter {letter.id} (bridge)" in out
    assert "from:     dl-owner[0]@3" in out
    assert "key:      owner:alice@example.com" in out
    assert "reason:   message is not UTF-8" in out
    assert "replayed: no" in out
    # UTF-8 stays text; NUL, a stray byte and a terminal escape are shown, not sent.
    assert '{"message": "café\\x00"}\\xff\\x1b[31m' in out
    assert "\x1b" not in out


@pytest.mark.django_db
def test_show_cuts_a_huge_value() -> None:
    letter = bridge_letter(4, b"y" * 100_000, "too large")
    out = run("show", str(letter.id), "--max-bytes", "10")
    assert "yyyyyyyyyy\n" in out
    assert "... (99990 more bytes; --max-bytes to see them)" in out


@pytest.mark.django_db
def test_replay_hands_the_valid_ones_to_celery_and_keeps_the_invalid_with_their_reason(
    celery: Celery, topics: dict[str, str],
) -> None:
    # Rejected under an older bound, valid now: replayed with the event id its position gives.
    fixed = bridge_letter(11, json.dumps(upload(1)).encode(), "resource_name: too long (an old bound)")
    still_bad = bridge_letter(12, b"{oops", "message is not JSON")
    stored_later = persist_letter(new_event("owner", upload(2)))
    elsewhere = bridge_letter(13, json.dumps(upload(3)).encode(), "old", topic="renamed-topic")

    with pytest.raises(CommandError, match="2 dead letters are still invalid"):
        run("replay", "--all")

    [batch] = celery.batches
    assert [e.resource_id for e in batch] == [1, 2]
    assert batch[0].event_id == parse_message("owner", bytes(fixed.value), partition=0, offset=11).event_id
    assert batch[1] == Event.model_validate_json(bytes(stored_later.value))
    replayed = set(DeadLetter.objects.filter(replayed_at__isnull=False).values_list("id", flat=True))
    assert replayed == {fixed.id, stored_later.id}
    # The invalid ones keep their rows, not replayed.
    assert set(DeadLetter.objects.filter(replayed_at__isnull=True).values_list("id", flat=True)) == {still_bad.id, elsewhere.id}


@pytest.mark.django_db
def test_replay_says_why_a_letter_is_still_invalid(celery: Celery, topics: dict[str, str]) -> None:
    bad = bridge_letter(21, json.dumps(upload(1, resource_id=2**70)).encode(), "resource_id too large")
    gone = bridge_letter(22, b"{}", "old", topic="renamed-topic")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("dead_letters", "replay", str(bad.id), str(gone.id), stdout=out)
    text = out.getvalue()
    assert f"{bad.id}: still invalid, kept: resource_id: Input should be less than or equal to 9223372036854775807" in text
    assert f"{gone.id}: still invalid, kept: topic 'renamed-topic' is none of the notification topics now" in text
    assert "0 replayed, 2 still invalid" in text
    assert celery.batches == []


@pytest.mark.django_db
def test_a_letter_replayed_already_is_not_replayed_again(celery: Celery, topics: dict[str, str]) -> None:
    letter = persist_letter(new_event("owner", upload(5)))
    first = run("replay", str(letter.id))
    assert f"{letter.id}: replayed as event" in first
    again = run("replay", str(letter.id))
    assert f"{letter.id}: replayed already on" in again
    assert run("replay", "--all").splitlines()[-1] == "0 replayed, 0 still invalid"
    assert len(celery.batches) == 1


@pytest.mark.django_db
def test_when_celery_refuses_nothing_is_marked_replayed(monkeypatch: pytest.MonkeyPatch, topics: dict[str, str]) -> None:
    monkeypatch.setattr(command, "submit_batch", Celery(refuse=True))
    letter = persist_letter(new_event("owner", upload(6)))
    with pytest.raises(CommandError, match="Celery did not take the events"):
        run("replay", str(letter.id))
    assert DeadLetter.objects.get(id=letter.id).replayed_at is None


@pytest.mark.django_db
def test_replay_wants_ids_or_all_and_existing_ids() -> None:
    with pytest.raises(CommandError, match="name the dead letters to replay, or --all"):
        run("replay")
    with pytest.raises(CommandError, match="no dead letter 999999"):
        run("replay", "999999")
    with pytest.raises(CommandError, match="no dead letter 999999"):
        run("show", "999999")


def test_a_replayed_letter_reaches_the_users_page_through_the_real_worker(
    people: People, transactional_db: None, worker: Process, process_env: dict[str, str],
) -> None:
    event = new_event("owner", upload(42, resource_name=f"replayed-{uuid.uuid4().hex[:6]}"))
    letter = persist_letter(event, reason="DataError: a constraint since removed")

    done = subprocess.run([sys.executable, "manage.py", "dead_letters", "replay", str(letter.id)], cwd=ROOT,
                          env=process_env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert f"{letter.id}: replayed as event {event.event_id}" in done.stdout
    row = wait_for(lambda: OwnerNotification.objects.filter(event_id=event.event_id).first(), what="the replayed event")
    assert (row.owner_id, row.resource_id) == ("alice@example.com", 42)
    assert DeadLetter.objects.get(id=letter.id).replayed_at is not None
