"""Host eval (issue 19): a 2-hour accelerated show on the demo catalog and on evals/data/catalogs/gadgets,
every line the virtual host says checked automatically.

    python -m evals.host [--json] [--hours 2] [--catalog demo --catalog gadgets] [-v]

The show runs on a virtual clock (two show hours in seconds of wall time) with the simulated audience,
plus danmaku the eval injects every few show minutes: viewers' personal details (a body weight, a phone
number, an address, a name: "能退吗，我49斤") and a hot question the product's facts may not answer
("吃饭会掉吗" in a lipstick segment). Per catalog it counts:

* ``cross_product``: a line said in a product segment that names another product of the catalog, or
  states a figure that is in another product's facts and not in the segment product's;
* ``wrong_template``: a line on a product using a usage word of another kind of product (吃/穿/涂/充电…)
  that appears in none of the facts of the product's own category;
* ``personal_details``: a line carrying a viewer's personal detail (the injected weights, phones,
  addresses, names, or any phone-number / body-measurement pattern);
* ``repeats``: lines whose meaning was said before — the main clause, or most of the line, is clauses
  already said, word for word or within ``REPEAT_COS`` sentence-embedding cosine with the same figures
  and products (``count_repeats``); restating a selling point under a new lead-in counts (a whole-sentence cosine misses it: the
  template dominates);
* ``after_closing``: lines said after the closing sign-off ("…下次见！").

Target: 0 of each. Audience data goes to a throwaway database (never a merchant's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from host.answers import short_name

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "knowledge" / "demo"
REPEAT_COS = 0.9  # clause-level cosine for "the same thing"
REPEAT_SHARE = 0.6  # share of a line (without product names) in clauses said before
MAIN_CHARS = 8  # a main clause this long said before repeats the line on its own

# usage words that belong to one kind of product (the eval's own list, not the host's)
USAGE_WORDS = ("吃", "食用", "口感", "入口", "涂", "上脸", "上嘴", "肌肤", "穿", "上身", "显瘦", "充电", "续航", "喂")
INJECTED = [
    ("能退吗，我49斤", ("49斤",)),
    ("我身高158体重52公斤穿什么码", ("158", "52公斤")),
    ("我电话13812345678，到了打给我", ("13812345678",)),
    ("寄到北京市朝阳区建国路88号可以吗", ("建国路88号", "朝阳区")),
    ("我叫王小美，下单了", ("王小美",)),
]
HOT = ["吃饭会掉吗", "吃饭会不会掉", "吃东西掉不掉"]
_PHONE = re.compile(r"1[3-9]\d{9}")
_BODY = re.compile(r"\d+\s*(斤|公斤|kg|cm|厘米)")
_NUM = re.compile(r"\d+(?:\.\d+)?")


def _products(kb, merchant: str) -> list:
    return list(kb.snapshot(merchant).catalog.products)


def rundown_for(products: list, hours: float, coupons: list[str]) -> str:
    """Opening, one segment per category's first product, a coupon segment when there is one, Q&A, closing."""
    picked, seen = [], set()
    for p in products:
        if p.category not in seen:
            seen.add(p.category)
            picked.append(p)
    picked = picked[:6]
    total = hours * 60
    fixed = 2 + 2 + 8 + (2 if coupons else 0)
    per = max(1, int((total - fixed) / len(picked)))
    segs = ["  - {type: opening, minutes: 2}"]
    segs += [f"  - {{type: product, sku: {p.sku}, minutes: {per}}}" for p in picked]
    if coupons:
        segs.append(f"  - {{type: coupon, campaign: {coupons[0]}, minutes: 2}}")
    segs += ["  - {type: qa, minutes: 8}", "  - {type: closing, minutes: 2}"]
    head = f"reserve_coupons: [{coupons[0]}]\n" if coupons else ""
    return head + "loop: false\nsegments:\n" + "\n".join(segs) + "\n"


