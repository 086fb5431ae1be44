"""The web process (`scripts/process.sh web`): uvicorn serving graphspace.asgi (HTTP and the
notification websocket) in WEB_WORKERS processes, each listening on the same port.

uvicorn with its C parts (httptools for HTTP, uvloop for the event loop) replaced daphne:
docs/web.md has the figures. This module is uvicorn's own `uvicorn.run` with the project's
settings and two differences:
- each worker has a socket of its own on the port (SO_REUSEPORT), so the kernel spreads the
  connections evenly; on uvicorn's one shared socket a burst often went to one worker (`bind`);
- "Listening on TCP address HOST:PORT", the line the tests, the chaos suite and operators wait
  for, is logged once every worker serves (uvicorn says "running on" as soon as the socket is
  bound, seconds before Django has loaded). The sockets listen from the start, so a request
  that arrives while the workers start waits in a queue, not refused.

    WEB_HOST, WEB_PORT         where to listen (127.0.0.1; 8000, or 8443 with TLS)
    WEB_WORKERS                processes (2: one per core of the machine it was measured on)
    WEB_TLS_CERT, WEB_TLS_KEY  https and wss straight from the process
    DJANGO_BEHIND_PROXY        take the client's address and scheme from X-Forwarded-For and
                               X-Forwarded-Proto (the login throttle counts per address);
                               otherwise those headers are ignored, whoever sends them
    WEB_FORWARDED_ALLOW_IPS    the proxies those headers are taken from (default any, as daphne's
                               --proxy-headers did; a proxy's address or network narrows it)
"""

from __future__ import annotations

import logging
import os
import socket
import time

import environ
import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess, Process

log = logging.getLogger("graphspace.web")


def config() -> uvicorn.Config:
    from django.conf import settings

    env = environ.Env()
    cert = env.str("WEB_TLS_CERT", default="")
    return uvicorn.Config(
        "graphspace.asgi:application",
        host=env.str("WEB_HOST", default="127.0.0.1"),
        port=env.int("WEB_PORT", default=8443 if cert else 8000),
        workers=env.int("WEB_WORKERS", default=2),
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        # Channels' router answers no lifespan events.
        lifespan="off",
        ssl_certfile=cert or None,
        ssl_keyfile=env.str("WEB_TLS_KEY", default="") or None,
        # uvicorn trusts X-Forwarded-* from 127.0.0.1 unless told: off unless behind a proxy,
        # so that nobody on this host can pose as another address to the login throttle.
        proxy_headers=settings.BEHIND_PROXY,
        forwarded_allow_ips=env.str("WEB_FORWARDED_ALLOW_IPS", default="*"),
        server_header=False,
        access_log=False,
        # The project's log format (plain or JSON lines) in the supervisor and the workers alike.
        log_config=settings.LOGGING,
        # Open sockets are closed with 1012 (service restart) at once; requests get this long.
        timeout_graceful_shutdown=10,
    )


# How long the workers may take to start (import Django, the URLconf, open the socket's loop)
# before the supervisor stops waiting to say it listens.
READY_TIMEOUT = 120.0


def listening(sock: socket.socket, cfg: uvicorn.Config) -> None:
    host, port = sock.getsockname()[:2]
    log.info("Listening on TCP address %s:%d (%s, %d worker processes)", host, port,
             "https" if cfg.is_ssl else "http", cfg.workers)


def bind(cfg: uvicorn.Config, count: int) -> list[socket.socket]:
    """`count` listening sockets on WEB_HOST:WEB_PORT, one per worker. With more than one they
    share the port through SO_REUSEPORT, and the kernel spreads new connections over them by a
    hash of their addresses. On one shared socket the worker that wakes first accepted most of a
    burst: 20 keep-alive clients opened at once were split 20/0 or 19/1 in 4 of 12 runs, one
    GIL serving them all (docs/web.md). The port is first taken without SO_REUSEPORT, so that a
    server still running there is an error, not a silent partner."""
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    port = cfg.port
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((cfg.host, port))
            port = probe.getsockname()[1]
        sockets = []
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((cfg.host, port))
            # uvicorn leaves listen() to the workers' event loops: a connection made before one
            # of them is up would be refused. Listening here queues it until a worker accepts.
            sock.listen(cfg.backlog)
            sock.set_inheritable(True)
            sockets.append(sock)
        return sockets
    except OSError as error:
        log.error("cannot listen on %s:%s: %s", cfg.host, cfg.port, error)
        raise SystemExit(3) from None


class Workers(Multiprocess):
    """uvicorn's supervisor with a socket of its own for each worker (`bind`), saying "Listening
    on" once every worker serves (not when the socket is merely bound: a client that took that
    line for ready would wait for Django to load). A worker that dies is replaced by uvicorn's
    own code, which gives the new one every socket: it then shares the others' too."""

    def init_processes(self) -> None:
        for sock in self.sockets:
            process = Process(self.config, [sock])
            process.start()
            self.processes.append(process)
        deadline = time.monotonic() + READY_TIMEOUT
        starting = list(self.processes)
        while starting and time.monotonic() < deadline and not self.should_exit.is_set():
            self.handle_signals()  # a SIGTERM while they start still stops them
            starting = [p for p in starting if not p.is_ready(timeout=0.5)]
        if not starting:
            listening(self.sockets[0], self.config)


class OneWorker(uvicorn.Server):
    """WEB_WORKERS=1: the server itself, saying "Listening on" once it serves."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.sock = sock

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            listening(self.sock, self.config)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphspace.settings")
    cfg = config()
    sockets = bind(cfg, cfg.workers)
    if cfg.workers > 1:
        Workers(cfg, sockets=sockets).run()
    else:
        OneWorker(cfg, sockets[0]).run(sockets=sockets)


if __name__ == "__main__":
    main()
