"""Answers composed directly from retrieved facts — no model call, ~milliseconds, cannot invent.

Each composer picks the facts that answer the intent for the resolved product(s) and renders a
short live-room sentence in Chinese or English, citing exactly the facts it used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.grounding import coverage
from knowledge.facts import fmt_price
from knowledge.schema import Fact, Product, SearchHit
from knowledge.store import LoadedVersion

MIN_COVERAGE = 0.5


@dataclass
class Draft:
    text: str
    facts: list[Fact] = field(default_factory=list)
    refused: bool = False


def _short(text: str, limit: int = 70) -> str:
    """Cut at a sentence boundary within ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = max(text.rfind(p, 0, limit) for p in "。！？；，,.")
    return text[: cut + 1] if cut > 10 else text[:limit] + "…"


def _facts(snap: LoadedVersion, sku: str, kinds: set[str]) -> list[Fact]:
    return [f for f in snap.index.facts if f.sku == sku and f.kind in kinds]


def price_answer(snap: LoadedVersion, p: Product, lang: str) -> Draft:
    facts = _facts(snap, p.sku, {"price"})
    if lang == "en":
        text = f"Tonight's live price for {p.name} is ¥{fmt_price(p.price)}"
        if p.list_price and p.list_price > p.price:
            text += f" (regular ¥{fmt_price(p.list_price)})"
        text += "."
    else:
        text = f"{p.name}今晚直播价{fmt_price(p.price)}元"
        if p.list_price and p.list_price > p.price:
            text += f"，日常价{fmt_price(p.list_price)}元"
        text += "。"
    if p.stock == 0:
        facts += _facts(snap, p.sku, {"stock"})
        text += " It is sold out right now." if lang == "en" else "目前缺货，已经售罄啦。"
    return Draft(text, facts)


def stock_answer(snap: LoadedVersion, p: Product, lang: str) -> Draft:
    facts = _facts(snap, p.sku, {"stock"})
    if p.stock is None or not facts:
        return Draft("", refused=True)
    if lang == "en":
        text = f"{p.name} is sold out right now." if p.stock == 0 else f"{p.name}: {p.stock} in stock right now."
    else:
        text = f"{p.name}目前缺货，已经售罄啦。" if p.stock == 0 else f"{p.name}现在有货，库存{p.stock}件。"
    return Draft(text, facts)


def detail_answer(snap: LoadedVersion, p: Product, question: str, hits: list[SearchHit], lang: str) -> Draft:
    """Spec / FAQ / suitability: the best-ranked fact of this product that covers the question."""
    kinds = {"spec", "faq", "suitable", "not_suitable", "selling_point", "qa"}
    ranked = [f for h in hits if h.sku == p.sku and h.kind in kinds if (f := snap.fact(h.fact_id)) is not None]
    # Facts not in the hit list still count (the hit list is short); ranked ones go first.
    pool = ranked + [f for f in _facts(snap, p.sku, kinds) if f not in ranked]
    # A spec the question names ("裙长多少", "含绒量") answers it directly.
    best = next((f for f in pool if f.kind == "spec" and f.key and _names_key(question, f.key)), None)
    if best is None:
        scored = [(coverage(question, [f.text], p), -i, f) for i, f in enumerate(pool)]
        scored = [x for x in scored if x[0] >= MIN_COVERAGE]
        best = max(scored, key=lambda x: (x[0], x[1]))[2] if scored else None
    if best is None:
        return Draft("", refused=True)
    body = render_fact(best)
    if lang == "en":
        return Draft(f"About {p.name}: {_short(body, 90)}", [best])
    return Draft(f"{p.name}：{_short(body)}", [best])


_KEY_ALIASES = {
    "多长": ("裙长", "衣长", "裤长", "长度"),
    "多宽": ("宽度",),
    "多重": ("净含量", "重量"),
    "几克": ("净含量", "重量", "规格"),
    "放几天": ("保质期",),
    "能放多久": ("保质期",),
    "多久过期": ("保质期",),
    "什么做的": ("面料", "材质", "成分", "配料"),
}


def _names_key(question: str, key: str) -> bool:
    if len(key) >= 2 and key in question:
        return True
    return any(k in question and key in alts for k, alts in _KEY_ALIASES.items())


def render_fact(f: Fact) -> str:
    """One fact as a spoken/written clause (also used by the virtual host)."""
    if f.kind == "spec":
        return f"{f.key}是{f.value}。"
    if f.kind in ("faq", "qa"):
        return f.value or f.text
    if f.kind == "suitable":
        return f"适合{f.value}。"
    if f.kind == "not_suitable":
        return f"不建议{f.value}使用。"
    return (f.value or f.text).rstrip("。") + "。"


def compare_answer(snap: LoadedVersion, products: list[Product], question: str, lang: str) -> Draft:
    a, b = products[:2]
    facts = _facts(snap, a.sku, {"price"}) + _facts(snap, b.sku, {"price"})
    parts = []
    # The spec both share that the question is about, else their first shared spec.
    shared = [k for k in a.specs if k in b.specs and a.specs[k] != b.specs[k]]
    asked = [k for k in shared if coverage(question, [k], None) >= 1.0 and k in question] or shared[:1]
    for k in asked[:1]:
        facts += [f for f in _facts(snap, a.sku, {"spec"}) + _facts(snap, b.sku, {"spec"}) if f.key == k]
    if lang == "en":
        for p in (a, b):
            seg = f"{p.name} ¥{fmt_price(p.price)}"
            if asked:
                seg += f", {asked[0]}: {p.specs[asked[0]]}"
            parts.append(seg)
        return Draft("; ".join(parts) + ".", facts)
    for p in (a, b):
        seg = f"{p.name}直播价{fmt_price(p.price)}元"
        if asked:
            seg += f"，{asked[0]}{p.specs[asked[0]]}"
        parts.append(seg)
    return Draft("；".join(parts) + "。", facts)


def policy_answer(snap: LoadedVersion, question: str, hits: list[SearchHit], lang: str) -> Draft:
    for h in hits:
        if h.kind not in ("doc", "qa") or (h.kind == "qa" and h.sku):
            continue
        f = snap.fact(h.fact_id)
        if f is None or coverage(question, [f.text]) < MIN_COVERAGE:
            continue
        body = (f.value or f.text) if f.kind == "qa" else _best_sentences(f.value or f.text, question)
        prefix = "Store policy: " if lang == "en" else ""
        return Draft(prefix + _short(body, 80), [f])
    return Draft("", refused=True)


def _best_sentences(chunk: str, question: str) -> str:
    sents = [s for s in re.findall(r"[^。！？\n]+[。！？]?", chunk) if s.strip()]
    if not sents:
        return chunk
    # The sentence sharing the most of the question's words (bigrams) wins; ties keep document order.
    qb = {question[i : i + 2] for i in range(len(question) - 1)}
    best: str = max(sents, key=lambda s: (coverage(question, [s]), sum(b in s for b in qb)))
    return best.strip().lstrip("-• ").strip()


def not_found(lang: str, known: Draft | None = None) -> Draft:
    if lang == "en":
        text = "Good question — I'll check with the host and get back to you."
        if known and known.text:
            text += " What I can tell you: " + known.text
    else:
        text = "这个问题我先记下，稍后请主播帮你确认哦～"
        if known and known.text:
            text += "我能告诉你的是：" + known.text
    return Draft(text, known.facts if known else [], refused=True)
