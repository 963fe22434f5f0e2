"""Copy eval over hand-written personas: does each copy lead with the angle the persona calls for, break no
compliance rule, state only correct facts, and fit its channel?

    python -m evals.copy [--llm] [--json] [--show]

``--llm`` writes with the configured LLM backend (the embedded model by default; starting it takes a few
seconds, each copy ~10-60 s on 2 cores); without it the safe templates are scored (the fallback every
model draft is held against). Personas: ``evals/data/personas.jsonl`` (profile, product, phase, channel,
available coupons, expected angle). Checks are made on the delivered text, independently of what the
writer reports about itself:

* angle: the text leads (push title / opening words) with the expected angle's content;
* compliance: ``agent.compliance.check`` on the full text with the product's real prices, coupons, stock;
* facts: every number in the text is in a cited fact (or the cited coupon / show time) or derived from the
  product's real figures (list − live price, price after the coupon), no claim the product's facts don't
  make (无添加…, 适合…肌, 进口 …), every citation exists in the knowledge base, and the product is named;
* length: the channel's limits (push title ≤ 20 / body ≤ 50, SMS ≤ 70 incl. signature and opt-out,
  pop-up ≤ 30, host line ≤ 2 sentences).

Then a persona study (issue 19): every persona's profile on every persona product, each viewer holding
their own coupons (满99减10, 满199减20, 无门槛减5 or none), a pre-show push each:

* threshold fit: of the copies naming a coupon, the share whose threshold the product's live price
  reaches (or whose text says how much to add to reach it) — target 100%;
* persona pairs: of the pairs of different profiles on one product, the share whose copies lead with a
  different angle (``angle_pairs_differ``) and the share whose texts differ once the coupon sentence is
  taken out (``text_pairs_differ``); over the pairs whose profiles call for different angles, the share
  that got them (``wanted_pairs_differ``, target 100%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path

from agent import compliance
from agent.claims import numbers
from knowledge.importers import parse_files
from tools.contracts import CouponOffer, ProfileView

ROOT = Path(__file__).resolve().parent.parent
PERSONAS = ROOT / "evals" / "data" / "personas.jsonl"
DEMO = ROOT / "knowledge" / "demo"
SHOW = {"show_id": "eval-show", "start": "2030-06-01T20:00:00+08:00", "segments": []}


def load_personas(path: Path = PERSONAS) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def demo_catalog():
    from copywriting.facts import StaticCatalog

    files = sorted(p for p in DEMO.rglob("*") if p.is_file() and p.suffix in {".json", ".md", ".csv"})
    return StaticCatalog(parse_files(files), merchant="demo")


class PersonaData:
    """Profiles and coupons straight from the persona file (ProfileStore + CouponLedger)."""

    def __init__(self, personas: list[dict]):
        self.p = {x["id"]: ProfileView(viewer_id=x["id"], **x["profile"]) for x in personas}
        self.c = {x["id"]: [CouponOffer.model_validate(c) for c in x.get("coupons", [])] for x in personas}

    def lookup(self, merchant: str, viewer_id: str) -> ProfileView | None:
        return self.p.get(viewer_id)

    def eligible_offers(self, merchant: str, viewer_id: str, sku: str | None = None) -> list[CouponOffer]:
        return list(self.c.get(viewer_id, []))


def show_for(personas: list[dict]) -> dict:
    from datetime import datetime, timedelta

    start = datetime.fromisoformat(SHOW["start"])
    segs = [
        {"sku": p["sku"], "start": (start + timedelta(minutes=10 * (i + 1))).isoformat()}
        for i, p in enumerate(personas)
    ]
    return {**SHOW, "segments": segs}


def score(piece, persona: dict, catalog, writer) -> dict:
    from copywriting import channels
    from copywriting.facts import gather
    from copywriting.validate import leads_with

    offers = [CouponOffer.model_validate(c) for c in persona.get("coupons", [])]
    coupon = next((o for o in offers if piece.coupon == o.campaign_id), None)
    m = gather(
        catalog,
        persona["sku"],
        coupon=coupon,
        tier=persona["profile"].get("tier", "路过"),
        member=persona["profile"].get("member", False),
    )
    title = piece.title if piece.channel == "push" else None
    body = piece.body if piece.channel == "push" else piece.text
    if piece.channel == "sms":
        body = piece.text[len(channels.sms_signature(m.shop)) : -len(channels.SMS_OPT_OUT)]
    angle_ok = leads_with(persona["expect"], m, title, body)
    p = m.product
    vs = compliance.check(
        f"{title or ''}。{body}",
        writer.rules_for("demo"),
        real_stock=p.stock,
        prices=compliance.PriceFacts.from_product(p, offers, [c.text for c in piece.citations]),
    )
    known = {f.id for f in catalog.facts()}
    bad_cites = [c.id for c in piece.citations if not (c.id in known or c.id.startswith(("coupon:", "show:")))]
    allowed = set()
    for c in piece.citations:
        allowed |= numbers(c.text)
    allowed |= numbers(p.name)
    # figures derived from the real data are facts too: list − live price, price after the coupon
    pf = compliance.PriceFacts.from_product(p, offers)
    for x in pf.any_amounts():
        allowed |= numbers(f"{x:g}")
    stray = sorted(numbers(f"{title or ''}。{body}") - allowed)
    named = any(n in piece.text for n in [m.name, p.name, *p.aliases])
    from copywriting.validate import unsupported_claims

    claims = unsupported_claims(f"{title or ''}。{body}", m)
    facts_ok = not bad_cites and not stray and not claims and named and bool(piece.citations)
    len_issues = channels.length_issues(piece.channel, m.shop, title, body)
    return {
        "id": persona["id"],
        "expect": persona["expect"],
        "angle": piece.angle,
        "angle_ok": angle_ok,
        "violations": [f"{v.rule}:{v.term}" for v in vs],
        "facts_ok": facts_ok,
        "stray_numbers": stray,
        "unsupported_claims": claims,
        "bad_citations": bad_cites,
        "length_ok": not len_issues,
        "length_issues": len_issues,
        "source": piece.source,
        "attempts": piece.attempts,
        "text": piece.text,
        "citations": [c.id for c in piece.citations],
        "draft_issues": piece.issues,
    }


async def run(use_llm: bool = False, personas: list[dict] | None = None, llm=None) -> dict:
    from copywriting.generator import CopyWriter
    from copywriting.schema import CopyRequest

    personas = personas if personas is not None else load_personas()
    catalog = demo_catalog()
    data = PersonaData(personas)
    container = None
    if use_llm and llm is None:
        from copywriting.generator import patient
        from core.settings import Settings
        from liveroom.container import Container

        container = Container(Settings(llm_autostart=False))
        llm = patient(await container.start_llm())
    writer = CopyWriter(lambda m: catalog, profiles=data, ledger=data, llm=llm if use_llm else None)
    show = show_for(personas)
    rows = []
    t0 = time.perf_counter()
    try:
        for p in personas:
            req = CopyRequest(
                merchant="demo",
                sku=p["sku"],
                viewer_id=p["id"],
                phase=p["phase"],
                channel=p["channel"],
                recall=p.get("recall"),
                show=show if p["phase"] != "post" else None,
                use_llm=use_llm,
            )
            piece = await writer.write(req)
            rows.append(score(piece, p, catalog, writer))
    finally:
        if container is not None:
            await container.aclose()
    n = len(rows)
    study = await persona_study(personas, catalog)
    return {
        "mode": "llm" if use_llm else "template",
        "personas": n,
        "angle_lead_share": round(sum(r["angle_ok"] for r in rows) / n, 4),
        "chosen_angle_matches": round(sum(r["angle"] == r["expect"] for r in rows) / n, 4),
        "compliance_violations": sum(len(r["violations"]) for r in rows),
        "facts_correct_share": round(sum(r["facts_ok"] for r in rows) / n, 4),
        "length_ok_share": round(sum(r["length_ok"] for r in rows) / n, 4),
        "llm_written": sum(r["source"] == "llm" for r in rows),
        "llm_calls": writer.llm_calls,
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "threshold_fit": study["threshold_fit"],
        "angle_pairs_differ": study["angle_pairs_differ"],
        "text_pairs_differ": study["text_pairs_differ"],
        "wanted_pairs_differ": study["wanted_pairs_differ"],
        "persona_study": study,
        "rows": rows,
    }


_CLAUSE = re.compile(r"[^，,。！!？?；;\n]+")


def without_coupon(text: str) -> str:
    """The copy with every clause that mentions a coupon removed (what is left is the angle's content)."""
    return "，".join(c for c in _CLAUSE.findall(text) if "券" not in c and not re.search(r"满\d+|减\d+", c))


def threshold_fits(piece, offers: list, price: float) -> bool:
    o = next((x for x in offers if x.campaign_id == piece.coupon), None)
    if o is None:
        return True
    return (o.threshold or 0) <= price or bool(re.search(r"(还差|再凑|再加|凑够)", piece.text))


async def persona_study(personas: list[dict], catalog) -> dict:
    """Every persona's profile on every persona product (template path: the angle is chosen in code)."""
    from itertools import combinations

    from copywriting import angles
    from copywriting.generator import CopyWriter
    from copywriting.schema import CopyRequest

    coupons, seen = [], set()
    for p in personas:
        for c in p.get("coupons", []):
            if c["campaign_id"] not in seen:
                seen.add(c["campaign_id"])
                coupons.append(c)
    everyone = personas  # each viewer holds their own coupons (some hold only a 满199 one)
    data = PersonaData(everyone)
    offers = [CouponOffer.model_validate(c) for c in coupons]
    writer = CopyWriter(lambda m: catalog, profiles=data, ledger=data, llm=None)
    skus = list(dict.fromkeys(p["sku"] for p in personas))
    with_coupon = fit = 0
    pairs = angle_diff = text_diff = wanted_pairs = wanted_diff = 0
    misfits: list[dict] = []
    same_text: list[dict] = []
    for sku in skus:
        price = catalog.product(sku).price
        got = []
        for p in everyone:
            req = CopyRequest(merchant="demo", sku=sku, viewer_id=p["id"], phase="pre", channel="push")
            piece = await writer.write(req)
            if piece.coupon:
                with_coupon += 1
                ok = threshold_fits(piece, offers, price)
                fit += ok
                if not ok:
                    misfits.append({"sku": sku, "price": price, "coupon": piece.coupon, "text": piece.text})
            wanted = angles.wanted(data.p[p["id"]], sku)[0][0]  # what the profile asks for first
            got.append((p["id"], piece, wanted))
        for (ia, a, wa), (ib, b, wb) in combinations(got, 2):
            pairs += 1
            angle_diff += a.angle != b.angle
            differ = without_coupon(a.text) != without_coupon(b.text)
            text_diff += differ
            if wa != wb:
                wanted_pairs += 1
                wanted_diff += a.angle != b.angle and differ
                if not differ and len(same_text) < 5:
                    same_text.append({"sku": sku, "a": ia, "b": ib, "text": a.text})
    return {
        "copies": len(skus) * len(everyone),
        "with_coupon": with_coupon,
        "threshold_fit": round(fit / with_coupon, 4) if with_coupon else 1.0,
        "persona_pairs": pairs,
        "angle_pairs_differ": round(angle_diff / pairs, 4) if pairs else 0.0,
        "text_pairs_differ": round(text_diff / pairs, 4) if pairs else 0.0,
        "wanted_pairs": wanted_pairs,
        "wanted_pairs_differ": round(wanted_diff / wanted_pairs, 4) if wanted_pairs else 1.0,
        "misfits": misfits[:5],
        "same_text_examples": same_text,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="copy eval over personas")
    ap.add_argument("--llm", action="store_true", help="write with the configured LLM backend")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--show", action="store_true", help="print every copy")
    a = ap.parse_args(argv)
    res = asyncio.run(run(a.llm))
    if a.json:
        print(json.dumps(res, ensure_ascii=False))
        return 0
    print(f"copy eval ({res['mode']}): {res['personas']} personas")
    print(
        f"  leads with the expected angle: {res['angle_lead_share']:.0%} "
        f"(angle chosen = expected: {res['chosen_angle_matches']:.0%})"
    )
    print(f"  compliance violations: {res['compliance_violations']}")
    print(f"  facts correct: {res['facts_correct_share']:.0%}")
    print(f"  lengths within limits: {res['length_ok_share']:.0%}")
    st = res["persona_study"]
    print(
        f"  persona study ({st['copies']} copies): coupon threshold fits the price {st['threshold_fit']:.0%} "
        f"of {st['with_coupon']} with a coupon"
    )
    print(
        f"  persona pairs ({st['persona_pairs']}): different angle {st['angle_pairs_differ']:.0%}, different text "
        f"without the coupon {st['text_pairs_differ']:.0%}; pairs whose profiles call for different angles "
        f"({st['wanted_pairs']}) that got them {st['wanted_pairs_differ']:.0%}"
    )
    for x in st["misfits"]:
        print(f"  [MISFIT] {x['sku']} at {x['price']}: {x['coupon']} in {x['text']!r}")
    for x in st["same_text_examples"]:
        print(f"  [SAME] {x['sku']} {x['a']} vs {x['b']}: {x['text']!r}")
    if res["mode"] == "llm":
        print(
            f"  written by the model: {res['llm_written']}/{res['personas']} ({res['llm_calls']} calls, "
            f"{res['elapsed_s']} s); the rest fell back to templates"
        )
    for r in res["rows"]:
        bad = not (r["angle_ok"] and r["facts_ok"] and r["length_ok"]) or r["violations"]
        if a.show or bad:
            flag = "FAIL" if bad else "ok"
            print(f"  [{flag}] {r['id']} ({r['expect']}→{r['angle']}, {r['source']}): {r['text']!r}")
            if bad:
                print(
                    f"        violations={r['violations']} stray={r['stray_numbers']} claims={r['unsupported_claims']} "
                    f"cites={r['bad_citations']} "
                    f"len={r['length_issues']}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
