"""A seeded synthetic audience for the demo merchant: viewers, a catalog, campaigns and one live session.

Everything is derived from `random.Random(seed)`, so the same seed gives the same viewers and event
ids; `seed_demo` records what it did and is a no-op the second time. All personal data here is
obviously fake (演示用户…, 1380000…) and exists only to show that it never reaches the agent.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path

DEMO_PRODUCTS: list[dict] = [
    {"sku": "LS-001", "name": "丝绒雾面口红 #316", "category": "口红", "price": 129},
    {"sku": "LS-002", "name": "水光唇釉 #02", "category": "口红", "price": 99},
    {"sku": "ES-001", "name": "大地色四色眼影盘", "category": "眼影", "price": 159},
    {"sku": "ES-002", "name": "珠光单色眼影", "category": "眼影", "price": 69},
    {"sku": "FD-001", "name": "轻薄持妆粉底液", "category": "粉底", "price": 199},
    {"sku": "SK-001", "name": "暖光 玻尿酸保湿精华液 30ml", "category": "精华", "price": 129},
    {"sku": "SK-002", "name": "暖光 玻尿酸保湿面霜 50g", "category": "面霜", "price": 159},
    {"sku": "SP-001", "name": "清透防晒乳 SPF50", "category": "防晒", "price": 89},
    {"sku": "AP-001", "name": "法式碎花连衣裙 短款", "category": "连衣裙", "price": 199},
    {"sku": "AP-002", "name": "软糯针织开衫", "category": "针织衫", "price": 169},
]

DEMO_CAMPAIGNS: list[dict] = [
    {
        "campaign_id": "DEMO-ALL20",
        "title": "全场满199减20",
        "kind": "amount",
        "amount": 20,
        "threshold": 199,
        "budget_count": 500,
        "budget_money": 10000,
        "per_viewer_limit": 1,
    },
    {
        "campaign_id": "DEMO-NEW5",
        "title": "新人无门槛5元",
        "kind": "amount",
        "amount": 5,
        "threshold": 0,
        "budget_count": 1000,
        "per_viewer_limit": 1,
        "eligible_tiers": ["路过", "围观"],
    },
    {
        "campaign_id": "DEMO-FAN-LIP",
        "title": "铁粉专享口红9折",
        "kind": "discount",
        "discount": 0.9,
        "max_off": 30,
        "budget_count": 200,
        "budget_money": 3000,
        "per_viewer_limit": 1,
        "eligible_tiers": ["铁粉"],
        "eligible_tags": ["口红兴趣"],
        "skus": ["LS-001", "LS-002"],
    },
    {
        "campaign_id": "DEMO-MEMBER50",
        "title": "会员满399减50",
        "kind": "amount",
        "amount": 50,
        "threshold": 399,
        "budget_count": 100,
        "per_viewer_limit": 1,
        "members_only": True,
        "stackable": True,
    },
]

SEED_NAME = "demo-v1"


def demo_products(kb_demo_dir: Path | None = None) -> list[dict]:
    """The demo KB's products (knowledge/demo/*.json) when there are any, else a small built-in catalog."""
    out: dict[str, dict] = {}
    kb_demo_dir = kb_demo_dir or Path(__file__).resolve().parent.parent / "knowledge" / "demo"
    for f in sorted(kb_demo_dir.glob("*.json")) if kb_demo_dir.is_dir() else []:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for p in data.get("products", []) if isinstance(data, dict) else []:
            if isinstance(p, dict) and p.get("sku"):
                out[str(p["sku"])] = {
                    "sku": str(p["sku"]),
                    "name": p.get("name"),
                    "category": p.get("category"),
                    "price": p.get("price"),
                }
    return list(out.values()) or [dict(p) for p in DEMO_PRODUCTS]


def demo_campaigns(products: list[dict]) -> list[dict]:
    """The demo campaigns; the fans' lipstick coupon applies to whatever lipsticks the catalog has."""
    from audience.rules import InterestRules

    ir = InterestRules()
    lips = [p["sku"] for p in products if ir.interest_category(p.get("name"), p.get("category")) == "口红"]
    out = []
    for c in DEMO_CAMPAIGNS:
        c = dict(c)
        if c["campaign_id"] == "DEMO-FAN-LIP":
            c["skus"] = lips[:20]
        out.append(c)
    return out


def gen_viewers(n: int, seed: int = 7, prefix: str = "dv") -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        known = rng.random() > 0.15  # demographics unknown for some viewers
        member = rng.random() < 0.25
        orders = 0 if rng.random() < 0.5 else min(40, int(rng.expovariate(1 / 3)) + 1)
        aov = math.exp(rng.gauss(math.log(160), 0.6))
        propensity = rng.random()
        v = {
            "viewer_id": f"{prefix}{i:05d}",
            "member": member,
            "member_level": rng.choice(["银卡", "金卡", "黑金"]) if member else None,
            "orders": orders,
            "spent": round(orders * aov, 2),
            "coupon_orders": sum(rng.random() < propensity for _ in range(orders)),
        }
        if known:
            v["age_band"] = rng.choices(["18-24", "25-34", "35-44", "45+"], [30, 40, 20, 10])[0]
            v["gender"] = rng.choices(["female", "male", "other"], [75, 22, 3])[0]
            v["city_tier"] = rng.choices([1, 2, 3, 4, 5], [20, 30, 25, 15, 10])[0]
        if member:  # synthetic contact data, to show it is filtered out
            v.update(real_name=f"演示用户{i}", phone=f"1380000{i % 10000:04d}", address=f"演示市演示路{i}号")
        out.append(v)
    return out


