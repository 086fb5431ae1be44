"""Actions through the REST API while the Kafka broker is down. The requests must succeed
at once, and every event must arrive once the broker is back, even when the web process
that took the actions is killed before the broker returns."""

from __future__ import annotations

import statistics
import time

from chaos import faults
from chaos.experiments.common import Context, finish
from chaos.report import Result
from chaos.workload import Api, Ledger, owner_row, wait_stored


def _uploads(ctx: Context, api: Api, ledger: Ledger, recipient: str, experiment: str, n: int, result: Result) -> list[float]:
    """n graph uploads; each 201 is an acknowledged action. Returns the request times."""
    took = []
    for i in range(n):
        name = ctx.name(experiment, f"g{i}")
        began = time.monotonic()
        status, answer = api.upload(name)
        took.append(time.monotonic() - began)
        if status == 201:
            ledger.ack([owner_row("upload", "graph", name, recipient)])
        else:
            result.notes.append(f"upload {i} answered {status}: {str(answer)[:120]}")
    return took


def _published_before(ctx: Context, api: Api, ledger: Ledger, recipient: str, experiment: str) -> None:
    """One action that went all the way through first: the web process has published."""
    name = ctx.name(experiment, "before")
    status, answer = api.upload(name)
    if status != 201:
        raise RuntimeError(f"the upload before the outage answered {status}: {answer}")
    ledger.ack([owner_row("upload", "graph", name, recipient)])
    if wait_stored(ledger, timeout=60) is None:
        raise RuntimeError("the upload before the outage was never stored")


def actions_while_kafka_down(ctx: Context) -> Result:
    n = ctx.scale.kafka_down_actions
    result = Result("kafka-down", f"{n} REST actions, Kafka down", limit=ctx.scale.recovery_limit)
    (alice,) = ctx.users("kafka-down", "alice")
    api, ledger = ctx.api(alice), Ledger([alice.email])
    _published_before(ctx, api, ledger, alice.email, "kafka-down")
    faults.stop_service(ctx.log, ctx.stack, "kafka")
    try:
        took = _uploads(ctx, api, ledger, alice.email, "kafka-down", n, result)
    finally:
        back = faults.start_service(ctx.log, ctx.stack, "kafka")
    result.checks[f"{n}/{n} requests answered 201"] = ledger.acknowledged == n + 1
    result.notes.append(f"requests during the outage: median {statistics.median(took) * 1000:.0f} ms, "
                        f"slowest {max(took) * 1000:.0f} ms")
    return finish(ctx, result, ledger, back)


def web_killed_while_kafka_down(ctx: Context) -> Result:
    n = ctx.scale.web_kill_actions
    result = Result("web-killed", f"kill -9 web after {n} actions, Kafka down")
    (alice,) = ctx.users("web-killed", "alice")
    api, ledger = ctx.api(alice), Ledger([alice.email])
    _published_before(ctx, api, ledger, alice.email, "web-killed")
    faults.stop_service(ctx.log, ctx.stack, "kafka")
    try:
        _uploads(ctx, api, ledger, alice.email, "web-killed", n, result)
        time.sleep(1.0)
        faults.kill9(ctx.log, ctx.cluster["web"])
    finally:
        faults.start_service(ctx.log, ctx.stack, "kafka")
    # Restart everything: every process of the pipeline killed and started again.
    for proc in ctx.cluster.procs.values():
        if proc.alive:
            faults.kill9(ctx.log, proc)
    back = ctx.log("starting every process again")
    ctx.cluster.start()
    result.checks[f"{n}/{n} requests answered 201"] = ledger.acknowledged == n + 1
    return finish(ctx, result, ledger, back)
