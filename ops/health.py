"""Health endpoints: /healthz (liveness) and /healthz/dependencies, for supervisors and load
balancers (routed in ops/urls.py).

/healthz is liveness: this process answers and reaches its database. That is what an
orchestrator restarts web on (docker-compose.yml), and all it asks: a Kafka outage fails no
request (an action's event waits in the outbox until the relay publishes it) and a Redis
outage is not cured by restarting web either, so neither restarts every web instance.

/healthz/dependencies reports every service web uses (PostgreSQL, Redis, Kafka), asked at
the same time, each with its own short timeout: 200 only when all three replied, 503
otherwise. For dashboards, alerts and a load balancer that should stop sending traffic:

    {"status": "fail", "failed": ["kafka"], "checks": {"database": {"ok": true, "error": null,
     "ms": 2.0}, "redis": {...}, "kafka": {"ok": false, "error": "...", "ms": 2001.3}}}

/healthz answers with the same body, with the database alone. Neither needs a login: they
name no data, only whether a service answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connections
from django.db.utils import load_backend
from django.http import HttpRequest, JsonResponse
from kafka import KafkaAdminClient

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
    """kafka-python's admin client bootstraps from KAFKA_BOOTSTRAP_SERVERS (ApiVersions and
    metadata from any one broker that answers) within the timeout, and is closed again."""
    admin = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(  # type: ignore[misc]
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            client_id="graphspace-healthz",
            bootstrap_timeout_ms=int(timeout * 1000),
            request_timeout_ms=int(timeout * 1000),
        )
    except BaseException:
        # kafka-python 3 starts its I/O thread before it bootstraps, and a constructor that
        # raises leaves that thread running: one more for every failed check. Stop it here.
        net = getattr(admin, "_net", None)
        if net is not None:
            admin._client.close()
            net.stop()
        raise
    admin.close()


# Liveness: the process and its database. The dependency report: every service web uses.
LIVENESS: dict[str, Callable[[float], None]] = {"database": check_database}
DEPENDENCIES: dict[str, Callable[[float], None]] = {
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


async def _report(checks: dict[str, Callable[[float], None]]) -> JsonResponse:
    timeout = float(settings.HEALTHZ_TIMEOUT)
    results = await asyncio.gather(*(_run(check, timeout) for check in checks.values()))
    answered = dict(zip(checks, results, strict=True))
    failed = [name for name, result in answered.items() if not result["ok"]]
    body = {"status": "fail" if failed else "ok", "failed": failed, "checks": answered}
    response = JsonResponse(body, status=503 if failed else 200)
    response["Cache-Control"] = "no-store"
    return response


async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 while this process answers and its database does."""
    return await _report(LIVENESS)


async def dependencies(request: HttpRequest) -> JsonResponse:
    """The dependency report: PostgreSQL, Redis and Kafka, each ok or the reason it is not."""
    return await _report(DEPENDENCIES)