def gen_session(
    viewers: list[dict],
    products: list[dict],
    *,
    seed: int = 7,
    end: float | None = None,
    minutes: int = 60,
    attendance: float = 0.5,
    heartbeat_s: int = 60,
    id_prefix: str = "demo",
) -> list[dict]:
    """One live session ending at `end`: the host presents products in segments; viewers enter, watch
    (heartbeats name the sku on screen), click, cart, buy, comment, like, share and claim coupons."""
    rng = random.Random(seed * 7919 + 1)
    end = time.time() if end is None else end
    start = end - minutes * 60
    skus = [p["sku"] for p in products]
    price = {p["sku"]: float(p.get("price") or 100) for p in products}
    shown = rng.sample(skus, min(len(skus), max(1, minutes // 5)))  # the host presents ~5 min per product
    seg_len = minutes * 60 / len(shown)
    on_screen = lambda t: shown[min(len(shown) - 1, int((t - start) // seg_len))]  # noqa: E731
    events: list[dict] = []
    n = 0

    def add(vid: str, typ: str, ts: float, **kw) -> None:
        nonlocal n
        n += 1
        events.append({"event_id": f"{id_prefix}-{seed}-{n}", "viewer_id": vid, "type": typ, "ts": round(ts, 3), **kw})

    for v in viewers:
        if rng.random() > attendance:
            continue
        vid = v["viewer_id"]
        fan = v.get("orders", 0) >= 3 or v.get("member")
        fav = rng.choice(skus)
        t0 = start + rng.random() ** 1.5 * (end - start - 60)
        stay = min(end - t0, rng.expovariate(1 / (900 if fan else 420)) + 30)
        add(vid, "enter", t0)
        t = t0
        while t + heartbeat_s <= t0 + stay:
            t += heartbeat_s
            sku = on_screen(t)
            add(vid, "watch", t, sku=sku, seconds=heartbeat_s)
            r = rng.random()
            if r < 0.10 or (sku == fav and r < 0.3):
                add(vid, "product_click", t + rng.random() * 5, sku=sku if rng.random() < 0.8 else fav)
            if rng.random() < 0.06:
                add(vid, "comment", t + rng.random() * heartbeat_s)
            if rng.random() < 0.12:
                add(vid, "like", t + rng.random() * heartbeat_s)
        if rng.random() < 0.03:
            add(vid, "share", t0 + rng.random() * stay)
        if rng.random() < (0.35 if fan else 0.15):
            add(vid, "product_click", t0 + rng.random() * stay, sku=fav)
            add(vid, "product_click", t0 + rng.random() * stay, sku=fav)
            tc = t0 + rng.random() * stay
            add(vid, "add_to_cart", tc, sku=fav)
            if rng.random() < 0.15:
                add(vid, "coupon_claim", tc + 1, campaign_id="DEMO-ALL20")
            if rng.random() < (0.6 if fan else 0.35):
                used = rng.random() < 0.3
                add(
                    vid,
                    "purchase",
                    min(end, tc + rng.random() * 120),
                    sku=fav,
                    amount=price[fav],
                    order_id=f"{id_prefix}-o-{seed}-{n}",
                    coupon_used=used,
                )
        if t0 + stay < end - 1:
            add(vid, "leave", t0 + stay)
    events.sort(key=lambda e: e["ts"])
    return events


def _batches(xs: list, n: int) -> Iterator[list]:
    for i in range(0, len(xs), n):
        yield xs[i : i + n]


def seed_demo(
    svc, merchant: str = "demo", viewers: int = 3000, seed: int = 7, *, force: bool = False, minutes: int = 60
) -> dict:
    """Idempotent: the second run with the same arguments returns the first run's summary."""
    from audience.coupons import CampaignExists

    name = f"{SEED_NAME}:seed={seed}:viewers={viewers}"
    done = svc.seeded(merchant, name)
    if done and not force:
        return {**done, "skipped": True}
    t0 = time.perf_counter()
    products = demo_products()
    svc.upsert_products(merchant, products)
    vs = gen_viewers(viewers, seed)
    svc.upsert_viewers(merchant, vs)
    made = 0
    for c in demo_campaigns(products):
        try:
            svc.create_campaign(merchant, c)
            made += 1
        except CampaignExists:
            pass
    events = gen_session(vs, products, seed=seed, minutes=minutes)
    accepted = 0
    for b in _batches(events, svc.max_batch):
        accepted += svc.ingest(merchant, b).accepted
    info = {
        "merchant": merchant,
        "viewers": len(vs),
        "products": len(products),
        "campaigns": made,
        "events": len(events),
        "accepted": accepted,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    svc.mark_seeded(merchant, name, info)
    return {**info, "skipped": False}
