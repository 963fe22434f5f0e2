"""Batch campaigns (grouping, resumption, segments, A/B arms) and push timing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from copywriting import timing
from copywriting.ab import Experiments
from copywriting.batch import CampaignRunner, CampaignSpec
from copywriting.generator import CopyWriter
from copywriting.schema import Show
from copywriting.store import CopyStore
from tests.support.audience import backends, store_url, temp_engine

CST = timezone(timedelta(hours=8))
SHOW = {
    "show_id": "s1",
    "start": "2030-01-01T20:00:00+08:00",
    "end": "2030-01-01T22:30:00+08:00",
    "segments": [
        {"sku": "SK-001", "start": "2030-01-01T20:10:00+08:00"},
        {"sku": "MU-001", "start": "2030-01-01T20:40:00+08:00"},
        {"sku": "AP-001", "start": "2030-01-01T21:10:00+08:00"},
    ],
}
MORNING = datetime(2030, 1, 1, 9, 0, tzinfo=CST)


@pytest.fixture(scope="module", params=backends())
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def audience(backend, tmp_path_factory):
    from audience.service import AudienceService
    from sim.audience import seed_demo

    with store_url(backend, tmp_path_factory.mktemp("aud"), "a.db") as url:
        svc = AudienceService(url, synchronous="OFF")
        seed_demo(svc, viewers=400, seed=11)
        yield svc
        svc.close()


@pytest.fixture()
def copy_store(backend, tmp_path):
    """Each test's campaigns in a database of their own (the audience above is shared by the module)."""
    with temp_engine(backend, tmp_path, "copy.db") as engine:
        yield CopyStore(engine)


@pytest.fixture(scope="module")
def catalog():
    from evals.copy import demo_catalog

    return demo_catalog()


class CountingLLM:
    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    async def capabilities(self):
        from agent.llm import Capabilities

        return Capabilities(native_tools=False, json_schema="llama")

    async def json(self, messages, schema, max_tokens=120, name="output"):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("crash in the middle of a campaign")
        return {"body": "比日常价省钱，开播记得来看看。"}


def runner(audience, catalog, store: CopyStore):
    w = CopyWriter(lambda m: catalog, profiles=audience, ledger=audience, audience=audience)
    ex = Experiments(store, audience.engine)
    return CampaignRunner(w, store, ex, audience), store, ex


def test_per_viewer_campaign_groups_similar_viewers(audience, catalog, copy_store):
    r, store, _ = runner(audience, catalog, copy_store)
    llm = CountingLLM()
    spec = CampaignSpec(campaign_id="c1", show=SHOW, phase="pre", channel="push")
    stats = asyncio.run(r.run(spec, now=MORNING, llm=llm))
    assert stats["viewers"] == 400 and stats["copies"] == 400
    # similar viewers share a variant: one model draft per group (plus a retry when a draft fails a check)
    assert stats["groups"] < 60 and stats["llm_calls"] == llm.calls
    assert stats["groups"] <= llm.calls <= 2 * stats["groups"]
    groups = store.groups("demo", "c1")
    assert sum(g["viewers"] for g in groups) == 400
    assert {g["angle"] for g in groups} >= {"general", "price", "member"}
    for g in groups:
        p = g["piece"]
        assert p["compliance"]["ok"] and p["citations"] and len(p["title"]) <= 20 and len(p["body"]) <= 50
    res = store.results("demo", "c1", 0, 1000)
    assert len(res) == 400 and all(x["send_at"] for x in res if "quiet" not in x["send_reason"])
    # every pre-show push goes out before its product's segment, outside quiet hours
    pol = timing.TimingPolicy()
    seg = {s["sku"]: datetime.fromisoformat(s["start"]).timestamp() for s in SHOW["segments"]}
    for x in res:
        assert x["send_at"] < seg[x["sku"]]
        assert not pol.quiet(datetime.fromtimestamp(x["send_at"], CST))
    assert store.get_campaign("demo", "c1")["status"] == "done"


def test_interrupted_campaign_resumes_where_it_stopped(audience, catalog, copy_store):
    r, store, _ = runner(audience, catalog, copy_store)
    spec = CampaignSpec(campaign_id="c2", show=SHOW, phase="post", channel="sms")
    with pytest.raises(RuntimeError):
        asyncio.run(r.run(spec, now=MORNING, llm=CountingLLM(fail_after=3)))
    assert store.get_campaign("demo", "c2")["status"] == "failed"
    partial = store.count_deliveries("demo", "c2")
    assert 0 < partial < 400
    llm = CountingLLM()
    stats = asyncio.run(r.run(spec, now=MORNING, llm=llm))
    assert stats["resumed_skipped"] == partial and stats["copies"] == 400 - partial
    assert store.count_deliveries("demo", "c2") == 400 and store.get_campaign("demo", "c2")["status"] == "done"
    assert llm.calls <= 2 * stats["groups"]  # only the viewers not yet delivered were grouped again
    assert store.groups("demo", "c2")[0]["piece"]["text"].startswith("【")  # SMS signature


