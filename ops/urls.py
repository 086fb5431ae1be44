"""The operations endpoints, included at the site's root by the host's URLconf:
/healthz (liveness), /healthz/dependencies (the dependency report), /metrics (Prometheus)."""

from django.urls import path

from ops import health, web_metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("healthz/dependencies", health.dependencies, name="healthz-dependencies"),
    path("metrics", web_metrics.metrics_view, name="metrics"),
]
