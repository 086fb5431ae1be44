"""Operations endpoints: /healthz for supervisors and load balancers, /metrics for Prometheus.

/healthz asks the three services the web app needs (PostgreSQL, Redis, Kafka) at the same
time, each with its own short timeout, and answers 200 only when all three replied. The body
says which one failed, and why:

    {"status": "fail", "failed": ["redis"], "checks": {"redis": {"ok": false, "error": "...",
     "ms": 1.3}, "database": {"ok": true, "error": null, "ms": 2.0}, "kafka": {...}}}

It needs no login: it names no data, only whether a service answered.

/metrics serves this process's Prometheus metrics (the bridge and the worker serve their own,
see graphspace/metrics.py). With METRICS_TOKEN set, it answers only a request with
`Authorization: Bearer <token>`; without one, only a caller on the loopback (the container
itself, or `curl` on the host that runs daphne). A token, once set, is required from
everyone, so a reverse proxy on the same host cannot turn "loopback" into "anyone".
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connections
from django.db.utils import load_backend
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from graphspace import metrics

# --- the checks: each raises when its service does not answer in time -----------------------


def check_database(timeout: float) -> None:
    """SELECT 1 over a connection of its own, with libpq's connect_timeout (whole seconds,
    at least 2): the request's shared connection has no timeout and would hang on a dead host."""
    params = connections["default"].settings_dict
    backend = load_backend(params["ENGINE"])
    options = {**params.get("OPTIONS", {}), "connect_timeout": max(2, round(timeout))}
    probe = backend.DatabaseWrapper({**params, "OPTIONS": options}, "healthz")
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        probe.close()


def redis_urls() -> list[str]:
    """The Celery broker and the Channels layer: usually one Redis, sometimes two."""
    urls = [settings.CELERY_BROKER_URL] if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else []
    for host in settings.CHANNEL_LAYERS.get("default", {}).get("CONFIG", {}).get("hosts", []):
        address = host.get("address") if isinstance(host, dict) else host
        if isinstance(address, str):
            urls.append(address)
    return list(dict.fromkeys(urls))


def check_redis(timeout: float) -> None:
    for url in redis_urls():
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()


def check_kafka(timeout: float) -> None:
    """An ApiVersions request to the bootstrap servers; any one answering is enough.

    A raw request rather than a kafka-python client: a client that cannot bootstrap leaves
    its I/O thread running, one more for every failed check.
    """
    errors = []
    for server in settings.KAFKA_BOOTSTRAP_SERVERS:
        host, _, port = server.rpartition(":")
        try:
            kafka_api_versions(host.strip("[]") or "localhost", int(port), timeout)
            return
        except (OSError, ValueError) as error:
            errors.append(f"{server}: {error}")
    raise ConnectionError("; ".join(errors) or "no KAFKA_BOOTSTRAP_SERVERS")


API_VERSIONS_KEY = 18


def kafka_api_versions(host: str, port: int, timeout: float) -> None:
    """Send ApiVersions v0 (which every Kafka broker answers) and check the reply's error code."""
    client_id = b"graphspace-healthz"
    correlation_id = int(time.monotonic() * 1000) & 0x7FFFFFFF
    request = struct.pack(">hhih", API_VERSIONS_KEY, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _receive(sock, 4))
        reply = _receive(sock, size)
    answered_id, error_code = struct.unpack(">ih", reply[:6])
    if answered_id != correlation_id:
        raise ValueError(f"reply to request {answered_id}, not {correlation_id}")
    if error_code:
        raise ValueError(f"ApiVersions error code {error_code}")


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


CHECKS: dict[str, Callable[[float], None]] = {
    "database": check_database,
    "redis": check_redis,
    "kafka": check_kafka,
}


async def _run(check: Callable[[float], None], timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    error: str | None = None
    try:
        # The checks block (psycopg, redis-py, sockets): each runs in a thread, all at once.
        await asyncio.wait_for(asyncio.to_thread(check, timeout), timeout + 0.5)
    except TimeoutError:
        error = f"no answer within {timeout:g}s"
    except Exception as failure:
        error = f"{type(failure).__name__}: {failure}".strip()
    return {"ok": error is None, "error": error, "ms": round((time.monotonic() - started) * 1000, 1)}


async def healthz(request: HttpRequest) -> JsonResponse:
    timeout = float(settings.HEALTHZ_TIMEOUT)
    results = await asyncio.gather(*(_run(check, timeout) for check in CHECKS.values()))
    checks = dict(zip(CHECKS, results, strict=True))
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "fail" if failed else "ok", "failed": failed, "checks": checks}
    response = JsonResponse(body, status=503 if failed else 200)
    response["Cache-Control"] = "no-store"
    return response


# --- metrics --------------------------------------------------------------------------------

_registry = metrics.registry()
# The outbox as the database holds it: what no relay has published yet.
_registry.register(metrics.OutboxBacklog())

LOOPBACK = {"127.0.0.1", "::1"}


def may_read_metrics(request: HttpRequest) -> bool:
    token: str = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    return request.META.get("REMOTE_ADDR") in LOOPBACK


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not may_read_metrics(request):
        return HttpResponse("metrics are for the loopback or METRICS_TOKEN\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
]
