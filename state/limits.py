"""Rate limits shared by every worker: the same ``allow`` / ``check`` / ``failed`` / ``succeeded`` as the
in-process ``agent.guardrails.RateLimiter`` and ``console.auth.LoginLimiter``, kept in Redis so that a viewer
or a password guesser is counted once however requests spread over workers. Each decision is one atomic
Lua script (no read-modify-write race between workers); clocks are Redis's own (``TIME``), so workers'
clocks need not agree."""

from __future__ import annotations

import re
import uuid

import redis

# Token bucket: KEYS[1] a hash {tokens, ts}; ARGV = rate per second, burst, ttl seconds.
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, burst, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(v[1]), tonumber(v[2])
if tokens == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + (now - ts) * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], ttl)
return ok
"""

# Login attempt: KEYS = ip zset, (user, ip) failures zset; ARGV = per_ip, ip_window, per_user, user_window,
# member. Returns seconds to wait (0 = go ahead; the attempt is then counted against the IP).
_LOGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local per_ip, ip_w, per_user, user_w = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - user_w)
if redis.call('ZCARD', KEYS[2]) >= per_user then
  local first = tonumber(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2])
  return tostring(math.max(1, user_w - (now - first)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ip_w)
if redis.call('ZCARD', KEYS[1]) >= per_ip then
  local first = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  return tostring(math.max(1, ip_w - (now - first)))
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('EXPIRE', KEYS[1], math.ceil(ip_w))
return '0'
"""

_FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return 1
"""


def _part(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|")


class RedisRateLimiter:
    """Token bucket per key: ``rate`` messages per ``per`` seconds, bursts up to ``burst``."""

    def __init__(self, client: redis.Redis, rate: float = 5, per: float = 10.0, burst: int = 5, prefix: str = "lr"):
        self.rate, self.per, self.burst = rate, per, burst
        self._r = client
        self._prefix = f"{prefix}:rate:"
        self._script = client.register_script(_BUCKET)
        # a bucket untouched this long has refilled: Redis forgets it
        self._ttl = max(1, int(per * burst / max(rate, 1e-9)) + 1)

    def allow(self, key: tuple[str, ...]) -> bool:
        k = self._prefix + "|".join(map(_part, key))
        return bool(self._script(keys=[k], args=[self.rate / self.per, self.burst, self._ttl]))


class RedisLoginLimiter:
    """Sliding windows (sorted sets of attempt times): attempts per client IP, failures per (user, IP)."""

    def __init__(
        self,
        client: redis.Redis,
        per_ip: int = 20,
        ip_window_s: float = 300,
        per_user: int = 5,
        user_window_s: float = 900,
        prefix: str = "lr",
    ):
        self.per_ip, self.ip_window_s, self.per_user, self.user_window_s = per_ip, ip_window_s, per_user, user_window_s
        self._r = client
        self._p = f"{prefix}:login:"
        self._check = client.register_script(_LOGIN)
        self._failed = client.register_script(_FAILED)

    def _ip_key(self, ip: str) -> str:
        return f"{self._p}ip:{_part(ip)}"

    def _user_key(self, username: str, ip: str) -> str:
        return f"{self._p}user:{_part(username.lower())}|{_part(ip)}"

    def check(self, ip: str, username: str) -> float:
        """0 if this attempt may proceed, else seconds to wait. Counts the attempt against the IP."""
        wait = self._check(
            keys=[self._ip_key(ip), self._user_key(username, ip)],
            args=[self.per_ip, self.ip_window_s, self.per_user, self.user_window_s, uuid.uuid4().hex],
        )
        return float(wait)

    def failed(self, username: str, ip: str = "") -> None:
        self._failed(keys=[self._user_key(username, ip)], args=[uuid.uuid4().hex, self.user_window_s])

    def succeeded(self, username: str, ip: str | None = None) -> None:
        """A good login clears that address's failures (``ip=None``: every address's)."""
        if ip is not None:
            self._r.delete(self._user_key(username, ip))
            return
        literal = f"{self._p}user:{_part(username.lower())}|"
        keys = list(self._r.scan_iter(match=re.sub(r"([\\*?\[\]])", r"\\\1", literal) + "*", count=500))
        if keys:
            self._r.delete(*keys)
