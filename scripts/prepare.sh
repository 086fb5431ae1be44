#!/usr/bin/env bash
# With the services up: apply migrations, create the Kafka topics and the demo users.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${VENV:-$ROOT/.venv}/bin/python"
cd "$ROOT"
"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py create_topics
"$PY" manage.py create_demo_users
