#!/usr/bin/env bash
# Start a throwaway redis-server on loopback for the Redis-backed tests; idempotent.
#
#   url=$(bash scripts/start_redis.sh) && export LIVEROOM_TEST_REDIS_URL="$url"
#
# Installs Debian's redis-server when it is missing (needs root), keeps its files under
# $REDISTEST_DIR (default /tmp/liveroom-redis), listens on 127.0.0.1:$REDISTEST_PORT only (default 63799),
# no persistence (tests flush it), and prints the redis:// URL on stdout (everything else goes to stderr).
set -euo pipefail

REDISTEST_DIR="${REDISTEST_DIR:-/tmp/liveroom-redis}"
REDISTEST_PORT="${REDISTEST_PORT:-63799}"
log() { echo "start_redis: $*" >&2; }

if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then log "not root: cannot install redis-server"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq --no-install-recommends redis-server >&2
fi

mkdir -p "$REDISTEST_DIR"
if ! redis-cli -h 127.0.0.1 -p "$REDISTEST_PORT" ping >/dev/null 2>&1; then
  log "starting on 127.0.0.1:$REDISTEST_PORT"
  redis-server --bind 127.0.0.1 --port "$REDISTEST_PORT" --protected-mode yes --save "" --appendonly no \
    --dir "$REDISTEST_DIR" --daemonize yes --pidfile "$REDISTEST_DIR/redis.pid" \
    --logfile "$REDISTEST_DIR/redis.log" >&2
fi
for _ in $(seq 1 50); do
  redis-cli -h 127.0.0.1 -p "$REDISTEST_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$REDISTEST_PORT" ping >/dev/null || { log "redis did not start"; exit 1; }
echo "redis://127.0.0.1:$REDISTEST_PORT/0"
