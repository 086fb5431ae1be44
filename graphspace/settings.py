"""GraphSpace settings: one module, every value from the environment with a local default.

django-environ parses each variable and fails loudly on a malformed value (a DATABASE_URL
that is not a URL, a port that is not a number), so a typo stops the process at start-up
instead of surfacing later as a confusing connection error.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# --- The signing key -------------------------------------------------------------------
# It signs sessions, CSRF tokens and the digest's unsubscribe links: anyone who knows it can
# forge them, so a key that is written in this repository must never serve a real site.
# `make run` (scripts/setup.sh) writes a random one to var/secret_key once, and every process
# of a checkout reads it from there; a deployment sets DJANGO_SECRET_KEY.
DEVELOPMENT_SECRET_KEY = "graphspace-local-development-key-change-me"
SECRET_KEY_FILE = Path(env.str("DJANGO_SECRET_KEY_FILE", default=str(BASE_DIR / "var" / "secret_key")))


def secret_key_problem(key: str) -> str | None:
    """Why a key must not sign anything on a real site, or None. Django's own numbers
    (`check --deploy`, security.W009): 50 characters, 5 different ones."""
    if key == DEVELOPMENT_SECRET_KEY:
        return "is the built-in development key"
    if "change-me" in key.lower():
        return "still holds the placeholder change-me"
    if key.startswith(SECRET_KEY_INSECURE_PREFIX):
        return f"starts with {SECRET_KEY_INSECURE_PREFIX!r}"
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return (f"is shorter than {SECRET_KEY_MIN_LENGTH} characters "
                f"or has fewer than {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones")
    return None


def _secret_key() -> str:
    key = env.str("DJANGO_SECRET_KEY", default="")
    if not key and SECRET_KEY_FILE.is_file():
        key = SECRET_KEY_FILE.read_text().strip()
    return key or DEVELOPMENT_SECRET_KEY


SECRET_KEY = _secret_key()
# Old keys that still verify what they signed (sessions, unsubscribe links) while a new
# SECRET_KEY takes over: rotate without logging everyone out.
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
if not DEBUG and (problem := secret_key_problem(SECRET_KEY)):
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY {problem}: set it to a long random value, e.g. the output of "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))' (`make run` keeps one in "
        f"{SECRET_KEY_FILE}), or set DJANGO_DEBUG=true for a throwaway local run."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# --- Behind https (docs/operating.md, "Security") ---------------------------------------
# DJANGO_SECURE=true for a site served over https: cookies only travel over https, browsers
# are told to use nothing else (HSTS), and plain http is redirected. Off by default because
# `make run` serves http://127.0.0.1:8000, where a Secure session cookie would never come back.
SECURE = env.bool("DJANGO_SECURE", default=False)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=SECURE)
# The container's health check and Prometheus ask over plain http from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^healthz/dependencies$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=365 * 24 * 3600 if SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=SECURE)
# Preloading writes the domain into the browsers' own lists, which takes months to undo: it
# is the domain owner's decision (DJANGO_HSTS_PRELOAD=true), so check --deploy is told that
# leaving it off is deliberate.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Behind a proxy that ends TLS (nginx, a load balancer): it says https in X-Forwarded-Proto,
# and the web server takes the client's address from X-Forwarded-For (graphspace/web.py), which
# the login throttle keys on. Only with a proxy that sets both headers itself.
BEHIND_PROXY = env.bool("DJANGO_BEHIND_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Content-Security-Policy (django-csp): the pages load scripts, styles and the websocket from
# this site only, and nothing inline (event handlers and style attributes included), so a
# name that slipped past escaping still could not run. `{{ request.csp_nonce }}` on a tag
# is the one way to allow an inline script or style, should a page ever need one.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        # 'self' covers ws:// and wss:// to this host too (CSP Level 3).
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "csp",
    "axes",
    "django_celery_beat",
    "django_celery_results",
    "graphspace",
    "notifications",
    "kafka_bridge",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: it turns a login refused for too many failures into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "graphspace.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "graphspace.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "notifications.context_processors.bell",
            ],
        },
    },
]

DATABASES = {
    "default": env.db(
        "DATABASE_URL", default="postgres://graphspace:graphspace@127.0.0.1:5432/graphspace"
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# An unreachable database fails a connection attempt in seconds (a transient error the
# processes retry) instead of hanging a loop or a request on the operating system's timeout.
DATABASES["default"]["OPTIONS"] = {
    **DATABASES["default"].get("OPTIONS", {}), "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=5),
}
# Web (scripts/process.sh web sets it): under daphne each request's sync code ran in a thread
# of its own, and a persistent connection per thread used up PostgreSQL's max_connections under
# 20 concurrent clients (HTTP 500 "too many clients"). A pool bounds the connections and
# reuses them; Django's pool needs CONN_MAX_AGE 0 (a closed connection goes back to the pool).
# Each web process runs its requests in this many reused threads (graphspace/asgi.py), so a
# request never waits for a connection.
# Not for Celery's prefork workers: a pool opened before the fork would be shared by children.
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=0)
if DATABASE_POOL_MAX_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "pool": {"min_size": 2, "max_size": DATABASE_POOL_MAX_SIZE, "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0)},
    }

AUTH_USER_MODEL = "graphspace.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/login/"

# --- Login throttling (django-axes) ----------------------------------------------------
# The login form and the REST API's HTTP Basic both authenticate through Django, so axes sees
# every attempt: after AXES_FAILURE_LIMIT failures for one email from one address, that pair
# is refused (the right password too) until the cool-off ends. Others, and the same person
# from elsewhere, are unaffected. Attempts live in PostgreSQL, shared by every web process.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The key both callers pass to authenticate() (the default is the user model's "email", which
# is not in the credentials: every attempt would count for a user named None).
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
# One row per login would grow without bound; the failures are what the throttle needs.
AXES_DISABLE_ACCESS_LOG = True
# The answer: GraphSpace's JSON error on the API, the login form with its error on the page.
AXES_LOCKOUT_CALLABLE = "graphspace.views.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_TZ = True
USE_I18N = False

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# --- Kafka -----------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env.list("KAFKA_BOOTSTRAP_SERVERS", default=["127.0.0.1:9092"])
# Logical topic (the seed's name) -> the topic used on the broker. Tests point these at
# topics of their own so that runs never read each other's events.
KAFKA_TOPICS = {
    "owner": env.str("KAFKA_TOPIC_OWNER", default="owner"),
    "group": env.str("KAFKA_TOPIC_GROUP", default="group"),
    "watching": env.str("KAFKA_TOPIC_WATCHING", default="watching"),
}
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=1)
# Where the bridge copies every message it rejects (kafka_bridge/dead_letter.py).
KAFKA_DEAD_LETTER_TOPIC = env.str("KAFKA_DEAD_LETTER_TOPIC", default="notifications.dead-letter")
KAFKA_CONSUMER_GROUP = env.str("KAFKA_CONSUMER_GROUP", default="graphspace-notifications")
# Tansu makes a consumer's first join wait session_timeout / 2: keep it short.
KAFKA_SESSION_TIMEOUT_MS = env.int("KAFKA_SESSION_TIMEOUT_MS", default=6000)
# The most messages in one batch, one Celery task. A backlog fills batches at once: 2,000 a
# task spent a quarter less CPU per event than 500 (bridge, worker and PostgreSQL together) in
# the burst of benchmarks/test_bench_burst.py, 6,500-13,700 events/s against 4,000-7,500 in
# the same hours (docs/storage.md). A batch of 2,000 is about 1 MB of task and 150 ms of persist.
KAFKA_BATCH_MAX = env.int("KAFKA_BATCH_MAX", default=2000)
# A batch is due when it holds KAFKA_BATCH_MAX messages or this long after its first message
# (kafka_bridge/batching.py): one Celery task and one offset commit per batch. 0: what a poll
# returns goes at once if a worker is free; busy workers make the batches grow (below). 20 ms
# cost 20-28 ms of p50 at 50 events/s and bought nothing at 200/s (docs/latency.md).
KAFKA_BATCH_WAIT_MS = env.int("KAFKA_BATCH_WAIT_MS", default=0)
# ... and while the workers are busy (a task waits in the Celery queue, or KAFKA_BATCH_IN_FLIGHT
# batches are unconfirmed), on until one is free, but no longer than this.
KAFKA_BATCH_WAIT_BUSY_MS = env.int("KAFKA_BATCH_WAIT_BUSY_MS", default=500)
# Batches with the workers at once: their processes, all of them (kafka_bridge/confirmations.py,
# `ready`). The worker's concurrency by default (scripts/process.sh reads the same variable).
# 0: a batch goes whenever the Celery queue is empty, however many are running.
KAFKA_BATCH_IN_FLIGHT = env.int("KAFKA_BATCH_IN_FLIGHT", default=env.int("CELERY_CONCURRENCY", default=2))
# A batch with at least twice this many recipients is stored in parts, at most PERSIST_PARTS_MAX,
# by several worker processes at once (tasks/persist.py; docs/storage.md).
PERSIST_PART_MIN_RECIPIENTS = env.int("PERSIST_PART_MIN_RECIPIENTS", default=2000)
PERSIST_PARTS_MAX = env.int("PERSIST_PARTS_MAX", default=env.int("CELERY_CONCURRENCY", default=2))
KAFKA_POLL_TIMEOUT_MS = env.int("KAFKA_POLL_TIMEOUT_MS", default=200)
# The longest the broker holds the bridge's fetch when there is nothing new (kafka_bridge/backend.py).
# Apache Kafka answers as soon as data arrives, whatever this is. Tansu answers a waiting fetch
# only when the wait ends, so there it is a floor under every event's latency (500: commit-to-row
# 236 ms p50; 20: 18 ms); the bridge sets its batch size itself now (KAFKA_BATCH_WAIT_MS), so 20
# suits Tansu. (It was 500 while the broker-restart experiment lost events: that loss was the
# relay taking Tansu's offset -1 answer for an acknowledgement, whatever the wait; docs/guarantee.md.)
KAFKA_FETCH_MAX_WAIT_MS = env.int("KAFKA_FETCH_MAX_WAIT_MS", default=20)
# The outbox relay (graphspace/producer.py): how long it waits for the broker to take a
# batch before it keeps the batch and tries again (requests never wait for Kafka at all).
KAFKA_RELAY_TIMEOUT_MS = env.int("KAFKA_RELAY_TIMEOUT_MS", default=5000)
# The relay is woken by NOTIFY at once; it also looks this often in case a wake-up was lost.
OUTBOX_IDLE_POLL_SECONDS = env.float("OUTBOX_IDLE_POLL_SECONDS", default=1.0)

# --- Celery ----------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_TASK_ACKS_LATE = True
# Celery's Django fixup closes the database connection before and after every task unless
# this is set, so each batch paid for a new PostgreSQL connection and CONN_MAX_AGE never
# applied in the worker. With it, a pool process keeps its connection for this many tasks;
# the base task's close_old_connections() still drops one that is broken or past its age.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# A worker killed mid-task gives the task back instead of acknowledging it.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task taken ahead per worker process: a batch waits in the queue, where any worker can
# take it, rather than behind a busy (or dying) worker's.
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
# The pipeline tasks are high-volume and their outcome lives in the notification rows.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# acks_late with Redis: a task a worker has taken stays in Redis until it is acknowledged.
# Its worker renews the task's lease several times per visibility timeout for as long as it
# holds it (graphspace/celery_worker.py), and every worker sweeps every 2 s for tasks whose
# lease ran out and puts them back in their queue. So a dead worker's tasks (or those taken on
# a connection that was lost) are back within the timeout plus a sweep, while a live worker's
# task is never handed out twice, however long it runs or waits for a retry's countdown.
# docs/operating.md, "Recovery after a worker or Redis dies", has the figures.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=15),
    # kombu sweeps every interval x throttle seconds: 10 x 10 unless told.
    "unacked_restore_interval": 2,
    "unacked_restore_throttle": 1,
    # The sweep's lock. A worker killed while holding it stops everyone's sweeps until it
    # expires (300 s unless told); two sweeps at once are safe, each put-back is a transaction.
    "unacked_mutex_expire": 5,
}
# A worker keeps trying to reach the broker for as long as it is down (Celery gives up after
# 100 attempts unless told, and the worker exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_ALWAYS_EAGER = False
# The queue the tasks go to and the workers read; a test run uses one of its own.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="celery")

# --- Channels --------------------------------------------------------------------------
# Each open socket waits for its messages with a blocking Redis read (BZPOPMIN) of 5 s,
# channels_redis's RedisChannelLayer.brpop_timeout. redis-py's default socket timeout is 5 s
# too, so the read of an idle socket timed out and daphne closed the socket with 1011 every
# few seconds. The layer's connections wait longer than that read: a live Redis always answers
# within it, so only a dead connection reaches the timeout, and is dropped.
CHANNELS_BLOCKING_READ_SECONDS = 5
CHANNELS_REDIS_SOCKET_TIMEOUT = env.float("CHANNELS_REDIS_SOCKET_TIMEOUT", default=15.0)
if CHANNELS_REDIS_SOCKET_TIMEOUT <= CHANNELS_BLOCKING_READ_SECONDS:
    raise ImproperlyConfigured(
        f"CHANNELS_REDIS_SOCKET_TIMEOUT must exceed the channel layer's {CHANNELS_BLOCKING_READ_SECONDS} s blocking read"
    )
CHANNEL_LAYERS = {
    "default": {
        # channels-redis, taking a web process's waiting frames in batches (notifications/channels.py).
        "BACKEND": "notifications.channels.ChannelLayer",
        "CONFIG": {
            # One dict per Redis: the address and the connection pool's options
            # (channels_redis.utils.create_pool passes them to redis-py).
            "hosts": [{
                "address": env.str("CHANNELS_REDIS_URL", default=REDIS_URL),
                "socket_timeout": CHANNELS_REDIS_SOCKET_TIMEOUT,
                # Connecting is not a blocking read: a Redis that is down is reported as soon as before.
                "socket_connect_timeout": 5,
            }],
            "prefix": env.str("CHANNELS_PREFIX", default="asgi"),
            # Messages waiting per channel key before new ones are dropped. Every socket of one
            # web process shares its process's key, so this must hold the largest burst a
            # process receives at once: a share into a big group sends one frame to each of its
            # open sockets (channels-redis's 100 dropped 87 of 1,000 frames).
            "capacity": env.int("CHANNELS_CAPACITY", default=10_000),
        },
    }
}

# --- Notifications ---------------------------------------------------------------------
DEMO_PASSWORD = env.str("GRAPHSPACE_DEMO_PASSWORD", default="graphspace-demo")
# The clustering rule (notifications/clustering.py): a cluster takes a new notification that
# arrives within the window of its previous one, up to the span from its first.
NOTIFICATION_CLUSTER_WINDOW_MINUTES = env.int("NOTIFICATION_CLUSTER_WINDOW_MINUTES", default=60)
NOTIFICATION_CLUSTER_SPAN_HOURS = env.int("NOTIFICATION_CLUSTER_SPAN_HOURS", default=24)

# --- Operations (docs/operating.md) ----------------------------------------------------
# /metrics on web: with a token set, only `Authorization: Bearer <token>` may read it;
# without one, only callers on the loopback.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# The bridge and the worker serve their own /metrics on these ports (0: not at all), on
# METRICS_HOST (0.0.0.0 in a container that Prometheus scrapes from another one).
METRICS_HOST = env.str("METRICS_HOST", default="127.0.0.1")
BRIDGE_METRICS_PORT = env.int("BRIDGE_METRICS_PORT", default=9101)
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=9102)
RELAY_METRICS_PORT = env.int("RELAY_METRICS_PORT", default=9103)
# The bridge touches this file once a second at most, busy or idle (empty: no file).
BRIDGE_HEARTBEAT_FILE = env.str("BRIDGE_HEARTBEAT_FILE", default="")
# Seconds /healthz and /healthz/dependencies wait for each of the database, Redis and Kafka.
HEALTHZ_TIMEOUT = env.float("HEALTHZ_TIMEOUT", default=2.0)

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# plain, or json: one JSON object per line (ops/log_format.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
# Celery replaces the root logger's handlers with its own format unless told not to.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "ops.log_format.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "kafka": {"level": "WARNING"},
        # Failures and lockouts are warnings; every successful login at INFO is noise.
        "axes": {"level": "WARNING"},
    },
}

# --- Email and digest ------------------------------------------------------------------
# Locally the SMTP catcher (`scripts/process.sh smtp`) listens on 127.0.0.1:1025.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="127.0.0.1")
EMAIL_PORT = env.int("EMAIL_PORT", default=1025)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
# Seconds per socket operation: a hung mail server must end the attempt well within the
# digest task's time limit, so that it fails as transient and is retried.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="GraphSpace <notifications@graphspace.local>")
# When the daily digest starts, in TIME_ZONE. Applied to the periodic task when the
# database is migrated; afterwards the schedule is edited in the admin.
DIGEST_HOUR = env.int("DIGEST_HOUR", default=0)
DIGEST_MINUTE = env.int("DIGEST_MINUTE", default=0)
# Clusters listed in one email; the rest are summed up as "and N more".
DIGEST_MAX_ITEMS = env.int("DIGEST_MAX_ITEMS", default=20)
# A digest claim older than this is taken to belong to a worker that died, and is sent
# again. Keep it above the digest task's hard time limit (150 s, tasks/base.py), so that a
# live worker has always finished or been killed before its claim lapses.
DIGEST_CLAIM_LEASE_SECONDS = env.int("DIGEST_CLAIM_LEASE_SECONDS", default=300)
# Stored results name their task, so the admin and Flower show which digest they belong to.
CELERY_RESULT_EXTENDED = True

if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ValueError("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive; set one of them")
if not (0 <= DIGEST_HOUR <= 23 and 0 <= DIGEST_MINUTE <= 59):
    raise ValueError(f"DIGEST_HOUR={DIGEST_HOUR} DIGEST_MINUTE={DIGEST_MINUTE} is not a time of day")
if DIGEST_MAX_ITEMS < 1 or DIGEST_CLAIM_LEASE_SECONDS < 1:
    raise ValueError("DIGEST_MAX_ITEMS and DIGEST_CLAIM_LEASE_SECONDS must be at least 1")
