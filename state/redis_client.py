"""One Redis client per process (it pools its own connections), from ``LIVEROOM_REDIS_URL``."""

from __future__ import annotations

import redis


def connect(url: str) -> redis.Redis:
    """A client that fails fast: a stalled Redis must not hold an answer for long."""
    client: redis.Redis = redis.Redis.from_url(
        url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30, decode_responses=False
    )
    return client
