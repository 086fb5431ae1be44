#!/usr/bin/env bash
# The command line of each long-running process, in one place: the Procfile, the tests
# and (later) the container image all start processes through this script.
#   scripts/process.sh web|worker|beat|bridge|relay|flower|smtp
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${VENV:-$ROOT/.venv}/bin"
cd "$ROOT"
case "${1:-}" in
  web)
    # uvicorn (httptools, uvloop) in WEB_WORKERS processes on one port; WEB_HOST, WEB_PORT,
    # WEB_TLS_CERT/WEB_TLS_KEY (https and wss) and DJANGO_BEHIND_PROXY (X-Forwarded-For, which
    # the login throttle counts per address) are read in graphspace/web.py. docs/web.md.
    # A bounded pool of database connections per process, one per request thread (graphspace/asgi.py).
    export DATABASE_POOL_MAX_SIZE="${DATABASE_POOL_MAX_SIZE:-10}"
    exec "$BIN/python" -m graphspace.web ;;
  worker) exec "$BIN/celery" -A graphspace worker -l "${LOG_LEVEL:-INFO}" \
            --concurrency "${CELERY_CONCURRENCY:-2}" -n "worker-$$@%h" ;;
  beat) exec "$BIN/celery" -A graphspace beat -l "${LOG_LEVEL:-INFO}" \
            --scheduler django_celery_beat.schedulers:DatabaseScheduler ;;
  bridge) exec "$BIN/python" manage.py kafka_bridge ;;
  # Publishes the outbox (events written in the actions' own transactions) to Kafka.
  relay) exec "$BIN/python" manage.py relay_outbox ;;
  flower)
    # Flower never runs without a password, and its /metrics asks for it too (flowerconfig.py).
    : "${FLOWER_BASIC_AUTH:?set FLOWER_BASIC_AUTH=user:password}"
    exec "$BIN/celery" -A graphspace flower --address="${FLOWER_HOST:-127.0.0.1}" \
      --port="${FLOWER_PORT:-5555}" --basic-auth="$FLOWER_BASIC_AUTH" --conf="$ROOT/scripts/flowerconfig.py" ;;
  # Local only: catches the digest emails on 127.0.0.1:1025 and saves them under var/mail/.
  smtp) exec "$BIN/python" -m notifications.smtp_catcher ;;
  *) echo "usage: $0 web|worker|beat|bridge|relay|flower|smtp" >&2; exit 2 ;;
esac
