"""Rate and login limits in Redis, shared by workers: a viewer or a password guesser is counted once
however their requests spread over processes. Runs against a real redis-server
(``LIVEROOM_TEST_REDIS_URL``, started by scripts/start_redis.sh); skipped without one."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from state.limits import RedisLoginLimiter, RedisRateLimiter
from state.redis_client import connect

URL = os.environ.get("LIVEROOM_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(not URL, reason="LIVEROOM_TEST_REDIS_URL not set (scripts/start_redis.sh)")


@pytest.fixture()
def prefix():
    p = f"test-{uuid.uuid4().hex[:12]}"
    yield p
    r = connect(URL or "")
    keys = list(r.scan_iter(match=f"{p}:*"))
    if keys:
        r.delete(*keys)


def _workers(n, make):
    """``n`` limiters, each with its own client: as if in ``n`` processes."""
    return [make(connect(URL or "")) for _ in range(n)]


def test_a_viewers_bucket_is_shared_by_workers(prefix):
    a, b = _workers(2, lambda r: RedisRateLimiter(r, rate=1, per=3600, burst=3, prefix=prefix))
    key = ("demo", "viewer-1")
    assert [a.allow(key), b.allow(key), a.allow(key)] == [True, True, True]
    assert not b.allow(key) and not a.allow(key)  # the burst is spent, wherever the next message lands
    assert a.allow(("demo", "viewer-2"))  # other viewers have their own bucket
    assert b.allow(("demo|viewer", "1")) and b.allow(("demo", "viewer|1"))  # keys cannot collide by '|'


def test_concurrent_messages_spend_the_bucket_exactly_once(prefix):
    limiters = _workers(4, lambda r: RedisRateLimiter(r, rate=1, per=3600, burst=10, prefix=prefix))
    allowed: list[bool] = []
    lock = threading.Lock()

    def send(lim):
        for _ in range(10):
            ok = lim.allow(("demo", "burst"))
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=send, args=(lim,)) for lim in limiters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 10 and len(allowed) == 40


def test_the_bucket_refills_at_the_rate(prefix):
    (lim,) = _workers(1, lambda r: RedisRateLimiter(r, rate=1000, per=1, burst=1, prefix=prefix))
    key = ("demo", "refill")
    assert lim.allow(key)
    # 1000 tokens a second: the next one is back within a few ms; poll on the outcome, not a duration
    assert any(lim.allow(key) for _ in range(10_000))


def test_login_failures_count_across_workers(prefix):
    a, b = _workers(2, lambda r: RedisLoginLimiter(r, per_ip=100, per_user=3, prefix=prefix))
    for lim in (a, b, a):
        assert lim.check("10.0.0.1", "Alice") == 0
        lim.failed("alice", "10.0.0.1")
    assert b.check("10.0.0.1", "alice") > 0  # locked for that user from that address, on every worker
    assert a.check("10.0.0.2", "alice") == 0  # another address is not locked out by this one's failures
    b.succeeded("alice", "10.0.0.1")
    assert a.check("10.0.0.1", "alice") == 0


def test_login_attempts_per_ip_across_workers_and_succeeded_everywhere(prefix):
    a, b = _workers(2, lambda r: RedisLoginLimiter(r, per_ip=3, ip_window_s=300, per_user=2, prefix=prefix))
    assert [a.check("10.1.1.1", "u1"), b.check("10.1.1.1", "u2"), a.check("10.1.1.1", "u3")] == [0, 0, 0]
    wait = b.check("10.1.1.1", "u4")
    assert 1 <= wait <= 300
    for ip in ("10.2.0.1", "10.2.0.2"):
        a.failed("bob*", ip)
        b.failed("bob*", ip)
    a.failed("bobby", "10.2.0.1")
    a.failed("bobby", "10.2.0.1")
    assert a.check("10.2.0.1", "bob*") > 0 and a.check("10.2.0.2", "bob*") > 0
    b.succeeded("bob*")  # every address's failures of that user, and only that user's
    assert a.check("10.2.0.1", "bob*") == 0 and a.check("10.2.0.2", "bob*") == 0
    assert a.check("10.2.0.1", "bobby") > 0
