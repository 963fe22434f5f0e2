"""The live funnel (per room, per minute) and its alerts: entry surges with short stays, conversion
drops, unanswered question clusters, an empty room — each raised once per episode."""

from __future__ import annotations

import pytest

from host.alerts import AlertEngine, AlertRules
from host.clustering import ClusterConfig, Clusterer
from host.danmaku import DanmakuTriage
from host.frames import Danmaku, RoomEvent
from host.funnel import Funnel, FunnelStore, series

T0 = 1_750_000_040.0  # 20 s into a minute


def ev(kind: str, viewer: str, t: float, **kw) -> RoomEvent:
    return RoomEvent(kind, viewer, T0 + t, **kw)


def test_per_minute_funnel():
    f = Funnel()
    f.record(ev("enter", "a", 0))
    f.record(ev("enter", "b", 5))
    f.record(ev("watch", "a", 10, sku="SK-001", seconds=30))
    f.record(ev("watch", "b", 12, sku="SK-001", seconds=20))
    f.record(ev("product_click", "a", 15, sku="SK-001"))
    f.record(ev("add_to_cart", "a", 20, sku="SK-001"))
    f.record(ev("coupon_claim", "a", 21, campaign_id="C1"))
    f.record(ev("purchase", "a", 25, sku="SK-001", amount=129, coupon_used=True))
    f.record(ev("leave", "b", 30))  # stayed 25 s
    f.record(ev("enter", "c", 70))  # the next minute
    f.record_danmaku(T0 + 71, question=True)
    s = f.series(3, now=T0 + 75)
    assert [m.minute for m in s] == [T0 - 20 - 60, T0 - 20, T0 + 40]
    m = s[1]
    assert (m.entries, m.leaves, m.online, m.active_viewers) == (2, 1, 1, 2)
    assert (m.product_clicks, m.add_to_cart, m.orders, m.gmv) == (1, 1, 1, 129.0)
    assert (m.coupon_claims, m.coupon_uses) == (1, 1)
    assert m.avg_watch_s == 25.0 and m.avg_stay_s == 25.0 and m.short_stays == 1 and m.conversion == 0.5
    assert s[0].entries == 0 and s[2].entries == 1 and s[2].questions == 1 and s[2].online == 2
    t = f.totals()
    assert (t.entries, t.unique_viewers, t.orders, t.gmv, t.peak_online) == (3, 3, 1, 129.0, 2)


def test_store_keeps_rooms_apart_and_bounded():
    store = FunnelStore(keep_minutes=10)
    store.record("m", "r1", ev("enter", "a", 0))
    store.record("m", "r2", ev("enter", "a", 0))
    for i in range(30):
        store.record("m", "r1", ev("watch", "a", 60 * i, seconds=60))
    assert len(store.room("m", "r1")._b) == 10
    assert series(store, "m", "r2", 1)[0].entries == 1
    assert store.series("m", "nope", 5) == []


class Now:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def engine(clusters=None, **rules):
    now = Now(T0)
    f = Funnel()
    raised = []
    e = AlertEngine("demo", "r", f, clusters, raised.append, now, AlertRules(**rules))
    return e, f, now, raised


def test_entry_surge_with_short_stays():
    e, f, now, raised = engine()
    for m in range(10):  # a calm room: 5 entries a minute, people stay
        for i in range(5):
            f.record(ev("enter", f"v{m}-{i}", 60 * m + i))
    t = 600
    for i in range(60):  # then 60 entries in a minute, most gone within 10 s
        f.record(ev("enter", f"s{i}", t + i * 0.5))
        if i % 4:
            f.record(ev("leave", f"s{i}", t + i * 0.5 + 8))
    now.t = T0 + 650  # the surge minute has just closed
    out = e.evaluate()
    assert [a.kind for a in out] == ["entry_surge_short_stay"] and out[0].action == "hook"
    assert out[0].data["entries"] == 60 and out[0].data["short_stay_share"] == 1.0
    assert e.evaluate() == []  # once per episode (cooldown)


def test_conversion_drop_needs_a_real_baseline():
    e, f, now, raised = engine(window_min=5, baseline_min=20)
    for m in range(25):
        for i in range(20):
            f.record(ev("watch", f"v{i}", 60 * m + i, seconds=60))
        if m < 20:  # 2 orders a minute, then none
            f.record(ev("purchase", f"v{m % 20}", 60 * m + 30, amount=99))
            f.record(ev("purchase", f"v{(m + 1) % 20}", 60 * m + 31, amount=99))
    now.t = T0 + 25 * 60 + 1
    out = e.evaluate()
    assert [a.kind for a in out] == ["conversion_drop"] and out[0].action == "flash_coupon"
    assert out[0].data["rate"] == 0 and out[0].data["baseline"] == pytest.approx(0.1)

    e2, f2, now2, _ = engine(window_min=5, baseline_min=20)  # too few orders to tell: no alert
    for m in range(25):
        f2.record(ev("watch", "v", 60 * m, seconds=60))
    f2.record(ev("purchase", "v", 30, amount=99))
    now2.t = T0 + 25 * 60 + 1
    assert e2.evaluate() == []


def test_unanswered_hot_cluster_and_empty_room(use_embedder):
    now = Now(T0)
    cl = Clusterer(use_embedder.encode, ClusterConfig(min_viewers=3), clock=now, inline=True)
    e, f, _, raised = engine(clusters=cl, unanswered_after_s=30, empty_after_s=60)
    e.clock = now
    tri = DanmakuTriage()
    for i in range(4):
        cl.submit(tri.classify(Danmaku("demo", "r", f"v{i}", "敏感肌能用吗", T0, "SK-001")))
    assert [a.kind for a in e.evaluate()] == []
    now.t = T0 + 40
    out = e.evaluate()
    assert [a.kind for a in out] == ["question_unanswered"]
    assert out[0].data["viewers"] == 4 and out[0].data["label"] == "敏感肌适用性"
    now.t = T0 + 120
    assert [a.kind for a in e.evaluate()] == ["empty_room"]  # nobody ever entered
    assert [a.kind for a in raised] == ["question_unanswered", "empty_room"]
