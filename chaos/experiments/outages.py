"""Redis stopped, then PostgreSQL stopped, then the Kafka broker restarted, while a stream
of events goes on. Nothing may be lost or stored twice, everything acknowledged before a
part returned must be stored within 30 s of its return, and no process may need a restart.
"""

from __future__ import annotations

import time

from chaos import faults
from chaos.experiments.common import Context, finish
from chaos.report import Result
from chaos.workload import Ledger, Stream, upload_event, wait_stored


def services_stopped(ctx: Context) -> Result:
    outage = ctx.scale.outage_seconds
    result = Result("outages", f"Redis {outage:.0f}s, PostgreSQL {outage:.0f}s down, broker restarted",
                    limit=ctx.scale.recovery_limit)
    users = ctx.users("outages", *(f"u{i}" for i in range(20)))
    ledger = Ledger(u.email for u in users)
    starts = ctx.cluster.starts()
    stream = Stream(ledger, upload_event(ctx.name("outages", "g"), [u.email for u in users]),
                    total=None, rate=ctx.scale.outage_rate)
    stream.start()
    recoveries: dict[str, float | None] = {}
    try:
        for service in ("redis", "postgres", "kafka"):
            time.sleep(min(3.0, outage))  # the stream runs with everything up
            faults.stop_service(ctx.log, ctx.stack, service)
            if service != "kafka":
                time.sleep(outage)
            back = faults.start_service(ctx.log, ctx.stack, service)
            # What was acknowledged by the time the part came back must be stored within
            # the limit of its return.
            done = wait_stored(ledger, ledger.snapshot(), timeout=2 * ctx.scale.recovery_limit)
            recoveries[service] = None if done is None else done - back
            ctx.log(f"after {service}: " + ("not recovered" if done is None else f"recovered in {done - back:.1f}s"))
    finally:
        stream.stop()
    if stream.error:
        raise stream.error
    result.notes.append("recovery after " + ", ".join(
        f"{name} {'never' if r is None else f'{r:.1f}s'}" for name, r in recoveries.items()))
    restarted = [name for name, n in ctx.cluster.starts().items() if n != starts[name]]
    dead = ctx.cluster.dead()
    result.checks["no process needed a restart"] = not dead and not restarted
    if dead:
        result.notes.append(f"died: {', '.join(dead)}")
    for name, r in recoveries.items():
        result.checks[f"stored within {ctx.scale.recovery_limit:.0f}s of {name}'s return"] = (
            r is not None and r <= ctx.scale.recovery_limit)
    if not ctx.stack.durable_broker:
        result.notes.append("the broker keeps its data in memory: its restart lost every message not yet "
                            "consumed and every committed offset")
    finish(ctx, result, ledger, ledger.last_ack)
    # The worst of the three returns is the experiment's recovery.
    if result.recovery is not None and None not in recoveries.values():
        result.recovery = max([result.recovery, *(r for r in recoveries.values() if r is not None)])
    return result
