"""Conversation memory in Redis (issue 15): with several workers a viewer's follow-up ("那大号呢") may reach
another worker than their question, so every worker reads and writes one memory. Two ``RedisMemory``
objects with their own clients stand for two workers; the same rules as the in-process ``Memory`` (caps,
language, focus order), its TTL, atomic writes from concurrent workers, and the follow-up answered by a
second container. Runs against a real redis-server (``LIVEROOM_TEST_REDIS_URL``, scripts/start_redis.sh);
skipped without one."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import pytest

from agent.memory import Memory, ViewerState
from agent.memory_redis import RedisMemory
from agent.messages import ViewerMessage
from console.answer_log_redis import RedisAnswerLog
from console.live import AnswerLog
from core.settings import Settings
from liveroom.container import Container
from state.dedup import RedisDedup
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


def workers(n: int, prefix: str, **kw) -> list[RedisMemory]:
    """``n`` memories, each with its own client: as if in ``n`` processes."""
    return [RedisMemory(connect(URL or ""), prefix=prefix, **kw) for _ in range(n)]


def seen(st: ViewerState) -> tuple:
    return (
        [(t.role, t.text, t.interrupted) for t in st.turns],
        list(st.focus),
        st.last_intent,
        st.last_question,
        list(st.last_attributes),
        st.lang,
    )


def test_what_one_worker_remembers_another_reads(prefix):
    a, b = workers(2, prefix)
    a.remember("demo", "r1", "v1", said="小蓝瓶多少钱", answer="129元", skus=["SK-001"], intent="price", lang="zh")
    st = b.get("demo", "r1", "v1")
    assert seen(st) == ([("viewer", "小蓝瓶多少钱", False), ("agent", "129元", False)], ["SK-001"], "price",
                        "小蓝瓶多少钱", [], "zh")  # fmt: skip
    b.record("demo", "r1", "v1", "viewer", "那大号呢", ["GB-002"])
    b.record("demo", "r1", "v1", "agent", "大号329元")
    a.mark_interrupted("demo", "r1", "v1", "大号")  # barge-in on the other worker
    st = b.get("demo", "r1", "v1")
    assert st.focus == ["GB-002", "SK-001"] and (st.turns[-1].text, st.turns[-1].interrupted) == ("大号", True)
    assert seen(a.get("demo", "r1", "v2")) == ([], [], "", "", [], "")  # another viewer: nothing
    assert seen(a.get("demo", "r2", "v1")) == ([], [], "", "", [], "")  # the same viewer in another room
    assert seen(a.get("demo|r1", "v1", "")) == ([], [], "", "", [], "")  # ids cannot collide through '|'


def test_the_same_rules_as_the_in_process_memory(prefix):
    (shared,) = workers(1, prefix, max_turns=4, max_focus=2)
    local = Memory(max_turns=4, max_focus=2)
    steps = [
        dict(said="how much is the sunscreen?", answer="99", skus=["SK-007"], intent="price", lang="en",
             lang_decisive=True, attributes=["price"]),
        # a message that does not decide the language keeps English, and no attributes keeps the last ones
        dict(said="SK-001?", answer="129", skus=["SK-001", "SK-007", "SK-001"], intent="price", lang="zh",
             lang_decisive=False, attributes=None),
        dict(said="防水吗" + "长" * 400, answer="防水" * 200, skus=["SK-009"], intent="detail", lang="zh",
             lang_decisive=True, attributes=["waterproof"]),
    ]  # fmt: skip
    for kw in steps:
        for m in (shared, local):
            m.remember("demo", "r1", "v1", **kw)
    for m in (shared, local):
        m.record("demo", "r1", "v1", "agent", "补涂", interrupted=False)
        m.mark_interrupted("demo", "r1", "v1", "补")
    got, want = seen(shared.get("demo", "r1", "v1")), seen(local.get("demo", "r1", "v1"))
    assert got == want
    turns, focus, intent, _, attributes, lang = got
    assert len(turns) == 4 and len(turns[1][1]) == len(turns[2][1]) == 300 and focus == ["SK-009", "SK-001"]
    assert (intent, attributes, lang) == ("detail", ["waterproof"], "zh")
    local2 = Memory()
    for m in (shared, local2):  # a fresh viewer's first language is kept whatever decides it
        m.remember("demo", "r1", "v9", said="ok", answer="hi", intent="greeting", lang="en")
        m.remember("demo", "r1", "v9", said="K84", answer="319", intent="price", lang="zh")
    assert seen(shared.get("demo", "r1", "v9")) == seen(local2.get("demo", "r1", "v9"))
    assert shared.get("demo", "r1", "v9").lang == "en"


def test_a_viewers_memory_expires_after_ttl_unless_used(prefix):
    a, b = workers(2, prefix, ttl_s=0.6)
    a.remember("demo", "r1", "v1", said="小蓝瓶多少钱", answer="129元", skus=["SK-001"], intent="price", lang="zh")
    r = connect(URL or "")
    k = f"{prefix}:mem:demo|r1|v1"
    assert 0 < r.pttl(k) <= 600
    for _ in range(3):  # read by either worker in time, it lives on (as Memory.get refreshes it)
        time.sleep(0.35)
        assert b.get("demo", "r1", "v1").focus == ["SK-001"]
    time.sleep(0.8)
    assert seen(a.get("demo", "r1", "v1")) == ([], [], "", "", [], "") and not r.exists(k)


def test_concurrent_workers_lose_no_turn(prefix):
    mems = workers(4, prefix, max_turns=100)

    def talk(i: int, m: RedisMemory) -> None:
        for j in range(10):
            m.remember("demo", "r1", "v1", said=f"q{i}-{j}", answer=f"a{i}-{j}", skus=[f"S{i}"], intent="price")

    threads = [threading.Thread(target=talk, args=(i, m)) for i, m in enumerate(mems)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    turns = list(mems[0].get("demo", "r1", "v1").turns)
    assert len(turns) == 80  # every worker's every turn: no read-modify-write lost one
    said = [t.text for t in turns if t.role == "viewer"]
    for i in range(4):  # each worker's own turns in its order, each answer right after its question
        assert [s for s in said if s.startswith(f"q{i}-")] == [f"q{i}-{j}" for j in range(10)]
    assert all(turns[k + 1].text == "a" + turns[k].text[1:] for k in range(0, 80, 2))


def test_the_container_keeps_shared_state_in_redis_only_when_configured(tmp_path):
    shared = Container(Settings(data_dir=tmp_path, llm_autostart=False, redis_url=URL))
    assert isinstance(shared.memory, RedisMemory) and isinstance(shared.answer_log, RedisAnswerLog)
    assert isinstance(shared.connector_dedup, RedisDedup)
    alone = Container(Settings(data_dir=tmp_path, llm_autostart=False, redis_url=None))
    assert isinstance(alone.memory, Memory) and isinstance(alone.answer_log, AnswerLog)
    assert alone.connector_dedup is None


def test_a_follow_up_is_understood_by_the_other_worker(demo_root, use_embedder, prefix):
    """Two containers on one Redis (two workers): the question goes to one, "那大号呢" to the other."""
    w1, w2 = (Container(Settings(data_dir=demo_root, llm_autostart=False, redis_url=URL)) for _ in range(2))
    for c in (w1, w2):
        c.__dict__["embedder"] = use_embedder
        c.__dict__["memory"] = RedisMemory(c.shared_redis, prefix=prefix)  # this test's own keys

    def ask(c: Container, text: str, viewer: str):
        return asyncio.run(c.agent.answer(ViewerMessage(merchant="demo", room_id="r1", viewer_id=viewer, text=text)))

    first = ask(w1, "水光礼盒小号多少钱", "v1")
    assert "199" in first.answer
    follow = ask(w2, "那大号呢", "v1")
    assert "329" in follow.answer and "199" not in follow.answer, follow.answer
    assert "GB-002" in {c.sku for c in follow.citations}
    st = w1.memory.get("demo", "r1", "v1")  # and the first worker sees the second's turn
    assert [t.text for t in st.turns if t.role == "viewer"] == ["水光礼盒小号多少钱", "那大号呢"]
    assert st.focus[0] == "GB-002" and st.last_intent == "price"
    cold = ask(w2, "那大号呢", "v2")  # a viewer with nothing in memory gets no price of the gift box
    assert "329" not in cold.answer
    for c in (w1, w2):
        asyncio.run(c.aclose())


def test_with_redis_down_a_viewer_is_answered_without_memory():
    import redis

    down = RedisMemory(redis.Redis(port=1, socket_connect_timeout=0.2, socket_timeout=0.2))
    down.remember("demo", "r1", "v1", said="小蓝瓶多少钱", answer="129元", skus=["SK-001"], intent="price")
    down.record("demo", "r1", "v1", "viewer", "hi")
    assert seen(down.get("demo", "r1", "v1")) == ([], [], "", "", [], "")
