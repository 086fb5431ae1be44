"""Group events: recipients as of the action however late the pipeline is, and deleting a
group while its own events are still on their way."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

from chaos import faults
from chaos.experiments.common import Context, finish
from chaos.report import Result
from chaos.workload import Ledger, Stream, group_rows, owner_row, upload_event, wait_stored


def _ok(status: int, answer: Any, what: str) -> Any:
    if status not in (200, 201):
        raise RuntimeError(f"{what} answered {status}: {str(answer)[:200]}")
    return answer


def recipients_as_of_the_action(ctx: Context) -> Result:
    """Bridge paused; alice shares a graph with her group of bob and carol, removes carol,
    adds dave; bridge resumed. Carol must hear of the share, dave must not."""
    result = Result("as-of", "share, remove, add while bridge paused")
    alice, bob, carol, dave = ctx.users("as-of", "alice", "bob", "carol", "dave")
    api, ledger = ctx.api(alice), Ledger(u.email for u in (alice, bob, carol, dave))
    group_name, graph_name = ctx.name("as-of", "group"), ctx.name("as-of", "graph")

    group = _ok(*api.call("POST", "groups/", {"name": group_name}), "create group")
    gid = int(group["id"])
    ledger.ack([owner_row("create", "group", group_name, alice.email)])
    members = [alice.email]
    for member in (bob, carol):
        _ok(*api.call("POST", f"groups/{gid}/members/", {"member_email": member.email}), "add member")
        members.append(member.email)
        ledger.ack(group_rows("add", "group_member", member.email, gid, members))
    graph = _ok(*api.upload(graph_name), "upload")
    ledger.ack([owner_row("upload", "graph", graph_name, alice.email)])
    if wait_stored(ledger, timeout=60) is None:
        raise RuntimeError("the group's first events were never stored")

    bridge = ctx.cluster["bridge"]
    faults.pause(ctx.log, bridge)
    try:
        _ok(*api.call("POST", f"groups/{gid}/graphs/", {"graph_id": graph["id"]}), "share")
        ledger.ack(group_rows("share", "graph", graph_name, gid, [alice.email, bob.email, carol.email]))
        _ok(*api.call("DELETE", f"groups/{gid}/members/{carol.id}"), "remove carol")
        ledger.ack(group_rows("remove", "group_member", carol.email, gid, [alice.email, bob.email, carol.email]))
        _ok(*api.call("POST", f"groups/{gid}/members/", {"member_email": dave.email}), "add dave")
        ledger.ack(group_rows("add", "group_member", dave.email, gid, [alice.email, bob.email, dave.email]))
        # Long enough for the relay to publish them: they wait in Kafka, not in the outbox.
        time.sleep(2.0)
    finally:
        resumed = faults.resume(ctx.log, bridge)
    finish(ctx, result, ledger, resumed)
    shared = set(_told(gid, "share", graph_name))
    result.checks["carol (removed after the share) told of it"] = carol.email in shared
    result.checks["dave (added after the share) not told of it"] = dave.email not in shared
    return result


def _told(group_id: int, type: str, name: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT member_email FROM group_notification WHERE group_id = %s AND type = %s AND resource_name = %s",
                       [group_id, type, name])
        return [row[0] for row in cursor.fetchall()]


def group_deletion_race(ctx: Context) -> Result:
    """Create a group, add a member, share, unshare, remove, delete it at once; many times,
    while a stream keeps the pipeline busy. Every delete must succeed, and no row may
    outlive its group."""
    rounds = ctx.scale.deletion_rounds
    result = Result("deletion", f"{rounds}x create..delete a group, busy pipeline")
    owner, member = ctx.users("deletion", "owner", "member")
    busy = ctx.users("deletion", *(f"busy{i}" for i in range(10)))
    ledger = Ledger(u.email for u in (owner, member, *busy))
    api = ctx.api(owner)
    graph_name = ctx.name("deletion", "graph")
    graph = _ok(*api.upload(graph_name), "upload")
    ledger.ack([owner_row("upload", "graph", graph_name, owner.email)])

    stream = Stream(ledger, upload_event(ctx.name("deletion", "busy"), [u.email for u in busy]),
                    total=None, rate=ctx.scale.outage_rate * 2)
    stream.start()
    deleted = 0
    group_ids: list[int] = []
    answers: list[str] = []
    try:
        for i in range(rounds):
            name = ctx.name("deletion", f"group{i}")
            gid = int(_ok(*api.call("POST", "groups/", {"name": name}), "create group")["id"])
            group_ids.append(gid)
            ledger.ack([owner_row("create", "group", name, owner.email)])
            # The group's own events: once it is deleted, no row of it may remain.
            _ok(*api.call("POST", f"groups/{gid}/members/", {"member_email": member.email}), "add member")
            _ok(*api.call("POST", f"groups/{gid}/graphs/", {"graph_id": graph["id"]}), "share")
            _ok(*api.call("DELETE", f"groups/{gid}/graphs/{graph['id']}"), "unshare")
            _ok(*api.call("DELETE", f"groups/{gid}/members/{member.id}"), "remove member")
            status, answer = api.call("DELETE", f"groups/{gid}")
            if status == 200:
                deleted += 1
                ledger.ack([owner_row("delete", "group", name, owner.email)])
            elif len(answers) < 3:
                answers.append(f"{status}: {str(answer)[:160]}")
    finally:
        stream.stop()
    if stream.error:
        raise stream.error
    last = ctx.log(f"{deleted}/{rounds} group deletions answered 200")
    finish(ctx, result, ledger, last)
    orphans = _rows_of_groups(group_ids)
    result.checks[f"{rounds}/{rounds} deletions succeeded"] = deleted == rounds
    result.checks["no rows of deleted groups"] = orphans == 0
    result.notes.append(f"{deleted}/{rounds} deleted, {orphans} rows of deleted groups")
    result.notes += [f"delete answered {a}" for a in answers]
    return result


def _rows_of_groups(group_ids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM group_notification WHERE group_id = ANY(%s))"
            " + (SELECT count(*) FROM notification_cluster WHERE group_id = ANY(%s))"
            " + (SELECT count(*) FROM \"group\" WHERE id = ANY(%s))",
            [group_ids, group_ids, group_ids],
        )
        return int(cursor.fetchone()[0])

