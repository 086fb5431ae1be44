"""`python -m chaos [--only NAME,...] [--json PATH]`: run the fault-injection suite and print
its table. Exits 1 if any experiment failed, 2 if the stack could not be started."""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
import traceback
import uuid
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from chaos import EXPERIMENTS as NAMES
from chaos.faults import FaultLog
from chaos.processes import Cluster
from chaos.report import Result, table, write_json
from chaos.scale import scale_from_env
from chaos.stack import Stack

if TYPE_CHECKING:
    from chaos.experiments import Context, Experiment



def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwind through the finally blocks: the stack is stopped even when the run is.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--only", default="", help=f"comma-separated experiments, of: {', '.join(NAMES)}")
    parser.add_argument("--json", default="", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(NAMES)
    unknown = sorted(set(chosen) - set(NAMES))
    if unknown:
        parser.error(f"unknown experiments: {', '.join(unknown)}")
    scale = scale_from_env()
    signal.signal(signal.SIGTERM, _terminate)

    run_id = uuid.uuid4().hex[:6]
    stack = Stack(run_id, session_timeout_ms=scale.session_timeout_ms,
                  broker_storage=os.environ.get("CHAOS_BROKER_STORAGE", "s3"))
    log = FaultLog(stack.logs / "faults.log")
    cluster: Cluster | None = None
    results: list[Result] = []
    began = time.monotonic()
    try:
        log(f"run {run_id}, scale {scale.name}, data in {stack.var}, logs in {stack.logs}")
        try:
            stack.start()
            stack.prepare()
            stack.configure_django()
            cluster = Cluster(stack)
            cluster.start()
        except Exception:
            traceback.print_exc()
            print(f"chaos: the stack did not start; logs in {stack.logs}", file=sys.stderr)
            return 2
        log(f"stack up: {stack.ports}, broker storage {stack.kafka_storage}")
        from chaos.experiments import EXPERIMENTS, Context

        assert tuple(EXPERIMENTS) == NAMES
        ctx = Context(stack, cluster, scale, run_id, log)
        for name in chosen:
            results.append(_run(name, EXPERIMENTS[name], ctx))
    finally:
        if cluster is not None:
            cluster.stop()
        stack.close()
    heading = (f"GraphSpace fault injection, scale {scale.name}, {time.strftime('%Y-%m-%d %H:%M')}, "
               f"{platform.node()} ({os.cpu_count()} cores), {time.monotonic() - began:.0f}s")
    print(table(results, heading))
    (stack.logs / "table.txt").write_text(table(results, heading) + "\n")
    if args.json:
        write_json(results, Path(args.json), scale=scale.name, run_id=run_id, storage=stack.kafka_storage)
    return 0 if results and all(r.passed for r in results) else 1


def _run(name: str, experiment: Experiment, ctx: Context) -> Result:
    began = time.monotonic()
    ctx.log(f"experiment {name}: start")
    try:
        result = experiment(ctx)
    except Exception:
        result = Result(name, name, error=traceback.format_exc())
        print(result.error, file=sys.stderr)
    result.seconds = time.monotonic() - began
    # Whatever the experiment left stopped or dead is started again before the next one.
    try:
        ctx.stack.start()
        revived = ctx.cluster.revive()
    except Exception as error:
        result.notes.append(f"could not restore the stack afterwards: {error}")
    else:
        if revived:
            result.notes.append(f"restarted afterwards: {', '.join(revived)}")
    ctx.log(f"experiment {name}: {'pass' if result.passed else 'FAIL'} in {result.seconds:.0f}s")
    return result

if __name__ == "__main__":
    sys.exit(main())
