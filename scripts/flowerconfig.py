"""Flower's configuration file (scripts/process.sh flower passes it with --conf).

Flower 2.2 serves /metrics to anyone: unlike its pages and API, its Metrics handler has no
@tornado.web.authenticated, so --basic-auth does not cover it, and the task names, worker
names and queue lengths it exposes were open to whoever could reach the port. Tornado runs
this file as Python before Flower builds its application, so the handler gets the same check as
the rest of Flower here: without the password, 401. /healthcheck stays open for the container's
health check (it says only "OK").
"""

import tornado.web
from flower.views.monitor import Metrics

Metrics.get = tornado.web.authenticated(Metrics.get)
