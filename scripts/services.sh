#!/usr/bin/env bash
# Start, stop or check the backing services as local processes on 127.0.0.1:
# PostgreSQL and Redis from Debian's packages, and the Kafka-protocol broker Tansu.
#   scripts/services.sh start|stop|status [postgres|redis|kafka]
# With a service named, only that one (the fault-injection suite restarts one at a time).
# Ports and folders come from the environment (see the README); data lives under var/.
# KAFKA_STORAGE is the broker's storage engine: memory://tansu/ (the default; a restart
# loses every message and committed offset) or s3://BUCKET/ with the store's address and
# keys in AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and
# AWS_ALLOW_HTTP=true for plain http (a restart then keeps topics, messages and offsets).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VAR="${GRAPHSPACE_VAR:-$ROOT/var}"
PGPORT="${PGPORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_STORAGE="${KAFKA_STORAGE:-memory://tansu/}"
DB_NAME="${DB_NAME:-graphspace}"
DB_USER="${DB_USER:-graphspace}"
DB_PASSWORD="${DB_PASSWORD:-graphspace}"
PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
TANSU="${TANSU:-$VAR/bin/tansu}"

mkdir -p "$VAR/log" "$VAR/run" "$VAR/redis"

as_postgres() { su postgres -s /bin/bash -c "$*"; }

# Report progress, but never fail because nobody is listening any more (a closed terminal
# or pipe must not stop a shutdown half-way).
say() { echo "$@" 2>/dev/null || true; }

# The cluster belongs to the postgres user, which must be able to reach its folder. A
# checkout under a private folder (mktemp -d makes them 0700) cannot host it, so the data
# then lives under /var/tmp, in a folder named after the checkout.
PGDATA="${PGDATA:-$VAR/postgres}"
PGLOG="$VAR/log/postgres.log"
if ! as_postgres "test -x '$VAR'"; then
  PGDATA="/var/tmp/graphspace-$(echo "$ROOT" | sha1sum | cut -c1-8)/postgres"
  PGLOG="$(dirname "$PGDATA")/postgres.log"
  mkdir -p "$(dirname "$PGDATA")" && chmod 755 "$(dirname "$PGDATA")"
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 100); do
    port_open "$port" && return 0
    sleep 0.1
  done
  echo "services: $name did not open port $port; see $VAR/log/$name.log" >&2
  return 1
}

start_postgres() {
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    # initdb refuses to run as root, so the postgres user owns the cluster.
    as_postgres "'$PGBIN/initdb' -D '$PGDATA' -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null"
  fi
  if port_open "$PGPORT"; then
    say "postgres: already listening on $PGPORT"
  else
    touch "$PGLOG" && chown postgres:postgres "$PGLOG"
    as_postgres "'$PGBIN/pg_ctl' -D '$PGDATA' -l '$PGLOG' -w -t 60 \
      -o \"-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=${PG_FSYNC:-on}\" start >/dev/null"
    say "postgres: started on 127.0.0.1:$PGPORT"
  fi
  # The application's role and database, idempotently. CREATEDB lets the tests make theirs.
  as_postgres "psql -h /tmp -p $PGPORT -U postgres -tAc \"SELECT 1 FROM pg_roles WHERE rolname='$DB_USER'\"" | grep -q 1 \
    || as_postgres "psql -h /tmp -p $PGPORT -U postgres -qc \"CREATE ROLE \\\"$DB_USER\\\" LOGIN CREATEDB PASSWORD '$DB_PASSWORD'\""
  as_postgres "psql -h /tmp -p $PGPORT -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='$DB_NAME'\"" | grep -q 1 \
    || as_postgres "psql -h /tmp -p $PGPORT -U postgres -qc \"CREATE DATABASE \\\"$DB_NAME\\\" OWNER \\\"$DB_USER\\\"\""
}

stop_postgres() {
  if [ -s "$PGDATA/postmaster.pid" ] || as_postgres "test -s '$PGDATA/postmaster.pid'" 2>/dev/null; then
    as_postgres "'$PGBIN/pg_ctl' -D '$PGDATA' -m fast -w stop >/dev/null" && say "postgres: stopped"
  fi
}

start_redis() {
  if port_open "$REDIS_PORT"; then
    say "redis: already listening on $REDIS_PORT"
    return
  fi
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --dir "$VAR/redis" --pidfile "$VAR/run/redis.pid" --logfile "$VAR/log/redis.log" \
    --appendonly yes --save ""
  wait_port "$REDIS_PORT" redis
  say "redis: started on 127.0.0.1:$REDIS_PORT"
}

stop_redis() {
  local pid
  pid="$(cat "$VAR/run/redis.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$VAR/run/redis.pid"
    say "redis: stopped"
  fi
}

start_kafka() {
  if port_open "$KAFKA_PORT"; then
    say "kafka (tansu): already listening on $KAFKA_PORT"
    return
  fi
  # Memory storage (the default): the broker keeps no data across restarts; the topics are
  # created again by the setup step, and committed offsets start over with them.
  # A session of its own: Ctrl-C in `make run` reaches the processes, which need the broker
  # until they have stopped; the EXIT trap stops it after them.
  setsid nohup "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine "$KAFKA_STORAGE" >"$VAR/log/tansu.log" 2>&1 &
  echo $! >"$VAR/run/tansu.pid"
  wait_port "$KAFKA_PORT" tansu
  say "kafka (tansu): started on 127.0.0.1:$KAFKA_PORT"
}

stop_kafka() {
  local pid
  pid="$(cat "$VAR/run/tansu.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    # Gone before returning, so that a start right after finds the port free.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$VAR/run/tansu.pid"
    say "kafka (tansu): stopped"
  fi
}

case "${2:-}" in
  "") ;;
  postgres|redis|kafka)
    case "${1:-}" in
      start) "start_$2"; exit ;;
      stop) "stop_$2"; exit ;;
    esac ;;
  *) echo "usage: $0 start|stop|status [postgres|redis|kafka]" >&2; exit 2 ;;
esac

case "${1:-}" in
  start) start_postgres; start_redis; start_kafka ;;
  stop) stop_kafka; stop_redis; stop_postgres ;;
  status)
    for pair in "postgres:$PGPORT" "redis:$REDIS_PORT" "kafka:$KAFKA_PORT"; do
      if port_open "${pair#*:}"; then echo "${pair%%:*}: up on ${pair#*:}"; else echo "${pair%%:*}: down"; fi
    done ;;
  *) echo "usage: $0 start|stop|status [postgres|redis|kafka]" >&2; exit 2 ;;
esac