def test_segment_campaign_one_copy_per_segment(audience, catalog, copy_store):
    r, store, _ = runner(audience, catalog, copy_store)
    spec = CampaignSpec(
        campaign_id="c3",
        skus=["SK-002"],
        phase="live",
        channel="popup",
        per_viewer=False,
        use_llm=False,
        segments=[{"name": "fans", "tier": "铁粉"}, {"name": "thrifty", "price_sensitivity": "high"}],
    )
    stats = asyncio.run(r.run(spec, now=MORNING))
    groups = {g["segment"]: g for g in store.groups("demo", "c3")}
    assert set(groups) <= {"fans", "thrifty"} and stats["groups"] == len(groups)
    if "fans" in groups:
        assert groups["fans"]["angle"] == "member"
    if "thrifty" in groups:
        assert groups["thrifty"]["angle"] == "price"
    assert stats["copies"] + stats["skipped_no_segment"] == 400
    assert all(len(g["piece"]["text"]) <= 30 for g in groups.values())


def test_campaign_with_experiment_arms(audience, catalog, copy_store):
    r, store, ex = runner(audience, catalog, copy_store)
    ex.create(
        {
            "experiment_id": "e1",
            "variants": [
                {"name": "A"},
                {"name": "B", "angle": "price", "coupon": "none", "push": {"strategy": "fixed", "lead_minutes": 60}},
            ],
        }
    )
    spec = CampaignSpec(campaign_id="c4", show=SHOW, experiment_id="e1", use_llm=False)
    asyncio.run(r.run(spec, now=MORNING))
    groups = store.groups("demo", "c4")
    b = [g for g in groups if g["variant"] == "B"]
    assert b and all(g["angle"] == "price" and g["piece"]["coupon"] is None for g in b)
    res = store.results("demo", "c4", 0, 1000)
    fixed = datetime(2030, 1, 1, 19, 0, tzinfo=CST).timestamp()
    assert all(x["send_at"] == fixed for x in res if x["variant"] == "B")
    arms = ex.assign("demo", "e1", [x["viewer_id"] for x in res])
    assert all(arms[x["viewer_id"]] == x["variant"] for x in res)  # deliveries follow the sticky arms


def test_bad_campaign_specs_are_refused():
    with pytest.raises(ValueError):
        CampaignSpec(campaign_id="x")  # no products
    with pytest.raises(ValueError):
        CampaignSpec(campaign_id="bad id!", skus=["SK-001"])


# --- push timing -----------------------------------------------------------------------------------
def show(start="2030-01-01T20:00:00+08:00", segs=(("SK-001", "2030-01-01T21:00:00+08:00"),), end=None):
    return Show(start=start, end=end, segments=[{"sku": s, "start": t} for s, t in segs])


def at(p):
    return p.at.astimezone(CST).strftime("%H:%M") if p.at else None


def test_pre_show_goes_in_an_active_hour_before_the_products_segment():
    p = timing.plan("pre", "push", show(), "SK-001", [12, 20], now=MORNING)
    assert at(p) == "20:30" and "20:00" in p.reason  # target 20:30 falls in the 20:00 active hour
    p = timing.plan("pre", "push", show(), "SK-001", [12], now=MORNING)
    assert at(p) == "12:59"  # the latest active slot before the target
    p = timing.plan("pre", "push", show(), "OTHER", [19], now=MORNING)
    assert at(p) == "19:30"  # no segment for this product: 30 min before the show
    p = timing.plan("pre", "push", show(), "SK-001", None, now=MORNING)
    assert at(p) == "20:30" and "default" in p.reason


def test_quiet_hours_are_respected():
    late = show(start="2030-01-01T23:00:00+08:00", segs=(("SK-001", "2030-01-01T23:30:00+08:00"),))
    p = timing.plan("pre", "push", late, "SK-001", [23], now=MORNING)
    assert at(p) == "21:59"  # 23:00 is quiet: the last minute before quiet hours
    p = timing.plan("live", "push", late, "SK-001", [23], now=MORNING)
    assert p.at is None and "quiet" in p.reason
    p = timing.plan("live", "popup", late, "SK-001", [23], now=MORNING)
    assert at(p) == "23:30"  # in the room: no quiet hours
    p = timing.plan("post", "sms", late, "SK-001", [7, 21], now=MORNING)
    assert p.at.astimezone(CST).day == 2 and at(p) == "21:00"  # 7:00 is quiet; next active hour is 21:00
    p = timing.plan("post", "sms", late, "SK-001", None, now=MORNING)
    assert at(p) == "12:00"  # default hours
    pol = timing.TimingPolicy(quiet_start=0, quiet_end=0)
    assert not pol.quiet(MORNING)


def test_started_show_gets_no_pre_show_push():
    p = timing.plan("pre", "push", show(), "SK-001", [20], now=datetime(2030, 1, 1, 21, 5, tzinfo=CST))
    assert p.at is None