_ASKED = ["", "主播，", "请问", "姐妹们"]  # several viewers, each in their own words (no flood dedup)


async def _inject(room, clock, every_s: float = 300.0) -> None:
    """Every few show minutes a burst of viewers asking with a personal detail, and a burst of a hot
    question the segment's product may not answer: both become clusters the host answers aloud."""
    i = 0
    while True:
        await clock.sleep(every_s)
        text, _ = INJECTED[i % len(INJECTED)]
        for k, pre in enumerate(_ASKED):
            room.ingest(f"pii{i}-{k}", pre + text, context_sku=room.context_sku)
            room.ingest(f"hot{i}-{k}", pre + HOT[k % len(HOT)], context_sku=room.context_sku)
            await clock.sleep(3)
        i += 1


_CLAUSE = re.compile(r"[，,。！!？?；;：:]+")  # product names and 、-lists stay whole


def count_repeats(lines: list, embed, names: dict[str, str]) -> tuple[int, list[dict]]:
    """Lines whose meaning was said before. A clause is old when said before, in a line about the same
    products (those it names, else its segment's; a line about none matches any), word for word or
    within REPEAT_COS cosine stating the same figures; a line with a figure not said before is news;
    otherwise it repeats when it holds a whole earlier line, when its main (longest) clause of
    MAIN_CHARS or more is old, or old clauses make up REPEAT_SHARE of it — lengths
    counted without product names, so a new selling point under an old "X的亮点之一" is new and an old one
    under a new lead-in is not. An answer is weighed against earlier answers only (a viewer asking what
    the script said deserves the answer)."""
    order = sorted(names, key=len, reverse=True)  # name or short name → sku
    cls = [[c for c in (x.strip() for x in _CLAUSE.split(ln.text)) if c] for ln in lines]
    flat = sorted({c for cs in cls for c in cs})
    if not flat:
        return 0, []
    idx = {c: i for i, c in enumerate(flat)}
    v = np.asarray(embed(flat), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-9
    sims = v @ v.T
    figs, weight, named_in = [], [], []
    for c in flat:
        named, rest = [], c
        for n in order:
            if n in rest:
                named.append(names[n])
                rest = rest.replace(n, "")
        figs.append(frozenset(_NUM.findall(rest)))
        weight.append(len(rest.strip()))
        named_in.append(frozenset(named))
    seen: dict[str, list[tuple[int, frozenset[str]]]] = {"answer": [], "show": []}
    said_lines: list[tuple[frozenset[tuple[int, frozenset[str]]], int]] = []
    n, ex = 0, []
    for ln, cs in zip(lines, cls):
        pool = seen["answer" if ln.kind == "answer" else "show"]
        ids = [idx[c] for c in cs]
        # the products the line is about: those it names, else its segment's; "" for none
        about = frozenset().union(*(named_in[i] for i in ids)) or frozenset([ln.sku] if ln.sku else [])
        old, matched = [], set()
        for i in ids:
            hits = [
                (j, a)
                for j, a in pool
                if (a == about or not a or not about) and figs[j] == figs[i] and sims[i, j] >= REPEAT_COS
            ]
            old.append(flat[hits[0][0]] if hits else None)
            matched.update(hits)
        ws = [weight[i] for i in ids]
        if any(figs[i] and not o for i, o in zip(ids, old)):
            pool.extend((i, about) for i in ids)
            said_lines.append((frozenset((i, about) for i in ids), sum(ws)))
            continue  # a figure not said before is news
        whole = any(earlier <= matched for earlier, w in said_lines if w >= MAIN_CHARS)
        said_lines.append((frozenset((i, about) for i in ids), sum(ws)))
        main = max(range(len(ids)), key=lambda k: ws[k]) if ids else 0
        total = sum(ws)
        done = sum(w for w, o in zip(ws, old) if o)
        if ids and (
            whole or (old[main] and ws[main] >= MAIN_CHARS) or (done >= REPEAT_SHARE * total if total else all(old))
        ):
            n += 1
            if len(ex) < 5:
                ex.append({"seq": ln.seq, "kind": ln.kind, "text": ln.text, "said_before": next(o for o in old if o)})
        pool.extend((i, about) for i in ids)
    return n, ex


def check(lines: list, products: list, kb, merchant: str, embed) -> dict:
    snap = kb.snapshot(merchant)
    facts_of: dict[str, str] = {}
    for f in snap.index.facts:
        if f.sku:
            facts_of[f.sku] = facts_of.get(f.sku, "") + " " + f.text
    by_sku = {p.sku: p for p in products}
    cat_text: dict[str, str] = {}
    for p in products:
        cat_text[p.category] = cat_text.get(p.category, "") + " " + p.name + facts_of.get(p.sku, "")
    nums_of = {s: set(_NUM.findall(t)) for s, t in facts_of.items()}
    out = {"lines": len(lines), "cross_product": 0, "wrong_template": 0, "personal_details": 0}
    examples: dict[str, list] = {k: [] for k in ("cross_product", "wrong_template", "personal_details", "repeats")}

    def flag(k: str, ln, why: str) -> None:
        out[k] += 1
        if len(examples[k]) < 5:
            examples[k].append({"seq": ln.seq, "sku": ln.sku, "kind": ln.kind, "text": ln.text, "why": why})

    pii = [s for _, ss in INJECTED for s in ss]
    catalog_text = " ".join(facts_of.values()) + " ".join(p.name for p in products)
    for ln in lines:
        t = ln.text
        body = [m.group(0) for m in _BODY.finditer(t) if m.group(0) not in catalog_text]  # a fact's 88cm is fine
        if any(s in t for s in pii) or _PHONE.search(t) or body:
            flag("personal_details", ln, "viewer detail read aloud")
        p = by_sku.get(ln.sku or "")
        if p is None:
            continue
        others = [q for q in products if q.sku != p.sku and len(q.name) >= 4 and q.name in t and q.name not in p.name]
        mine = nums_of.get(p.sku, set()) | set(_NUM.findall(p.name)) | {f"{p.price:g}"}
        stray = [
            n
            for n in _NUM.findall(t)
            if n not in mine and len(n) >= 2 and any(n in nums_of.get(q.sku, ()) for q in products if q.sku != p.sku)
        ]
        if others:
            flag("cross_product", ln, f"names {others[0].name}")
        elif stray and ln.kind in ("script", "hook", "bridge"):
            flag("cross_product", ln, f"figure {stray[0]} is another product's")
        own = cat_text.get(p.category, "")
        wrong = [w for w in USAGE_WORDS if w in t and w not in own]
        if wrong:
            flag("wrong_template", ln, f"'{wrong[0]}' fits no {p.category} product")
    repeats, examples["repeats"] = count_repeats(
        lines, embed, {n: p.sku for p in products for n in (p.name, short_name(p))}
    )
    out["repeats"] = repeats
    # after the closing sign-off
    close = next((i for i, ln in enumerate(lines) if re.search(r"下次(直播)?再?见", ln.text)), None)
    out["after_closing"] = 0 if close is None else len(lines) - close - 1
    # the checks above were exercised: answers read aloud, and those on the injected danmaku's topics
    # (returns for "能退吗，我49斤", eating for the hot question)
    out["answers"] = sum(ln.kind == "answer" for ln in lines)
    out["answers_on_injected_topics"] = sum(
        ln.kind == "answer" and bool(re.search("退|吃饭|掉", ln.text)) for ln in lines
    )
    out["closing_said"] = close is not None
    out["examples"] = examples
    return out


async def run_show(c, merchant: str, hours: float, tmp: Path, guard: bool = True) -> dict:
    from audience.service import AudienceService
    from core.clock import VirtualClock
    from host.loop import HostLoop
    from host.room import HostRoom, host_agent
    from host.rundown import Timeline, parse_rundown
    from host.speech import Speaker, TextTrack
    from sim.audience import demo_campaigns, demo_products, gen_viewers
    from sim.show import ShowSimulator

    clock = VirtualClock()
    svc = AudienceService(f"sqlite:///{tmp / f'{merchant}-audience.db'}", clock=clock.now, synchronous="OFF")
    svc.sandbox = True
    products = _products(c.kb, merchant)
    plist = [{"sku": p.sku, "name": p.name, "category": p.category, "price": p.price} for p in products]
    svc.upsert_products(merchant, plist)
    svc.upsert_viewers(merchant, gen_viewers(200, 7))
    coupons = []
    if merchant == "demo":
        for camp in demo_campaigns(demo_products()):
            svc.create_campaign(merchant, camp)
        coupons = ["DEMO-ALL20"]
    rd = parse_rundown(rundown_for(products, hours, coupons))
    room = HostRoom(
        merchant,
        f"eval-{merchant}",
        kb=c.kb,
        embed=c.embedder.encode,
        audience=svc,
        agent=host_agent(c.kb, svc, None, c.intent_model),
        clock=clock,
        inline_embed=True,
    )
    said: list = []
    speaker = Speaker(clock, TextTrack(room.bus, echo=said.append), None, rd.pace.chars_per_second)
    loop = HostLoop(room, rd, speaker, hours=hours)
    if not guard:  # the check's own teeth: the same show with the host's repeat guard off
        for m in loop._meaning.values():
            m.repeats = lambda *a, **k: False  # type: ignore[method-assign]
    sim = ShowSimulator(room, Timeline(rd, clock.now(), hours), plist, viewers=200, audience=svc, ingest_every_s=60)
    room.start()
    tasks = [asyncio.create_task(sim.run()), asyncio.create_task(_inject(room, clock))]
    try:
        report = await loop.run()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await room.aclose()
        svc.close()
    res = check(said, products, c.kb, merchant, c.embedder.encode)
    res["show_hours"] = report.show_hours
    res["reported_repeated_lines"] = report.repeated_lines
    return res


async def run(catalogs: list[str], hours: float, guard: bool = True) -> dict:
    from core.settings import Settings
    from evals.answers import import_catalog
    from liveroom.container import Container

    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        c = Container(Settings(data_dir=tmp, llm_autostart=False))
        try:
            for name in catalogs:
                if name == "demo":
                    files = sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
                    c.kb.import_files("demo", files)
                else:
                    import_catalog(c, name, tmp)
                out[name] = await run_show(c, name, hours, tmp, guard)
        finally:
            await c.aclose()
    keys = ("lines", "cross_product", "wrong_template", "personal_details", "repeats", "after_closing")
    total = {k: sum(r[k] for r in out.values()) for k in keys}
    return {**total, "catalogs": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="virtual host eval over an accelerated show")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--catalog", action="append", help="demo and/or a name under evals/data/catalogs")
    ap.add_argument(
        "--without-guard", action="store_true", help="turn the host's repeat guard off (shows the check bites)"
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="print examples of every failure")
    a = ap.parse_args(argv)
    res = asyncio.run(run(a.catalog or ["demo", "gadgets"], a.hours, not a.without_guard))
    if a.json:
        if not a.verbose:
            for r in res["catalogs"].values():
                r.pop("examples", None)
        print(json.dumps(res, ensure_ascii=False))
        return 0
    for name, r in res["catalogs"].items():
        print(
            f"{name}: {r['lines']} lines in {r['show_hours']} h — cross_product {r['cross_product']}, "
            f"wrong_template {r['wrong_template']}, personal_details {r['personal_details']}, "
            f"repeats {r['repeats']} (the loop reported {r['reported_repeated_lines']}), "
            f"after_closing {r['after_closing']}; {r['answers']} answers read aloud, "
            f"{r['answers_on_injected_topics']} on the injected danmaku's topics"
        )
        if a.verbose:
            for k, ex in r["examples"].items():
                for e in ex:
                    print(f"   [{k}] {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
