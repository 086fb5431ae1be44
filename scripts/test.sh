#!/usr/bin/env bash
# `make test`: install (with the test dependencies), start the services, run the suite.
# Services this script started are stopped again at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh dev
status="$(bash scripts/services.sh status)"
if grep -q down <<<"$status"; then
  bash scripts/services.sh start
  trap 'bash scripts/services.sh stop' EXIT
fi
"${VENV:-$ROOT/.venv}/bin/ruff" check .
"${VENV:-$ROOT/.venv}/bin/mypy"
"${VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
