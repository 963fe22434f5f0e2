"""Abuse limits for the public channels: sliding-window counters per key (client IP, room, viewer,
device) and the client address behind explicitly configured proxies only.

In-process (one set of windows per worker), bounded in memory.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping


class Windows:
    """``limit`` events per ``window_s`` seconds per key."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._q: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> float:
        """Count one event for ``key``: 0.0 if allowed, else the seconds until it would be (not counted)."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._q.get(key)
            if q is None:
                if len(self._q) >= self.max_keys:
                    self._q.clear()  # a flood of distinct keys: start over rather than grow
                q = self._q[key] = deque()
            while q and now - q[0] >= self.window_s:
                q.popleft()
            if len(q) >= self.limit:
                return max(1.0, self.window_s - (now - q[0]))
            q.append(now)
            return 0.0


class Distinct:
    """At most ``limit`` distinct values per key within ``window_s`` (e.g. verified viewers per device)."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, value: str, now: float | None = None) -> float:
        """0.0 if ``value`` is (or may become) one of ``key``'s values, else seconds until a slot frees."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                if len(self._seen) >= self.max_keys:
                    self._seen.clear()
                seen = self._seen[key] = {}
            for v, t in list(seen.items()):
                if now - t >= self.window_s:
                    del seen[v]
            if value in seen or len(seen) < self.limit:
                seen[value] = now
                return 0.0
            return max(1.0, self.window_s - (now - min(seen.values())))


class Gauge:
    """Concurrent things (open sockets) per key, at most ``limit`` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._n: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> bool:
        with self._lock:
            n = self._n.get(key, 0)
            if self.limit > 0 and n >= self.limit:
                return False
            self._n[key] = n + 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            n = self._n.get(key, 0) - 1
            if n > 0:
                self._n[key] = n
            else:
                self._n.pop(key, None)


def _networks(trusted: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for t in trusted:
        t = t.strip()
        if t:
            out.append(ipaddress.ip_network(t, strict=False))
    return out


def client_ip(peer: str | None, headers: Mapping[str, str], trusted_proxies: Iterable[str] = ()) -> str:
    """The client's address: the socket peer, unless the peer is a configured trusted proxy — then
    the right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy. With no trusted proxies
    configured, ``X-Forwarded-For`` is ignored (any client can send it)."""
    peer = peer or ""
    nets = _networks(trusted_proxies)
    if not nets:
        return peer

    def trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in nets)

    if not trusted(peer):
        return peer
    hops = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer
