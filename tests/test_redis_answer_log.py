"""The console's live answer log in Redis (issue 15): with several workers the dashboard shows the answers
of every worker. Two ``RedisAnswerLog`` objects with their own clients stand for two workers: answers
recorded by both read back newest first from either, the cap per room, review flags, and what the
dashboard builds from the log (hot questions). Runs against a real redis-server
(``LIVEROOM_TEST_REDIS_URL``, scripts/start_redis.sh); skipped without one."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from agent.bus import AnsweredEvent
from agent.messages import AgentAnswer, Citation, ViewerMessage
from console.answer_log_redis import RedisAnswerLog
from console.live import AnswerLog, hot_questions
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


def workers(n: int, prefix: str, **kw) -> list[RedisAnswerLog]:
    return [RedisAnswerLog(connect(URL or ""), prefix=prefix, **kw) for _ in range(n)]


def answer(text: str, sku: str = "SK-001", intent: str = "price", refused: bool = False) -> AgentAnswer:
    return AgentAnswer(
        answer=text, citations=[Citation(fact_id=f"{sku}:price", sku=sku)], intent=intent, refused=refused
    )


def test_the_dashboard_shows_answers_recorded_by_every_worker(prefix):
    a, b = workers(2, prefix)
    local = AnswerLog()
    for i in range(6):
        log = (a, b)[i % 2]
        item = log.record("demo", "r1", f"v{i}", f"q{i}", answer(f"a{i}"), channel=("ws", "voice")[i % 2])
        local.record("demo", "r1", f"v{i}", f"q{i}", answer(f"a{i}"), channel=("ws", "voice")[i % 2])
        assert item.question == f"q{i}" and item.answer_id
    for log in (a, b):
        got = log.recent("demo", "r1", limit=4)
        assert [x.question for x in got] == ["q5", "q4", "q3", "q2"]  # newest first, whichever worker
        assert [x.channel for x in got] == ["voice", "ws", "voice", "ws"]
        assert got[0].citations == [{"fact_id": "SK-001:price", "sku": "SK-001"}] and got[0].intent == "price"
    assert [x.view() | {"answer_id": "", "at": 0} for x in a.recent("demo", "r1")] == [
        x.view() | {"answer_id": "", "at": 0} for x in local.recent("demo", "r1")
    ]  # the same entries as the in-process log
    assert a.recent("demo", "r2") == [] and a.recent("other", "r1") == []  # per (merchant, room)
    cut = a.recent("demo", "r1")[1].at
    assert {x.question for x in b.recent("demo", "r1", since=cut)} >= {"q5", "q4"}


def test_answers_reach_the_log_through_the_answer_bus_event(prefix):
    a, b = workers(2, prefix)
    msg = ViewerMessage(merchant="demo", room_id="r1", viewer_id="v1", text="小蓝瓶多少钱", channel="sim")
    a.on_answer(AnsweredEvent.of(msg, answer("129元")))
    (got,) = b.recent("demo", "r1")
    assert (got.question, got.answer, got.channel, got.viewer_id) == ("小蓝瓶多少钱", "129元", "sim", "v1")


def test_each_room_keeps_its_last_answers_only(prefix):
    (log,) = workers(1, prefix, per_room=20, room_ttl_s=60)
    for i in range(150):
        log.record("demo", "r1", "v", f"q{i}", answer(f"a{i}"))
    got = log.recent("demo", "r1", limit=1000)
    assert len(got) == 20 and got[0].question == "q149" and got[-1].question == "q130"
    r = connect(URL or "")
    k = f"{prefix}:answers:demo|r1"
    assert r.xlen(k) < 150 and 0 < r.ttl(k) <= 60  # trimmed as it grows (MAXLEN ~), and it expires


def test_a_flag_filed_on_one_worker_shows_on_the_others(prefix):
    a, b = workers(2, prefix)
    item = a.record("demo", "r1", "v1", "能开发票吗", answer("可以", intent="policy"))
    assert b.get("demo", "r1", item.answer_id).question == "能开发票吗"
    assert b.get("demo", "r1", "nope") is None and not b.flag("demo", "r1", "nope")
    assert b.flag("demo", "r1", item.answer_id)
    assert a.recent("demo", "r1")[0].flagged and a.get("demo", "r1", item.answer_id).view()["flagged"]


def test_hot_questions_cluster_every_workers_questions(prefix):
    a, b = workers(2, prefix)
    for i in range(3):
        a.record("demo", "r1", f"a{i}", "小蓝瓶多少钱", answer("129元"))
        b.record("demo", "r1", f"b{i}", "小蓝瓶多少", answer("129元"))
    b.record("demo", "r1", "b9", "发什么快递", answer("顺丰", sku="", intent="policy"))
    hot = hot_questions(a.recent("demo", "r1", limit=300), None, now=time.time())
    top = hot[0]
    assert (top["intent"], top["sku"], top["count"], top["viewers"]) == ("price", "SK-001", 6, 6)
