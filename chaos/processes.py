"""The project's processes, started through scripts/process.sh as the Procfile starts them.

Each runs in a session of its own, so its process id is also its process group's id: a
fault reaches every process it forked (a Celery worker's pool children) and nothing else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from chaos.stack import ROOT, Stack

# The log line each process writes once it does its job.
READY = {
    "web": "Listening on",
    "worker": "ready.",
    # Joined its consumer group and owns the partitions.
    "bridge": "partitions assigned: group[",
    "relay": "relay_outbox: publishing",
}
# Started in this order: the worker before the bridge hands it work, the relay last.
PIPELINE = ("worker", "bridge", "web", "relay")


class NotReady(Exception):
    pass


class Process:
    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._ready_from = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self._ready_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- chaos: start {self.starts + 1} of {self.name} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                ["bash", str(ROOT / "scripts" / "process.sh"), self.name],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until the process logged that it is ready (since this call)."""
        began = time.monotonic()
        marker = READY.get(self.name)
        while marker is not None:
            if not self.alive:
                raise NotReady(f"{self.name} exited with {self.proc.returncode if self.proc else None}; see {self.log_path}")
            with open(self.log_path, "rb") as log:
                log.seek(self._ready_from)
                if marker.encode() in log.read():
                    break
            if time.monotonic() - began > timeout:
                raise NotReady(f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}")
            time.sleep(0.1)
        return time.monotonic() - began

    def signal(self, sig: int) -> None:
        os.killpg(self.pid, sig)

    def kill(self) -> None:
        """kill -9 of the process and everything it forked."""
        if self.proc is None:
            return
        try:
            self.signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (after SIGCONT, in case it was paused), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass


class Cluster:
    """The processes of the chaos stack, by name."""

    def __init__(self, stack: Stack, names: Iterable[str] = PIPELINE) -> None:
        env = stack.app_env()
        self.procs = {name: Process(name, env, stack.logs) for name in names}

    def __getitem__(self, name: str) -> Process:
        return self.procs[name]

    def start(self, names: Iterable[str] | None = None, timeout: float = 90.0) -> None:
        chosen = list(names or self.procs)
        for name in chosen:
            self.procs[name].start()
        for name in chosen:
            self.procs[name].wait_ready(timeout)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()

    def dead(self) -> list[str]:
        return [name for name, proc in self.procs.items() if not proc.alive]

    def starts(self) -> dict[str, int]:
        return {name: proc.starts for name, proc in self.procs.items()}

    def revive(self) -> list[str]:
        """Start again whatever died (as compose's `restart: unless-stopped` would)."""
        dead = self.dead()
        if dead:
            self.start(dead)
        return dead
