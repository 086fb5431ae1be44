"""Hostile input: malformed messages straight on the topics, and schema-valid events that
PostgreSQL refuses. Each bad one must become a dead letter with its reason, every valid one
must be stored once, and nothing may crash or stall."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from chaos.experiments.common import Context, finish
from chaos.report import Result
from chaos.workload import Ledger, RowKey, Stream, group_rows, owner_row, upload_event
from graphspace import actions
from graphspace.models import Group, User
from graphspace.producer import encode, message_key, send_message
from notifications.events import new_event
from notifications.models import DeadLetter

MIB = 1024 * 1024


@dataclass
class Sent:
    kind: str
    topic: str
    event_id: str | None
    position: tuple[str, int, int] | None = None
    error: str | None = None


def _event(n: int, owner: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "owner_email": owner, "actor_email": owner, "message": "m",
        "resource": "graph", "resource_id": n, "resource_name": f"poison-{n}", "type": "upload",
        "occurred_at": datetime.now(UTC).isoformat(), "version": 1,
    }
    data.update(changes)
    return data


def _group_event(n: int, actor: str, **changes: Any) -> dict[str, Any]:
    return _event(n, actor, **{"type": "share", "group_id": 1, "membership_seq": 1, **changes})


def _with_number(data: dict[str, Any], literal: str) -> bytes:
    """JSON whose resource_id is a literal json.dumps would never write (1e400, NaN)."""
    return json.dumps({**data, "resource_id": "@@"}).replace('"@@"', literal).encode()


# Each kind makes (logical topic, value, the event id it claims) from a number and a user.
Kind = Callable[[int, str], tuple[str, bytes | None, str | None]]


def _json(topic: str, make: Callable[[int, str], dict[str, Any]]) -> Kind:
    def kind(n: int, user: str) -> tuple[str, bytes | None, str | None]:
        data = make(n, user)
        return topic, json.dumps({k: v for k, v in data.items() if k != "topic"}).encode(), data["event_id"]
    return kind


def _bytes(topic: str, value: Callable[[int, str], bytes | None]) -> Kind:
    return lambda n, user: (topic, value(n, user), None)


KINDS: dict[str, Kind] = {
    "bad JSON": _bytes("owner", lambda n, u: b'{"owner_email": "' + u.encode() + b'", "resource_id": '),
    "JSON array": _bytes("owner", lambda n, u: b"[1, 2, 3]"),
    "JSON null": _bytes("group", lambda n, u: b"null"),
    "empty value": _bytes("owner", lambda n, u: b""),
    "tombstone (no value)": _bytes("group", lambda n, u: None),
    "binary": _bytes("owner", lambda n, u: b"\xff\xfe" + os.urandom(62)),
    "UTF-16 JSON": _bytes("owner", lambda n, u: json.dumps(_event(n, u)).encode("utf-16")),
    "invalid UTF-8 in a string": _bytes("owner", lambda n, u: b'{"message": "\xc3\x28", "type": "upload"}'),
    "resource_id text": _json("owner", lambda n, u: _event(n, u, resource_id="abc")),
    "resource_id true": _json("owner", lambda n, u: _event(n, u, resource_id=True)),
    "owner_email number": _json("owner", lambda n, u: _event(n, u, owner_email=5)),
    "message object": _json("owner", lambda n, u: _event(n, u, message={"a": 1})),
    "type unknown": _json("owner", lambda n, u: _event(n, u, type="explode")),
    "group type on owner": _json("owner", lambda n, u: _event(n, u, type="share")),
    "version 99": _json("owner", lambda n, u: _event(n, u, version=99)),
    "fields missing": _json("owner", lambda n, u: {"event_id": str(uuid.uuid4())}),
    "resource_id 2**70": _json("owner", lambda n, u: _event(n, u, resource_id=2**70)),
    "resource_id -1": _json("owner", lambda n, u: _event(n, u, resource_id=-1)),
    "resource_id 1e400": _bytes("owner", lambda n, u: _with_number(_event(n, u), "1e400")),
    "resource_id NaN": _bytes("owner", lambda n, u: _with_number(_event(n, u), "NaN")),
    "group_id 2**64": _json("group", lambda n, u: _group_event(n, u, group_id=2**64)),
    "membership_seq 2**63": _json("group", lambda n, u: _group_event(n, u, membership_seq=2**63)),
    "occurred_at year 1 +05:00": _json("owner", lambda n, u: _event(n, u, occurred_at="0001-01-01T00:00:00+05:00")),
    "occurred_at year 9999 -05:00": _json("owner", lambda n, u: _event(n, u, occurred_at="9999-12-31T23:59:59-05:00")),
    "NUL in message": _json("owner", lambda n, u: _event(n, u, message="a\x00b")),
    "NUL in resource_name": _json("owner", lambda n, u: _event(n, u, resource_name="\x00")),
    "NUL in actor_email": _json("owner", lambda n, u: _event(n, u, actor_email="a\x00@chaos.test")),
    "actor_email 300 chars": _json("owner", lambda n, u: _event(n, u, actor_email="a" * 290 + "@chaos.test")),
    "resource_name 10,000 chars": _json("owner", lambda n, u: _event(n, u, resource_name="n" * 10_000)),
}
# Rare kinds: a few of each is the test; thousands would only fill the broker's memory.
RARE: dict[str, tuple[Kind, int]] = {
    "value over 1 MiB": (_json("owner", lambda n, u: _event(n, u, message="x" * (MIB + MIB // 2))), 5),
    "JSON nested 100,000 deep": (_bytes("owner", lambda n, u: b"[" * 100_000 + b"]" * 100_000), 20),
}


def _plan(hostile: int, valid: int) -> list[str | None]:
    """The order of the messages: kind names for hostile ones, None for a valid one."""
    names = list(KINDS)
    rare = [name for name, (_, cap) in RARE.items() for _ in range(min(cap, max(1, hostile // 500)))]
    bad = rare + [names[i % len(names)] for i in range(hostile - len(rare))]
    plan: list[str | None] = []
    every = max(1, len(bad) // max(1, valid))
    for i, name in enumerate(bad):
        plan.append(name)
        if i % every == every - 1 and plan.count(None) < valid:
            plan.append(None)
    plan += [None] * (valid - plan.count(None))
    return plan


def hostile_messages(ctx: Context) -> Result:
    hostile, valid = ctx.scale.hostile_messages, ctx.scale.valid_messages
    result = Result("poison", f"{hostile} hostile + {valid} valid messages", limit=ctx.scale.recovery_limit)
    alice, bob, *owners = ctx.users("poison", "alice", "bob", *(f"u{i}" for i in range(10)))
    ledger = Ledger(u.email for u in (alice, bob, *owners))
    group = _group_with(alice, bob, ctx.name("poison", "group"), ledger)
    starts = ctx.cluster.starts()

    producer = KafkaProducer(bootstrap_servers=ctx.stack.kafka, acks="all", linger_ms=5,
                             max_request_size=8 * MIB, request_timeout_ms=30_000)
    topics = settings.KAFKA_TOPICS
    sent: list[tuple[Sent, Any, list[RowKey]]] = []
    for n, name in enumerate(_plan(hostile, valid)):
        value: bytes | None
        if name is None:
            topic, value, key, rows = _valid(n, owners, alice, bob, group, ctx)
            entry = Sent("valid", topic, None)
        else:
            kind = KINDS[name] if name in KINDS else RARE[name][0]
            topic, value, event_id = kind(n, owners[n % len(owners)].email)
            key, rows, entry = b"poison", [], Sent(name, topic, event_id)
        sent.append((entry, producer.send(topics[topic], key=key, value=value), rows))
    producer.flush(60)
    for entry, future, rows in sent:
        try:
            meta = future.get(30)
        except Exception as error:  # the broker refused it: never acknowledged, never expected
            entry.error = f"{type(error).__name__}"
            continue
        entry.position = (meta.topic, meta.partition, meta.offset)
        ledger.ack(rows)
    producer.close(10)
    last = ctx.log(f"produced {len(sent)} messages ({hostile} hostile, {valid} valid)")

    # A stall shows as an event produced after all of them that never arrives.
    canary = ctx.name("poison", "canary")
    with transaction.atomic():
        send_message("owner", {"owner_email": alice.email, "message": "canary", "resource": "graph",
                               "resource_id": 1, "resource_name": canary, "type": "upload"})
    ledger.ack([owner_row("upload", "graph", canary, alice.email)])
    finish(ctx, result, ledger, last)

    bad = [e for e, _, _ in sent if e.kind != "valid" and e.position is not None]
    lettered, reasons = _dead_letters(ctx, bad, timeout=max(30.0, ctx.scale.recovery_limit))
    unlettered = [e for e in bad if not _is_lettered(e, lettered)]
    refused = [e for e, _, _ in sent if e.error]
    result.checks["every bad message a dead letter with its reason"] = not unlettered
    result.checks["bridge and worker never crashed"] = not ctx.cluster.dead() and ctx.cluster.starts() == starts
    result.notes.append(f"{len(bad) - len(unlettered)}/{len(bad)} bad ones dead letters "
                        f"({reasons['topic']} on the topic, {reasons['table']} in the table)")
    if unlettered:
        kinds = sorted({e.kind for e in unlettered})
        result.notes.append(f"not dead letters: {len(unlettered)} of kinds {', '.join(kinds[:8])}")
    if refused:
        result.notes.append(f"{len(refused)} refused by the broker ({', '.join(sorted({e.kind for e in refused}))}: "
                            f"{refused[0].error})")
    return result


def _group_with(alice: User, bob: User, name: str, ledger: Ledger) -> Group:
    """A group of alice and bob, through the actions (their events go through the outbox)."""
    group = actions.create_group(alice, name=name)
    ledger.ack([owner_row("create", "group", name, alice.email)])
    actions.add_member(alice, group, bob)
    group.refresh_from_db()
    ledger.ack(group_rows("add", "group_member", bob.email, group.id, [alice.email, bob.email]))
    return group


def _valid(n: int, owners: list[User], alice: User, bob: User, group: Group, ctx: Context
           ) -> tuple[str, bytes, bytes, list[RowKey]]:
    """A valid message as the producer writes it: every fifth one a group event."""
    name = ctx.name("poison", f"valid{n}")
    if n % 5 == 0:
        event = new_event("group", {
            "group_id": group.id, "membership_seq": group.membership_seq, "owner_email": alice.email,
            "actor_email": alice.email, "message": f"{name} shared.", "resource": "graph", "resource_id": n,
            "resource_name": name, "type": "share"})
        rows = group_rows("share", "graph", name, group.id, [alice.email, bob.email])
    else:
        owner = owners[n % len(owners)].email
        event = new_event("owner", {"owner_email": owner, "message": f"{name} uploaded.", "resource": "graph",
                                    "resource_id": n, "resource_name": name, "type": "upload"})
        rows = [owner_row("upload", "graph", name, owner)]
    return event.topic, encode(event), message_key(event).encode(), rows


Lettered = tuple[set[tuple[str, int, int]], set[str]]


def _is_lettered(entry: Sent, lettered: Lettered) -> bool:
    positions, event_ids = lettered
    return entry.position in positions or (entry.event_id is not None and entry.event_id in event_ids)


def _dead_letters(ctx: Context, bad: list[Sent], timeout: float) -> tuple[Lettered, dict[str, int]]:
    """The dead letters with a reason, from the dead-letter topic (by the position in their
    headers) and from the table (by position, or by event id for the persist stage); waits
    until every bad message has one, or `timeout`."""
    positions: set[tuple[str, int, int]] = set()
    event_ids: set[str] = set()
    counts = {"topic": 0, "table": 0}
    consumer = KafkaConsumer(bootstrap_servers=ctx.stack.kafka, enable_auto_commit=False, group_id=None,
                             max_partition_fetch_bytes=16 * MIB, fetch_max_bytes=64 * MIB)
    try:
        parts = consumer.partitions_for_topic(settings.KAFKA_DEAD_LETTER_TOPIC) or set()
        consumer.assign([TopicPartition(settings.KAFKA_DEAD_LETTER_TOPIC, p) for p in parts])
        consumer.seek_to_beginning()
        began = time.monotonic()
        while True:
            for records in consumer.poll(500, max_records=5000).values():
                for record in records:
                    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or []}
                    if headers.get("reason") and headers.get("source-offset", "").isdigit():
                        positions.add((headers.get("source-topic", ""), int(headers.get("source-partition") or 0),
                                       int(headers["source-offset"])))
                        counts["topic"] += 1
            table = DeadLetter.objects.exclude(reason="").values_list("topic", "partition", "offset", "event_id")
            counts["table"] = 0
            for topic, partition, offset, event_id in table:
                counts["table"] += 1
                if offset is not None:
                    positions.add((topic, partition or 0, offset))
                if event_id:
                    event_ids.add(event_id)
            if all(_is_lettered(e, (positions, event_ids)) for e in bad) or time.monotonic() - began > timeout:
                break
    finally:
        consumer.close()
    return (positions, event_ids), counts


# --- unstorable events -----------------------------------------------------------------

REFUSE_SQL = """
CREATE OR REPLACE FUNCTION chaos_refuse_unstorable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.resource_name LIKE 'chaos-unstorable-%' THEN
        RAISE EXCEPTION 'chaos: % cannot be stored', NEW.resource_name USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS chaos_refuse_unstorable ON owner_notification;
