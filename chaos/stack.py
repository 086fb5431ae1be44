"""The chaos stack's backing services and the environment its processes share.

PostgreSQL, Redis and the Kafka broker are started by scripts/services.sh on free ports,
with a data folder of their own (GRAPHSPACE_VAR), so the suite never touches the services
on the usual ports that a developer's `make run` or another suite uses.

The broker keeps its data in an object store on local files (chaos/objectstore.py, through
Tansu's s3:// engine), so that restarting it loses nothing, as a restart of a real Kafka
broker would not; CHAOS_BROKER_STORAGE=memory runs it on memory storage instead, as
`make run` does, and the broker-restart experiment then shows what that loses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SERVICES = ("postgres", "redis", "kafka")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Stack:
    def __init__(self, run_id: str, *, session_timeout_ms: int = 6000, broker_storage: str = "s3") -> None:
        if broker_storage not in ("s3", "memory"):
            raise ValueError(f"the broker's storage is s3 or memory, not {broker_storage!r}")
        self.run_id = run_id
        self.session_timeout_ms = session_timeout_ms
        # Under /tmp, readable by all: the postgres user must reach the cluster's folder.
        self.var = Path(tempfile.mkdtemp(prefix=f"graphspace-chaos-{run_id}-"))
        self.var.chmod(0o755)
        self.logs = ARTIFACTS / f"chaos-{run_id}"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in ("postgres", "redis", "kafka", "web", "objects")}
        self.kafka_storage = "s3://tansu/" if broker_storage == "s3" else "memory://tansu/"
        self.objectstore: subprocess.Popen[bytes] | None = None
        self.started = False

    @property
    def durable_broker(self) -> bool:
        return not self.kafka_storage.startswith("memory:")

    @property
    def database_url(self) -> str:
        return f"postgres://graphspace:graphspace@127.0.0.1:{self.ports['postgres']}/graphspace"

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    def redis_url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/{db}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    def services_env(self) -> dict[str, str]:
        return {
            **os.environ,
            # Tansu's s3:// engine reads these (a plain-http store on the loopback; no keys
            # are checked there).
            "AWS_ENDPOINT": f"http://127.0.0.1:{self.ports['objects']}", "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "chaos", "AWS_SECRET_ACCESS_KEY": "chaos", "AWS_DEFAULT_REGION": "us-east-1",
            "GRAPHSPACE_VAR": str(self.var),
            "PGPORT": str(self.ports["postgres"]),
            "REDIS_PORT": str(self.ports["redis"]),
            "KAFKA_PORT": str(self.ports["kafka"]),
            "KAFKA_STORAGE": self.kafka_storage,
            # The broker binary is the checkout's (scripts/setup.sh extracted it).
            "TANSU": str(ROOT / "var" / "bin" / "tansu"),
        }

    def app_env(self) -> dict[str, str]:
        """What every process of the stack (and the suite itself) is configured with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CELERY_", "CHANNELS_"))}
        env.update({
            "DJANGO_SETTINGS_MODULE": "graphspace.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url(0),
            "CELERY_BROKER_URL": self.redis_url(0),
            "CHANNELS_REDIS_URL": self.redis_url(1),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "KAFKA_SESSION_TIMEOUT_MS": str(self.session_timeout_ms),
            "WEB_PORT": str(self.ports["web"]),
            # No metrics ports: the usual ones belong to a developer's `make run`.
            "BRIDGE_METRICS_PORT": "0", "WORKER_METRICS_PORT": "0", "RELAY_METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        })
        return env

    def _services(self, action: str, name: str | None = None) -> None:
        args = ["bash", str(ROOT / "scripts" / "services.sh"), action, *([name] if name else [])]
        with open(self.logs / "services.log", "ab") as log:
            subprocess.run(args, env=self.services_env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)

    def start(self) -> None:
        self.started = True
        if self.durable_broker and self.objectstore is None:
            with open(self.logs / "objectstore.log", "ab") as log:
                self.objectstore = subprocess.Popen(
                    [sys.executable, "-m", "chaos.objectstore", "--port", str(self.ports["objects"]),
                     "--root", str(self.var / "objects")],
                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            for _ in range(100):
                if port_open(self.ports["objects"]):
                    break
                time.sleep(0.1)
        self._services("start")

    def stop_service(self, name: str) -> None:
        self._services("stop", name)

    def start_service(self, name: str) -> None:
        self._services("start", name)
        if name == "kafka" and not self.durable_broker:
            # A broker on memory storage comes back empty: make the topics again, as the
            # setup step (scripts/prepare.sh) does after `make services`.
            self.manage("create_topics")

    def manage(self, *args: str) -> None:
        with open(self.logs / "manage.log", "ab") as log:
            subprocess.run([sys.executable, "manage.py", *args], env=self.app_env(), cwd=ROOT,
                           stdout=log, stderr=subprocess.STDOUT, check=True)

    def prepare(self) -> None:
        """The schema and the topics, as scripts/prepare.sh makes them."""
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("create_topics")

    def configure_django(self) -> None:
        """This process speaks to the chaos stack too (the producer, the counts)."""
        import django

        os.environ.update(self.app_env())
        django.setup()

    def close(self) -> None:
        """Stop every service and remove the data folder; the logs stay in test-artifacts/."""
        if self.started:
            try:
                self._services("stop")
            except subprocess.CalledProcessError:
                # One failed stop must not leave the others running.
                for name in reversed(SERVICES):
                    try:
                        self.stop_service(name)
                    except subprocess.CalledProcessError:
                        pass
        if self.objectstore is not None:
            self.objectstore.terminate()
            self.objectstore.wait(10)
        for log in (self.var / "log").glob("*.log"):
            shutil.copy(log, self.logs / f"service-{log.name}")
        for _ in range(3):
            shutil.rmtree(self.var, ignore_errors=True)
            if not self.var.exists():
                break
            time.sleep(0.5)
