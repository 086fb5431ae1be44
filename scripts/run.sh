#!/usr/bin/env bash
# `make run`: install, start the services, prepare the database and topics, and run every
# process in the foreground with honcho. Ctrl-C stops the processes and the services.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# The checkout's signing key, made once by setup.sh (settings.py also reads the file itself, for
# a manage.py command run by hand).
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-$(cat "${DJANGO_SECRET_KEY_FILE:-$ROOT/var/secret_key}")}"
bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT
bash scripts/prepare.sh
# Flower is never open without a password; this local default is printed in the README.
export FLOWER_BASIC_AUTH="${FLOWER_BASIC_AUTH:-admin:graphspace-flower}"
echo "GraphSpace on http://127.0.0.1:${WEB_PORT:-8000} (alice@example.com / graphspace-demo); Flower on http://127.0.0.1:${FLOWER_PORT:-5555}"
"${VENV:-$ROOT/.venv}/bin/honcho" start -f Procfile
