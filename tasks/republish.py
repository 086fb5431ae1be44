"""Publish again the events the web app could not hand to Kafka."""

from __future__ import annotations

import logging

from graphspace import producer
from graphspace.celery import app
from tasks.base import GraphSpaceTask

log = logging.getLogger(__name__)

REPUBLISH_TASK = "tasks.republish_events"


@app.task(base=GraphSpaceTask, name=REPUBLISH_TASK, ignore_result=True, max_retries=0)
def republish_events() -> int:
    published, held = producer.republish_held()
    if published or held:
        log.info("republished %d held events; %d still held", published, held)
    return published
