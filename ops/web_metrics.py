"""Web's /metrics for Prometheus (routed in ops/urls.py).

It serves this process's Prometheus metrics (the bridge and the worker serve their own, see
ops/metrics.py), and whatever collectors the host adds with `add_collector` (GraphSpace adds
its outbox backlog in graphspace/urls.py). With METRICS_TOKEN set, it answers only a request
with `Authorization: Bearer <token>`; without one, only a caller on the loopback (the
container itself, or `curl` on the host that runs daphne). A token, once set, is required
from everyone, so a reverse proxy on the same host cannot turn "loopback" into "anyone".
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from ops import metrics

_registry = metrics.registry()
_added: dict[str, Collector] = {}

LOOPBACK = {"127.0.0.1", "::1"}


def add_collector(name: str, collector: Collector) -> None:
    """Show `collector` on web's /metrics too; once per name (a URLconf imported again
    registers nothing twice)."""
    if name not in _added:
        _added[name] = collector
        _registry.register(collector)


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
