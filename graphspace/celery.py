"""The Celery app. Only the `tasks` package defines tasks; nothing else is imported by Celery."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphspace.settings")

app = Celery("graphspace")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("tasks.persist", "tasks.broadcast", "tasks.digest")
