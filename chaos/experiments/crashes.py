"""kill -9 of a pipeline process while a stream of events goes through, then a new one
started at once (the suite plays the supervisor). Nothing may be lost or stored twice, and
everything must be stored within 30 s of the stream's end."""

from __future__ import annotations

import time

from chaos import faults
from chaos.experiments.common import Context, finish
from chaos.processes import NotReady
from chaos.report import Result
from chaos.workload import Ledger, Stream, upload_event


def _killed_during_stream(ctx: Context, name: str, title: str, process: str, kills: int) -> Result:
    result = Result(name, title, limit=ctx.scale.recovery_limit)
    users = ctx.users(name, *(f"u{i}" for i in range(20)))
    ledger = Ledger(u.email for u in users)
    stream = Stream(ledger, upload_event(ctx.name(name, "g"), [u.email for u in users]),
                    total=ctx.scale.stream_events, rate=ctx.scale.stream_events / ctx.scale.stream_seconds)
    began = time.monotonic()
    stream.start()
    target = ctx.cluster[process]
    for k in range(1, kills + 1):
        # Evenly inside the stream, each on a process that had come up again.
        moment = began + ctx.scale.stream_seconds * k / (kills + 1)
        while time.monotonic() < moment and stream.is_alive():
            time.sleep(0.05)
        if not stream.is_alive():
            result.notes.append(f"kill {k} came after the stream's end")
        faults.kill9(ctx.log, target)
        faults.restart(ctx.log, target)
        try:
            target.wait_ready(60)
        except NotReady as error:
            result.notes.append(str(error))
    stream.join()
    if stream.error:
        raise stream.error
    result.notes.append(f"{process} killed {kills}x at {stream.sent} events")
    return finish(ctx, result, ledger, ledger.last_ack)


def bridge_killed(ctx: Context) -> Result:
    return _killed_during_stream(ctx, "bridge", f"kill -9 bridge x3, {ctx.scale.stream_events} events", "bridge", 3)


def worker_killed(ctx: Context) -> Result:
    return _killed_during_stream(ctx, "worker", f"kill -9 worker x3, {ctx.scale.stream_events} events", "worker", 3)


def relay_killed(ctx: Context) -> Result:
    return _killed_during_stream(ctx, "relay", f"kill -9 relay mid-stream, {ctx.scale.stream_events} events", "relay", 1)
