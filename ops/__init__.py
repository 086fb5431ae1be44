"""Process infrastructure, shared by every process (web, worker, beat, bridge, relay) and
owned by none of the apps: health checks (health.py), Prometheus metrics (metrics.py, and
web's /metrics in web_metrics.py), JSON log lines (log_format.py), the URLs (urls.py).

A plain package, not a Django app (no models, templates or migrations). It imports no app:
the host adds what only it knows (the outbox backlog) through `web_metrics.add_collector`.
"""
