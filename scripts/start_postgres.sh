#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on loopback for the audience store tests; idempotent.
#
#   url=$(bash scripts/start_postgres.sh) && export LIVEROOM_TEST_PG_URL="$url"
#
# Installs Debian's postgresql when it is missing (needs root), puts the cluster under
# $PGTEST_DIR (default /tmp/liveroom-pg), listens on 127.0.0.1:$PGTEST_PORT only (default 54329),
# trusts local connections (nothing else can reach it), creates the database liveroom_test and
# prints the SQLAlchemy URL on stdout (everything else goes to stderr).
set -euo pipefail

PGTEST_DIR="${PGTEST_DIR:-/tmp/liveroom-pg}"
PGTEST_PORT="${PGTEST_PORT:-54329}"
DB=liveroom_test
log() { echo "start_postgres: $*" >&2; }

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

BIN=$(pg_bin || true)
if [ -z "$BIN" ]; then
  log "installing postgresql (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then log "not root: cannot install postgresql"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq --no-install-recommends postgresql >&2
  BIN=$(pg_bin)
fi

# The server refuses to run as root: run it as `postgres` (created by the package) when we are root.
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

mkdir -p "$PGTEST_DIR"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$PGTEST_DIR"; fi
DATA="$PGTEST_DIR/data"
if [ ! -f "$DATA/PG_VERSION" ]; then
  log "initdb $DATA"
  as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2 \
    || as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C >&2
fi

if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  log "starting on 127.0.0.1:$PGTEST_PORT"
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$PGTEST_DIR/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PGTEST_PORT -k $PGTEST_DIR -c max_connections=200 -c fsync=on" >&2
fi

for _ in $(seq 1 30); do
  as_pg "$BIN/pg_isready" -h 127.0.0.1 -p "$PGTEST_PORT" -q && break
  sleep 0.5
done
if ! as_pg "$BIN/psql" -h 127.0.0.1 -p "$PGTEST_PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
  as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PGTEST_PORT" -U postgres "$DB" >&2
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PGTEST_PORT/$DB"
