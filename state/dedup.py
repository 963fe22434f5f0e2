"""Message de-duplication shared by every worker: a platform's retry of a comment that landed on another
worker is dropped, once. One ``SET key 1 NX PX ttl`` per message: the first worker to set it owns the
message; the key expires after the de-duplication window (Redis bounds the keys by that age)."""

from __future__ import annotations

import redis

from state.keys import key


class RedisDedup:
    def __init__(self, client: redis.Redis, prefix: str = "lr"):
        self._r = client
        self.prefix = prefix

    def first_many(self, source: str, msg_ids: list[str], ttl_s: float) -> list[bool]:
        """For each id, whether this is its first sighting by any worker within ``ttl_s`` (a repeat within
        the batch is not); one round trip for the batch."""
        px = max(1, int(ttl_s * 1000))
        p = self._r.pipeline(transaction=False)
        for m in msg_ids:
            p.set(key(self.prefix, "seen", source, m), b"1", nx=True, px=px)
        return [bool(x) for x in p.execute()]