CREATE TRIGGER chaos_refuse_unstorable BEFORE INSERT ON owner_notification
    FOR EACH ROW EXECUTE FUNCTION chaos_refuse_unstorable();
"""
UNDO_SQL = """
DROP TRIGGER IF EXISTS chaos_refuse_unstorable ON owner_notification;
DROP FUNCTION IF EXISTS chaos_refuse_unstorable();
"""
EVERY = 500


def unstorable_events(ctx: Context) -> Result:
    """One event in each 500 that passes the schema but that PostgreSQL refuses (a trigger
    raising check_violation: a real refusal by the database). The other 499 of each 500
    must be stored, and the refused one kept as a dead letter of the persist stage."""
    total = ctx.scale.unstorable_events
    result = Result("unstorable", f"1 unstorable in each {EVERY} of {total} events", limit=ctx.scale.recovery_limit)
    users = ctx.users("unstorable", *(f"u{i}" for i in range(20)))
    ledger = Ledger(u.email for u in users)
    valid = upload_event(ctx.name("unstorable", "g"), [u.email for u in users])
    bad_name = f"chaos-unstorable-{ctx.run_id}"

    def make(n: int) -> tuple[str, dict[str, Any], list[RowKey]]:
        topic, message, rows = valid(n)
        if n % EVERY == EVERY // 2:
            return topic, {**message, "resource_name": f"{bad_name}-{n}"}, []
        return topic, message, rows

    with connection.cursor() as cursor:
        cursor.execute(REFUSE_SQL)
    try:
        # As fast as it goes, so the bridge reads full batches of 500.
        stream = Stream(ledger, make, total=total, rate=None)
        stream.start()
        stream.join()
        if stream.error:
            raise stream.error
        finish(ctx, result, ledger, ledger.last_ack)
        bad_ids = {eid for n, eid in stream.event_ids.items() if n % EVERY == EVERY // 2}
        lettered = _persist_letters(bad_ids, timeout=ctx.scale.recovery_limit)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(UNDO_SQL)
    result.checks["every unstorable event a dead letter (persist)"] = lettered == len(bad_ids)
    result.notes.append(f"{lettered}/{len(bad_ids)} unstorable events kept as dead letters")
    return result


def _persist_letters(event_ids: set[str], timeout: float) -> int:
    began = time.monotonic()
    while True:
        found = DeadLetter.objects.filter(stage=DeadLetter.PERSIST, event_id__in=event_ids).exclude(reason="").count()
        if found == len(event_ids) or time.monotonic() - began > timeout:
            return found
        time.sleep(0.25)
