"""Real-time profiles from events: tag drift, decay, tiers, idempotency, order independence, signals, rules."""

from __future__ import annotations

import random
import time

import pytest
from sqlalchemy import event as sa_event

from tests.support.audience import Clock, backends, temp_service

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z (23:06 in Shanghai)
PRODUCTS = [
    {"sku": "LS-1", "name": "丝绒雾面口红 #316", "category": "彩妆", "price": 129},
    {"sku": "ES-1", "name": "大地色四色眼影盘", "category": "彩妆", "price": 159},
    {"sku": "DR-1", "name": "法式碎花连衣裙", "category": "女装", "price": 199},
]


@pytest.fixture(params=backends())
def svc(request, tmp_path):
    with temp_service(request.param, tmp_path) as s:
        s.upsert_products("m1", PRODUCTS)
        yield s


@pytest.fixture()
def clocked(tmp_path):
    clock = Clock(T0)
    with temp_service("sqlite", tmp_path, clock=clock) as s:
        s.upsert_products("m1", PRODUCTS)
        yield s, clock


def watch(vid: str, sku: str, start: float, minutes: int, prefix: str, step: int = 30) -> list[dict]:
    return [
        {
            "event_id": f"{prefix}-{i}",
            "viewer_id": vid,
            "type": "watch",
            "sku": sku,
            "ts": start + step * i,
            "seconds": step,
        }
        for i in range(1, minutes * 60 // step + 1)
    ]


def top_tag(pv) -> str | None:
    return pv.interest_tags[0].tag if pv.interest_tags else None


def test_tag_drifts_from_lipstick_to_eyeshadow_within_a_second(svc):
    now = time.time()
    start = now - 600
    assert svc.ingest("m1", [{"event_id": "enter", "viewer_id": "v1", "type": "enter", "ts": start}]).accepted == 1
    lip = watch("v1", "LS-1", start, 5, "lip")
    eye = watch("v1", "ES-1", start + 300, 5, "eye")
    for ev in lip:
        svc.ingest("m1", [ev])
    pv = svc.lookup("m1", "v1")
    assert top_tag(pv) == "口红兴趣" and [t.tag for t in pv.interest_tags] == ["口红兴趣"]
    tops, lags = [], []
    for ev in eye:  # one heartbeat at a time, as a live room sends them
        t0 = time.perf_counter()
        svc.ingest("m1", [ev])
        tops.append(top_tag(svc.lookup("m1", "v1")))
        lags.append(time.perf_counter() - t0)
    assert tops[0] == "口红兴趣" and tops[-1] == "眼影兴趣"
    flip = tops.index("眼影兴趣")
    assert all(t == "眼影兴趣" for t in tops[flip:])  # moved once and stayed
    assert max(lags) < 1.0, lags  # the event is in the profile by the time the ingest call returns
    pv = svc.lookup("m1", "v1")
    w = {t.tag: t.weight for t in pv.interest_tags}
    assert w["眼影兴趣"] > w["口红兴趣"] > 0  # the older interest remains, weaker


def test_decay_fades_tags_and_tier(clocked):
    svc, clock = clocked
    svc.ingest("m1", [{"event_id": "e", "viewer_id": "v", "type": "enter", "ts": T0}] + watch("v", "LS-1", T0, 10, "w"))
    clock.now = T0 + 600
    pv = svc.lookup("m1", "v")
    w0 = pv.interest_tags[0].weight
    assert pv.tier == "围观" and pv.interest_tags[0].tag == "口红兴趣"
    clock.advance(600)  # one half-life (10 minutes) later, nothing new
    w1 = svc.lookup("m1", "v").interest_tags[0].weight
    assert w1 == pytest.approx(w0 / 2, rel=1e-3)
    clock.advance(3600)  # an hour more: below the display threshold
    assert svc.lookup("m1", "v").interest_tags == []
    assert svc.lookup("m1", "v").tier == "围观"
    clock.advance(90 * 86400)  # three engagement half-lives: the tier fades too
    assert svc.lookup("m1", "v").tier == "路过"


def test_tier_transitions(clocked):
    svc, clock = clocked
    svc.ingest("m1", [{"event_id": "a0", "viewer_id": "v", "type": "enter", "ts": T0}])
    assert svc.lookup("m1", "v").tier == "路过"
    svc.ingest("m1", watch("v", "DR-1", T0, 2, "a"))  # 2 min + enter: still passing by
    assert svc.lookup("m1", "v").tier == "路过"
    clock.now = T0 + 400
    assert svc.ingest("m1", watch("v", "DR-1", T0 + 120, 4, "b")).accepted == 8  # 6 min watched
    assert svc.lookup("m1", "v").tier == "围观"
    svc.ingest(
        "m1",
        [
            {
                "event_id": f"p{i}",
                "viewer_id": "v",
                "type": "purchase",
                "sku": "DR-1",
                "amount": 199,
                "ts": T0 + 400 + i,
            }
            for i in range(2)
        ],
    )
    assert svc.lookup("m1", "v").tier == "围观"  # 6.5 + 2×25 points < 60
    svc.ingest("m1", [{"event_id": f"c{i}", "viewer_id": "v", "type": "comment", "ts": T0 + 410 + i} for i in range(2)])
    assert svc.lookup("m1", "v").tier == "铁粉"  # ≥ 60 points

    # Lifetime orders make a fan regardless of recent engagement: imported history + purchase events.
    svc.upsert_viewers("m1", [{"viewer_id": "w", "orders": 2, "spent": 300}])
    svc.ingest("m1", [{"event_id": "w0", "viewer_id": "w", "type": "enter", "ts": T0}])
    assert svc.lookup("m1", "w").tier == "围观"  # 2 orders × 10 history points
    svc.ingest("m1", [{"event_id": "w1", "viewer_id": "w", "type": "purchase", "amount": 99, "ts": T0 + 5}])
    clock.advance(365 * 86400)
    assert svc.lookup("m1", "w").tier == "铁粉"


def test_events_are_idempotent_by_id(svc):
    now = time.time()
    batch = (
        [{"event_id": "x0", "viewer_id": "v", "type": "enter", "ts": now - 100}]
        + watch("v", "LS-1", now - 100, 1, "x")
        + [{"event_id": "x9", "viewer_id": "v", "type": "purchase", "sku": "LS-1", "amount": 129, "ts": now - 10}]
    )
    r1 = svc.ingest("m1", batch)
    assert (r1.accepted, r1.duplicates, r1.rejected) == (len(batch), 0, 0)
    before = svc.lookup("m1", "v")
    r2 = svc.ingest("m1", batch + [batch[1]])  # a replay, plus a duplicate inside the batch
    assert (r2.accepted, r2.duplicates) == (0, len(batch) + 1)
    assert {r.status for r in r2.results} == {"duplicate"}
    after = svc.lookup("m1", "v")
    assert after.interest_tags[0].weight == pytest.approx(before.interest_tags[0].weight, rel=1e-3)
    assert (after.tier, after.spending_power, after.active_hours) == (
        before.tier,
        before.spending_power,
        before.active_hours,
    )
    # The same event id under another merchant is another event.
    svc.upsert_products("m2", PRODUCTS)
    assert svc.ingest("m2", batch[:1]).accepted == 1


def test_out_of_order_events_give_the_same_profile(clocked):
    svc, clock = clocked
    evs = (
        watch("P", "LS-1", T0, 5, "a")
        + watch("P", "ES-1", T0 + 300, 3, "b")
        + [
            {"event_id": "c", "viewer_id": "P", "type": "add_to_cart", "sku": "ES-1", "ts": T0 + 200},
            {"event_id": "k1", "viewer_id": "P", "type": "product_click", "sku": "DR-1", "ts": T0 + 50},
            {"event_id": "k2", "viewer_id": "P", "type": "product_click", "sku": "DR-1", "ts": T0 + 250},
            {"event_id": "k3", "viewer_id": "P", "type": "product_click", "sku": "DR-1", "ts": T0 + 400},
            {"event_id": "p", "viewer_id": "P", "type": "purchase", "sku": "LS-1", "amount": 129, "ts": T0 + 100},
        ]
    )
    clock.now = T0 + 500
    svc.upsert_viewers("m1", [{"viewer_id": "A"}, {"viewer_id": "B"}])
    svc.ingest(
        "m1",
        [
            dict(e, event_id="in-" + e["event_id"], viewer_id="A")
            for e in [{"event_id": "0", "viewer_id": "A", "type": "enter", "ts": T0}] + evs
        ],
    )
    shuffled = [{"event_id": "0", "viewer_id": "B", "type": "enter", "ts": T0}] + evs[:]
    random.Random(5).shuffle(shuffled)
    for i in range(0, len(shuffled), 3):  # and in small batches, so later batches carry older events
        svc.ingest("m1", [dict(e, event_id="sh-" + e["event_id"], viewer_id="B") for e in shuffled[i : i + 3]])
    a, b = svc.lookup("m1", "A").model_dump(), svc.lookup("m1", "B").model_dump()
    a.pop("viewer_id"), b.pop("viewer_id")
    assert [t["tag"] for t in a["interest_tags"]] == [t["tag"] for t in b["interest_tags"]]
    for ta, tb in zip(a.pop("interest_tags"), b.pop("interest_tags")):
        assert ta["weight"] == pytest.approx(tb["weight"], abs=2e-3)
    assert a == b
    assert a["decision_signals"] == ["cart_not_paid:ES-1", "repeat_view:DR-1"]


def test_decision_signals_and_price_levels(svc):
    now = time.time()
    svc.ingest(
        "m1",
        [
            {"event_id": "e", "viewer_id": "v", "type": "enter", "ts": now - 60},
            {"event_id": "c1", "viewer_id": "v", "type": "add_to_cart", "sku": "LS-1", "ts": now - 50},
            {"event_id": "c2", "viewer_id": "v", "type": "add_to_cart", "sku": "DR-1", "ts": now - 40},
        ],
    )
    pv = svc.lookup("m1", "v")
    assert pv.products_in_focus == ["DR-1", "LS-1"]  # newest cart first
    assert pv.decision_signals == ["cart_not_paid:DR-1", "cart_not_paid:LS-1"]
    svc.ingest(
        "m1", [{"event_id": "p1", "viewer_id": "v", "type": "purchase", "sku": "DR-1", "amount": 199, "ts": now - 30}]
    )
    pv = svc.lookup("m1", "v")
    assert pv.decision_signals == ["cart_not_paid:LS-1"] and pv.products_in_focus == ["LS-1"]

    # Price sensitivity from coupon use; spending power from order values.
    svc.upsert_viewers(
        "m1",
        [
            {"viewer_id": "thrifty", "orders": 3, "spent": 150, "coupon_orders": 2},
            {"viewer_id": "lavish", "orders": 4, "spent": 2000, "coupon_orders": 0},
            {"viewer_id": "newbie"},
        ],
    )
    t = svc.lookup("m1", "thrifty")
    assert (t.price_sensitivity, t.spending_power) == ("high", "low")
    lv = svc.lookup("m1", "lavish")
    assert (lv.price_sensitivity, lv.spending_power) == ("low", "high")
    nb = svc.lookup("m1", "newbie")
    assert (nb.price_sensitivity, nb.spending_power, nb.tier) == ("medium", "medium", "路过")
    svc.ingest(
        "m1", [{"event_id": f"cc{i}", "viewer_id": "newbie", "type": "coupon_claim", "ts": now - i} for i in range(3)]
    )
    assert svc.lookup("m1", "newbie").price_sensitivity == "high"  # claims coupons, has not bought yet


def test_active_hours_in_merchant_timezone(clocked):
    svc, _ = clocked
    # 20:xx and 21:xx in Shanghai (UTC+8) on several days, one stray morning event.
    base = 1_749_988_800.0  # 2025-06-15T12:00:00Z = 20:00 Shanghai
    evs = [{"event_id": "e0", "viewer_id": "n", "type": "enter", "ts": base - 86400 * 3}]
    for d in range(3):
        day = base - 86400 * d
        evs += [{"event_id": f"l{d}{i}", "viewer_id": "n", "type": "like", "ts": day + 60 * i} for i in range(5)]
        evs += [{"event_id": f"m{d}{i}", "viewer_id": "n", "type": "like", "ts": day + 3600 + 60 * i} for i in range(4)]
    evs.append({"event_id": "am", "viewer_id": "n", "type": "like", "ts": base - 12 * 3600})  # 08:00
    svc.ingest("m1", evs)
    assert svc.lookup("m1", "n").active_hours == [20, 21]


def test_rules_are_per_merchant(clocked):
    svc, clock = clocked
    svc.upsert_products("fast", PRODUCTS)
    svc.set_rules(
        "fast", {"interest": {"half_life_minutes": 1, "tag_names": {"口红": "唇妆控"}}, "tier": {"browser_min": 1}}
    )
    for m in ("m1", "fast"):
        svc.ingest(
            m,
            [
                {"event_id": "e", "viewer_id": "v", "type": "enter", "ts": T0},
                {"event_id": "c", "viewer_id": "v", "type": "product_click", "sku": "LS-1", "ts": T0},
            ],
        )
    clock.now = T0 + 300
    slow, fast = svc.lookup("m1", "v"), svc.lookup("fast", "v")
    assert slow.interest_tags[0].tag == "口红兴趣" and slow.interest_tags[0].weight > 1
    assert fast.interest_tags == []  # five half-lives later under the merchant's 1-minute half-life
    assert (slow.tier, fast.tier) == ("路过", "围观")
    clock.now = T0
    assert svc.lookup("fast", "v").interest_tags[0].tag == "唇妆控"
    with pytest.raises(ValueError):
        svc.set_rules("fast", {"interest": {"half_life_minutes": -1}})
    with pytest.raises(ValueError):
        svc.set_rules("fast", {"tier": {"points": {"dance": 3}}})
    assert svc.rule_overrides("fast")["interest"]["half_life_minutes"] == 1  # a bad update changes nothing


def test_lookup_is_privacy_filtered(svc):
    pii = {"real_name": "张三丰", "phone": "13912345678", "address": "杭州市西湖区文三路1号"}
    svc.upsert_viewers("m1", [{"viewer_id": "vip", "member": True, "orders": 5, "spent": 900, **pii}])
    now = time.time()
    svc.ingest(
        "m1",
        [
            {"event_id": "e", "viewer_id": "vip", "type": "enter", "ts": now - 5},
            {"event_id": "c", "viewer_id": "vip", "type": "comment", "text": "我的电话13912345678", "ts": now - 4},
            {"event_id": "a", "viewer_id": "vip", "type": "add_to_cart", "sku": "LS-1", "ts": now - 3},
        ],
    )
    svc.create_campaign(
        "m1",
        {"campaign_id": "C", "title": "满100减10", "kind": "amount", "amount": 10, "threshold": 100, "budget_count": 5},
    )
    statements: list[str] = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa_event.listen(svc.engine, "before_cursor_execute", spy)
    try:
        pv = svc.lookup("m1", "vip")
        offers = svc.eligible_offers("m1", "vip")
        res = svc.issue("m1", "vip", "C", "k")
    finally:
        sa_event.remove(svc.engine, "before_cursor_execute", spy)
    assert set(pv.model_dump()) == {
        "viewer_id",
        "tier",
        "interest_tags",
        "price_sensitivity",
        "spending_power",
        "member",
        "products_in_focus",
        "decision_signals",
        "active_hours",
    }
    blob = pv.model_dump_json() + "".join(o.model_dump_json() for o in offers) + res.model_dump_json()
    for value in pii.values():
        assert value not in blob
    assert "13912345678" not in blob  # not even from a comment's text (which is never stored)
    assert pv.member and pv.tier == "铁粉" and pv.products_in_focus == ["LS-1"]
    assert statements and not any("aud_viewer_pii" in s for s in statements)  # never even read
