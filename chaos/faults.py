"""The faults, each aimed at process ids the suite started (never at a name), and each
written to the fault log with its time, so a result can be read against what was done."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from chaos.processes import Process
from chaos.stack import Stack


class FaultLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.began = time.monotonic()

    def __call__(self, what: str) -> float:
        now = time.monotonic()
        line = f"{time.strftime('%H:%M:%S')} +{now - self.began:7.1f}s {what}"
        print(f"chaos: {line}", flush=True)
        with open(self.path, "a") as out:
            out.write(line + "\n")
        return now


def kill9(log: FaultLog, process: Process) -> float:
    """kill -9 of the process group; returns when it died."""
    pid = process.pid
    process.kill()
    return log(f"kill -9 {process.name} (process group {pid})")


def restart(log: FaultLog, process: Process) -> None:
    """The suite is the supervisor: it starts again what it killed."""
    process.start()
    log(f"started {process.name} again (pid {process.pid})")


def pause(log: FaultLog, process: Process) -> float:
    process.signal(signal.SIGSTOP)
    return log(f"SIGSTOP {process.name} (process group {process.pid})")


def resume(log: FaultLog, process: Process) -> float:
    process.signal(signal.SIGCONT)
    return log(f"SIGCONT {process.name} (process group {process.pid})")


def stop_service(log: FaultLog, stack: Stack, name: str) -> float:
    stack.stop_service(name)
    return log(f"stopped {name}")


def start_service(log: FaultLog, stack: Stack, name: str) -> float:
    stack.start_service(name)
    return log(f"started {name}")
