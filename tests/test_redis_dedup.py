"""Connector de-duplication across workers (issue 15): a platform retries a push it thinks was lost, and
the retry may land on another worker; it is dropped there, once. Two hubs with their own Redis clients
stand for two workers. Runs against a real redis-server (``LIVEROOM_TEST_REDIS_URL``,
scripts/start_redis.sh); skipped without one."""

from __future__ import annotations

import os
import time
import uuid

import pytest
import redis

from connectors.hub import ConnectorHub
from state.dedup import RedisDedup
from state.redis_client import connect
from tests.test_connectors import FakeAgent, cfg, ev

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


def test_a_message_is_first_once_across_workers(prefix):
    a, b = (RedisDedup(connect(URL or ""), prefix=prefix) for _ in range(2))
    assert a.first_many("c1", ["m1", "m2", "m1"], 60) == [True, True, False]  # a repeat within the batch too
    assert b.first_many("c1", ["m1", "m3"], 60) == [False, True]
    assert b.first_many("c2", ["m1"], 60) == [True]  # another connector's m1 is another message
    assert a.first_many("c1|m", ["1"], 60) == [True]  # ids cannot collide through '|'
    assert a.first_many("c1", [], 60) == []


def test_the_window_expires(prefix):
    a, b = (RedisDedup(connect(URL or ""), prefix=prefix) for _ in range(2))
    assert a.first_many("c1", ["m1"], 0.3) == [True]
    assert b.first_many("c1", ["m1"], 0.3) == [False]
    time.sleep(0.5)
    assert b.first_many("c1", ["m1"], 0.3) == [True]  # past the window it is a new message


async def test_a_retry_landing_on_another_worker_is_dropped(prefix):
    agents = [FakeAgent(), FakeAgent()]
    hubs = [ConnectorHub(a, shared_seen=RedisDedup(connect(URL or ""), prefix=prefix)) for a in agents]
    for h in hubs:
        h.register(cfg("c1", "r1"))
    assert hubs[0].submit("c1", [ev("m1", 1), ev("m2", 2)]) == {"accepted": 2, "duplicates": 0, "dropped": 0}
    # the platform retries the whole push on the other worker, with one new message
    assert hubs[1].submit("c1", [ev("m1", 1), ev("m2", 2), ev("m3", 3)]) == {
        "accepted": 1,
        "duplicates": 2,
        "dropped": 0,
    }
    assert hubs[0].submit("c1", [ev("m3", 3)])["duplicates"] == 1  # and back again
    for h in hubs:
        await h.drain(timeout=5)
    assert [m.text for m in agents[0].asked] == ["包邮吗", "包邮吗"] and len(agents[1].asked) == 1
    assert hubs[1].runtime("c1").health.snapshot()["duplicates"] == 2
    for h in hubs:
        await h.aclose()


async def test_without_redis_reachable_the_hub_deduplicates_locally():
    down = RedisDedup(redis.Redis(port=1, socket_connect_timeout=0.2, socket_timeout=0.2))
    hub = ConnectorHub(FakeAgent(), shared_seen=down)
    hub.register(cfg("c1", "r1"))
    assert hub.submit("c1", [ev("m1", 1)])["accepted"] == 1  # a Redis outage does not drop the comments
    assert hub.submit("c1", [ev("m1", 1)])["duplicates"] == 1
    await hub.drain(timeout=5)
    await hub.aclose()
