"""The whole-answer cache (agent/answer_cache.py): a repeated question is replayed, never an answer that
depends on the viewer, and a replay is an answer like any other (rate limit, memory, the answer bus)."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from agent.answer_cache import HIT_FLAG
from agent.guardrails import RateLimiter
from agent.messages import ViewerMessage
from core.settings import Settings
from liveroom.container import Container
from tests.conftest import mini_products, write_json


def ask(c: Container, text: str, viewer: str, **kw):
    msg = ViewerMessage(merchant=kw.pop("merchant", "demo"), viewer_id=viewer, text=text, **kw)
    return asyncio.run(c.agent.answer(msg))


def memory_of(c: Container, viewer: str, merchant: str = "demo") -> tuple:
    st = c.agent.memory.get(merchant, "default", viewer)
    return (list(st.focus), st.last_intent, st.last_attributes, st.lang, [(t.role, t.text) for t in st.turns])


@pytest.fixture()
def shop(tmp_path, use_embedder, demo_root):
    """A container on a copy of the demo KB (coupons, styles and new versions write to it)."""
    shutil.copytree(demo_root / "kb", tmp_path / "kb")
    c = Container(Settings(data_dir=tmp_path, llm_autostart=False))
    c.__dict__["embedder"] = use_embedder
    yield c
    asyncio.run(c.aclose())


def test_identical_question_is_replayed_to_another_viewer(demo_container):
    first = ask(demo_container, "小蓝瓶多少钱", "a")
    again = ask(demo_container, "小蓝瓶多少钱", "b")
    assert HIT_FLAG not in first.flags and HIT_FLAG in again.flags
    assert again.answer == first.answer and again.citations == first.citations
    assert again.kb_version == first.kb_version and again.intent == first.intent == "price"
    assert again.latency_ms > 0 and again.first_token_ms is not None
    assert demo_container.agent.answer_cache.hits == 1


def test_a_replay_updates_the_viewers_memory_like_a_miss(demo_container):
    ask(demo_container, "碎花裙短款多少钱", "a")
    hit = ask(demo_container, "碎花裙短款多少钱", "b")
    assert HIT_FLAG in hit.flags
    assert memory_of(demo_container, "b") == memory_of(demo_container, "a")
    # so the replayed viewer's follow-up resolves against the product the replay was about
    follow = ask(demo_container, "那长款呢", "b")
    assert HIT_FLAG not in follow.flags and "179" in follow.answer and follow.citations[0].sku == "AP-002"


def test_a_follow_up_is_never_stored(demo_container):
    cache = demo_container.agent.answer_cache
    ask(demo_container, "碎花裙短款多少钱", "f1")
    n = len(cache)
    ask(demo_container, "那长款呢", "f1")
    assert len(cache) == n
    ask(demo_container, "碎花裙短款多少钱", "f2")  # same memory as f1 had: the follow-up is still composed
    follow = ask(demo_container, "那长款呢", "f2")
    assert HIT_FLAG not in follow.flags and follow.citations[0].sku == "AP-002"


def test_coupon_and_profile_answers_are_never_replayed(shop):
    shop.audience.upsert_viewers("demo", [{"viewer_id": v, "member": True} for v in ("fan1", "fan2", "fan3")])
    shop.audience.create_campaign(
        "demo",
        {
            "campaign_id": "M10",
            "title": "会员10元券",
            "kind": "amount",
            "amount": 10,
            "threshold": 99,
            "budget_count": 5,
        },
    )
    answers = [ask(shop, "给我发张券吧", v, verified=True) for v in ("fan1", "fan2", "fan3")]
    for a in answers:
        assert HIT_FLAG not in a.flags and any(t.name == "issue_coupon" for t in a.tool_calls)
    assert {next(t for t in a.tool_calls if t.name == "issue_coupon").result["coupon_id"] for a in answers} != {None}
    profiles = [ask(shop, "我是什么会员等级", v, verified=True) for v in ("fan1", "fan2")]
    assert all(HIT_FLAG not in a.flags and any(t.name == "lookup_profile" for t in a.tool_calls) for a in profiles)
    assert len(shop.agent.answer_cache) == 0


def test_a_new_kb_version_is_a_miss(tmp_path, use_embedder):
    c = Container(Settings(data_dir=tmp_path, llm_autostart=False))
    c.__dict__["embedder"] = use_embedder
    c.kb.import_files("t", [write_json(tmp_path / "p.json", mini_products(price=129.0))])
    assert "129" in ask(c, "小蓝瓶多少钱", "a", merchant="t").answer
    assert HIT_FLAG in ask(c, "小蓝瓶多少钱", "b", merchant="t").flags
    c.kb.import_files("t", [write_json(tmp_path / "p.json", mini_products(price=99.0))])
    fresh = ask(c, "小蓝瓶多少钱", "c", merchant="t")
    assert HIT_FLAG not in fresh.flags and "99" in fresh.answer and "129" not in fresh.answer
    asyncio.run(c.aclose())


def test_the_rate_limit_applies_to_replays(demo_container):
    agent = demo_container.agent
    agent.limiter = RateLimiter(rate=1, per=60.0, burst=1)
    ask(demo_container, "满多少包邮", "a")
    assert HIT_FLAG in ask(demo_container, "满多少包邮", "b").flags
    limited = ask(demo_container, "满多少包邮", "b")
    assert limited.intent == "rate_limited" and HIT_FLAG not in limited.flags


def test_replays_are_published_and_styled_once(shop):
    shop.styles.publish("demo", {"sign_off": "喜欢就下单吧"}, "test")
    seen = []
    shop.answer_bus.subscribe(seen.append)
    a = ask(shop, "满多少包邮", "a")
    b = ask(shop, "满多少包邮", "b")
    assert HIT_FLAG in b.flags and a.answer == b.answer and b.answer.count("喜欢就下单吧") == 1
    assert [(e.viewer_id, e.answer) for e in seen] == [("a", a.answer), ("b", b.answer)]
    assert HIT_FLAG in seen[1].flags


def test_a_claims_publish_is_a_new_key(shop):
    ask(shop, "满多少包邮", "a")
    overrides = shop.settings.data_dir / "compliance"
    overrides.mkdir(parents=True, exist_ok=True)
    (overrides / "demo.json").write_text('{"brands": ["隔壁牌"]}', encoding="utf-8")
    assert HIT_FLAG not in ask(shop, "满多少包邮", "b").flags


def test_a_burst_of_the_same_question_is_composed_once(demo_container):
    # a miss is composed without giving the event loop away (the server loads the lexicon at start-up),
    # so the burst's first question is stored before the second is looked up
    agent = demo_container.agent
    agent.prepare_sync("demo")

    async def burst():
        msgs = [ViewerMessage(merchant="demo", viewer_id=f"burst-{i}", text="羽绒服含绒量多少") for i in range(6)]
        return await asyncio.gather(*(agent.answer(m) for m in msgs))

    answers = asyncio.run(burst())
    assert len({a.answer for a in answers}) == 1 and sum(HIT_FLAG in a.flags for a in answers) == 5
    assert agent.answer_cache.stores == 1


def test_the_remembered_language_does_not_split_a_chinese_question(demo_container):
    ask(demo_container, "what's the price of the sea salt almonds?", "en1")
    ask(demo_container, "海盐巴旦木多少钱", "zh1")
    assert memory_of(demo_container, "en1")[:2] == memory_of(demo_container, "zh1")[:2]  # same focus and intent
    first = ask(demo_container, "满多少包邮", "en1")
    again = ask(demo_container, "满多少包邮", "zh1")
    assert HIT_FLAG in again.flags and again.answer == first.answer and again.lang == "zh"
    assert memory_of(demo_container, "en1")[3] == memory_of(demo_container, "zh1")[3] == "zh"


def test_a_store_policy_is_shared_whatever_the_second_product_in_focus(demo_container):
    for viewer, first in (("p1", "小蓝瓶多少钱"), ("p2", "面霜油皮能用吗")):
        ask(demo_container, first, viewer)
        ask(demo_container, "碎花裙短款多少钱", viewer)
    assert memory_of(demo_container, "p1")[0][0] == memory_of(demo_container, "p2")[0][0]
    assert memory_of(demo_container, "p1")[0][1] != memory_of(demo_container, "p2")[0][1]
    composed = ask(demo_container, "满多少包邮", "p1")
    replayed = ask(demo_container, "满多少包邮", "p2")
    assert HIT_FLAG not in composed.flags and HIT_FLAG in replayed.flags and replayed.answer == composed.answer


def test_a_burst_of_one_question_on_a_cold_cache_is_composed_once(shop):
    """Single flight: twins asking while the first asker's answer is being composed wait and replay it."""
    agent = shop.agent
    composed = []
    afresh = agent._answer_afresh

    async def counting(*a, **kw):
        composed.append(1)
        await asyncio.sleep(0.05)  # as a miss waits on the query encoder: the twins arrive meanwhile
        async for ev in afresh(*a, **kw):
            yield ev

    agent._answer_afresh = counting

    async def burst():
        msgs = [ViewerMessage(merchant="demo", viewer_id=f"v{i}", text="满多少包邮") for i in range(12)]
        return await asyncio.gather(*(agent.answer(m) for m in msgs))

    got = asyncio.run(burst())
    assert len(composed) == 1 and agent.answer_cache.twins == 11
    assert sum(HIT_FLAG in a.flags for a in got) == 11 and len({a.answer for a in got}) == 1
    # a question that is never stored lands its flight too: the next asker composes at once, no wait
    before = len(composed)
    ask(shop, "那大号呢", "w1")
    ask(shop, "那大号呢", "w2")
    assert len(composed) == before + 2
