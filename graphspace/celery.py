"""The Celery app. Only the `tasks` package defines tasks; nothing else is imported by Celery."""

import os

from celery import Celery

from graphspace.celery_worker import RenewLeases

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphspace.settings")

app = Celery("graphspace")
app.config_from_object("django.conf:settings", namespace="CELERY")
# A worker renews the leases of the tasks it holds, so that only a dead worker's come back,
# and reconnects to the broker at most a few seconds after it returns (graphspace/celery_worker.py).
app.steps["consumer"].add(RenewLeases)
app.conf.worker_consumer = "graphspace.celery_worker:Consumer"
app.conf.imports = ("tasks.persist", "tasks.broadcast", "tasks.digest")
