"""Grounded answers composed in code, one per question type — no model call, nothing invented.

Each composer takes the parsed question and the catalog, picks the facts that answer it and renders a
short live-room sentence in the viewer's language, citing exactly the facts it used. When the catalog
does not hold the answer the composer says so (``refused``) instead of offering a nearby fact as one.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from agent import fact_ranker
from agent.understand import (
    Parsed,
    advises_against,
    asks_existence,
    asks_yes_no,
    function_words_of,
    negated,
    plain_comparative,
    points_elsewhere,
    residual,
    without_grams,
)
from knowledge.attributes import Quantity, parse_quantities, value_ranges
from knowledge.facts import fmt_price
from knowledge.glosses import english_words, stem
from knowledge.lexicon import CatalogLexicon
from knowledge.schema import Fact, Product, SearchHit, Variant
from knowledge.store import LoadedVersion
from knowledge.text import normalize

log = logging.getLogger("liveroom.agent")

FAQ_MIN = 0.5  # share of the question's topic words a FAQ/fact must cover to answer it
DENSE_FAQ_MIN = 0.62  # cosine of question vs. fact for cross-language FAQ matches
DENSE_SPEC_MIN = 0.66
FAQ_SIM_GAP = 0.12  # how far a FAQ's meaning must stand above every other fact to answer in other words  # … and for a spec the question describes in other words ("烟酰胺浓度" → 主要成分)
_SENT = re.compile(r"[^。！？!?\n]+[。！？!?]?")
_HEADING = re.compile(r"【([^】]*)】")  # a store document chunk opens with its section path


@dataclass
class Draft:
    text: str
    facts: list[Fact] = field(default_factory=list)
    refused: bool = False


def short(text: str, limit: int = 70) -> str:
    if len(text) <= limit:
        return text
    cut = max(text.rfind(p, 0, limit) for p in "。！？；，,.")
    return text[: cut + 1] if cut > 10 else text[:limit] + "…"


def _of(snap: LoadedVersion, sku: str, kinds: set[str]) -> list[Fact]:
    return [f for f in snap.index.facts_of(sku) if f.kind in kinds]


def _cov(terms: Sequence[str], text: str, weights: dict[str, float] | None = None) -> float:
    """Share of the question's topic words a text contains; a longer word half-counts when only part
    of it is there ("戴过" vs "使用过" no, "坐地铁" vs "地铁" yes). ``weights`` make a word every
    candidate shares ("露营" in a camping shop) count for less than the one that tells them apart."""
    if not terms:
        return 0.0
    blob = normalize(text)
    got = total = 0.0
    for t in terms:
        w = weights.get(t, 1.0) if weights else 1.0
        total += w
        if t in blob:
            got += w
        elif len(t) >= 3 and any(t[i : i + 2] in blob for i in range(len(t) - 1)):
            got += 0.5 * w
    return got / total if total else 0.0


def _term_weights(terms: Sequence[str], blobs: Sequence[str]) -> dict[str, float]:
    """Inverse document frequency of each term over the candidates' texts, scaled so the mean is 1; a
    term no candidate has tells none apart and weighs nothing."""
    if len(blobs) < 3:
        return {}
    n = len(blobs)
    df = {t: sum(1 for b in blobs if t in b) for t in terms}
    raw = {t: math.log((n + 1) / (0.5 + d)) for t, d in df.items() if d}
    if not raw:
        return {}
    mean = sum(raw.values()) / len(raw) or 1.0
    return {t: max(0.05, raw[t] / mean) if t in raw else 0.0 for t in terms}


def render_fact(f: Fact) -> str:
    """One fact as a spoken/written clause (also used by the virtual host)."""
    if f.kind == "spec":
        return (
            f"{f.key}{'' if (f.value or '')[:1].isdigit() or (f.value or '')[:1] in '≥≤<>约~+-' else '是'}{f.value}。"
        )
    if f.kind in ("faq", "qa"):
        return f.value or f.text
    if f.kind == "variant":
        return f"{f.key}直播价{f.value}元。" if f.value else f"可选{f.key}。"
    if f.kind == "suitable":
        return f"适合{f.value}。"
    if f.kind == "not_suitable":
        return f"不建议{f.value}使用。"
    return (f.value or f.text).rstrip("。") + "。"


def key_label(lex: CatalogLexicon, sku: str, key: str, lang: str) -> str:
    """A spec key as the viewer's language names it: the attribute's English name for English answers
    ("重量" → "weight"), the merchant's own key otherwise."""
    if lang != "en":
        return key
    for a in lex.attributes_of(sku, key):
        attr = lex.book.get(a)
        if attr is not None and attr.names_en:
            return attr.names_en[0]
    return key


def render_fact_en(f: Fact, lex: CatalogLexicon) -> str:
    """An English clause for a fact; values stay as the merchant wrote them."""
    if f.kind == "spec" and f.sku and f.key:
        return f"{key_label(lex, f.sku, f.key, 'en')}: {f.value}."
    if f.kind == "variant":
        return f"{f.key}: ¥{f.value}." if f.value else f"available in {f.key}."
    if f.kind == "suitable":
        return f"suits {f.value}."
    if f.kind == "not_suitable":
        return f"not recommended for {f.value}."
    return render_fact(f)


def not_found(lang: str, what: str = "", known: Draft | None = None) -> Draft:
    if lang == "en":
        text = "Good question — that isn't in our product info, I'll check with the host and get back to you."
        if known and known.text:
            text += " What I can tell you: " + known.text
    else:
        text = (f"资料里没有写{what}，" if what else "这个问题") + "我先记下，稍后请主播帮你确认哦～"
        if known and known.text:
            text += "我能告诉你的是：" + known.text
    return Draft(text, known.facts if known else [], refused=True)


# --- price and stock ---------------------------------------------------------------------------
def price(snap: LoadedVersion, p: Product, lang: str, variant: Variant | None = None) -> Draft:
    facts = _of(snap, p.sku, {"price"})
    vfacts = {f.key: f for f in _of(snap, p.sku, {"variant"})}
    amount = p.price
    label = p.name
    if variant is not None and variant.price is not None:
        amount, label = variant.price, f"{p.name}（{variant.name}）"
        facts = [vfacts[variant.name]] if variant.name in vfacts else facts
    if lang == "en":
        text = f"Tonight's live price for {label} is ¥{fmt_price(amount)}"
        if variant is None and p.list_price and p.list_price > p.price:
            text += f" (regular ¥{fmt_price(p.list_price)})"
        text += "."
    else:
        text = f"{label}今晚直播价{fmt_price(amount)}元"
        if variant is None and p.list_price and p.list_price > p.price:
            text += f"，日常价{fmt_price(p.list_price)}元"
        text += "。"
    if variant is None:
        # Options priced differently from the headline price are named, so nobody pays a surprise.
        # (An option the product's own name already is — "30ml" of "精华液 30ml" — is the headline product.)
        own = normalize(p.name)
        other = [
            v
            for v in p.variant_list()
            if v.price is not None and abs(v.price - p.price) > 1e-9 and normalize(v.name) not in own
        ]
        if other:
            facts += [vfacts[v.name] for v in other if v.name in vfacts]
            bits = [f"{v.name} ¥{fmt_price(v.price or 0)}" for v in other[:3]]
            text += (" Options: " if lang == "en" else "其中") + "，".join(bits) + ("." if lang == "en" else "。")
    stock_n = variant.stock if variant is not None and variant.stock is not None else p.stock
    if stock_n == 0:
        facts += _of(snap, p.sku, {"stock"})
        text += " It is sold out right now." if lang == "en" else "目前缺货，已经售罄啦。"
    return Draft(text, facts)


def stock(snap: LoadedVersion, p: Product, lang: str, variant: Variant | None = None) -> Draft:
    n = variant.stock if variant is not None and variant.stock is not None else p.stock
    facts = _of(snap, p.sku, {"variant"} if variant is not None and variant.stock is not None else {"stock"})
    if n is None or not facts:
        return not_found(lang, "库存" if lang != "en" else "", price(snap, p, lang, variant))
    name = p.name + (f"（{variant.name}）" if variant else "")
    if lang == "en":
        return Draft(f"{name} is sold out right now." if n == 0 else f"{name}: {n} in stock right now.", facts)
    return Draft(f"{name}目前缺货，已经售罄啦。" if n == 0 else f"{name}现在有货，库存{n}件。", facts)


# --- one product's details -----------------------------------------------------------------------
def _attr_label(lex: CatalogLexicon, attr: str, lang: str) -> str:
    a = lex.book.get(attr)
    if a is None:
        return ""
    names = a.names_en if lang == "en" else a.names_zh
    return names[0] if names else ""


def _detail_candidates(
    snap: LoadedVersion,
    lex: CatalogLexicon,
    q: Parsed,
    p: Product,
    qvec: np.ndarray | None,
    terms: list[str] | None = None,
) -> list[tuple[float, Fact]]:
    t = normalize(q.text)
    facts = snap.index.facts_of(p.sku)
    out: list[tuple[float, Fact]] = []
    asked = [a for a in q.attributes if a not in ("price", "stock")]
    terms = residual(q.text, lex, [p]) if terms is None else terms
    names = [normalize(n) for a in asked if (attr := lex.book.get(a)) for n in attr.names_zh + attr.names_en]
    for rank, a in enumerate(asked):
        for k in lex.keys_for(p.sku, a):
            f = _spec_fact(snap, p.sku, k)
            if f is not None:
                # "敏感肌能用吗": a skin-type spec that doesn't mention 敏感肌 does not answer it.
                # Otherwise the attribute is the question ("重不重", "多大"): its spec answers it.
                need = terms if q.intent == "suitability" or asks_existence(q.text) else []
                fits = not need or _cov(need, f.text) > 0
                # Several specs of the attribute ("面料", "填充物"): the one sharing the question's words.
                # One that shares none of the question's other words ("黄皮涂显白吗" vs 色号) yields to a FAQ that does.
                base = 1.2 if not terms or _cov(terms, f.text) > 0 else 0.95
                out.append(((base - 0.05 * rank + 0.1 * _cov(terms, f.text)) if fits else 0.4, f))
    # "一天能定几顿": a spec stating a number in the very unit asked ("每天最多8餐") answers it.
    units = lex.book.asked_units(q.text)
    if units:
        for f in facts:
            if f.kind == "spec" and any(x.unit in units for x in parse_quantities(f.value or "", lex.book)):
                out.append((1.15, f))
    spelled = q.keys_of(p.sku)
    for f in facts:
        if f.kind == "spec" and f.key and f.key in spelled:
            out.append((1.25 if normalize(f.key) in t else 1.1, f))
    # A spec filed under another key that still states the asked attribute ("电池": "…续航约40小时").
    said = [normalize(n) for n in names if len(n) >= 2 and re.search(r"[\u4e00-\u9fff]", n)]
    for f in facts:
        if f.kind == "spec" and not any(f is g for _, g in out) and any(n in normalize(f.value or "") for n in said):
            out.append((0.9, f))
    # A spec under a word the asked attribute's own names use ("电池" in "电池能撑多久") that states a
    # quantity of that attribute's kind ("电池": "4000mAh，充满用约30天" for how long a charge lasts).
    for a in asked:
        attr = lex.book.get(a)
        if attr is None or not attr.dimensions:
            continue
        for f in facts:
            k = normalize(f.key or "")
            if f.kind != "spec" or len(k) < 2 or any(f is g for _, g in out):
                continue
            if any(k in normalize(n) for n in attr.names_zh) and any(
                x.dimension in attr.dimensions for x in parse_quantities(f.value or "", lex.book)
            ):
                out.append((0.95, f))
    kinds = {"faq", "qa", "selling_point", "suitable", "not_suitable", "spec"}
    if q.variants:
        kinds.add("variant")
    pool = [f for f in facts if f.kind in kinds]
    sims = snap.index.similarity(qvec, [f.id for f in pool]) if qvec is not None else [0.0] * len(pool)
    lexical_blind = q.lang == "en" or not re.search(r"[\u4e00-\u9fff]", " ".join(terms)) and not terms
    # The product's own FAQ that means what was asked, clearly more than any other fact ("两条能拼一起吗"
    # ~ "两条能拼成双人的吗"), answers it in other words.
    ranked_sims = sorted(sims, reverse=True)
    own_text = strip_own_name(q.text, p)
    clear_faq = ranked_sims[0] - (ranked_sims[1] if len(ranked_sims) > 1 else 0.0) >= FAQ_SIM_GAP if sims else False
    for f, sim in zip(pool, sims):
        if f.kind in ("faq", "qa"):
            cov = max(_cov(terms, f.key or ""), 0.8 * _cov(terms, f.text))
        elif f.kind in ("suitable", "not_suitable"):
            items = (f.value or "").split("、")
            cov = max((_cov(terms, it) for it in items), default=0.0)
            # …or who it suits is what the question names ("干皮能用吗" vs "适合：干皮"), product words aside
            cov = max(cov, _cov([x for it in items for x in residual(it, lex)], " ".join(terms)) * 0.9)
        else:
            cov = _cov(terms, f.text)
        score = cov
        if q.intent == "suitability" and f.kind in ("suitable", "not_suitable", "faq", "qa") and cov > 0:
            score += 0.3
        # Meaning alone answers only where words cannot be compared (English over Chinese facts, or a
        # question whose topic words were all product words): in Chinese, "孕妇能用吗" must find 孕妇.
        if (
            f.kind in ("faq", "qa")
            and clear_faq
            and sim >= ranked_sims[0]
            and sim >= DENSE_FAQ_MIN - 0.1
            and not asks_existence(q.text)  # "有没有背光" needs a fact naming 背光
            and _shares_bigram(own_text, f.key or "")
            and not any(len(t) >= 3 and t not in normalize(f.text) for t in terms)  # "医保卡" unmet
        ):
            score = max(score, sim)
        if lexical_blind:
            if f.kind in ("faq", "qa") and sim >= DENSE_FAQ_MIN:
                score = max(score, sim + 0.2)
            elif f.kind == "spec" and sim >= DENSE_SPEC_MIN:
                score = max(score, sim)
        if score >= FAQ_MIN:
            out.append((score, f))
    out.sort(key=lambda x: -x[0])
    return out


_PARTICLES = re.compile(r"[吗呢吧啊呀嘛哦么的了]|^[能可会要]")  # grammar, or a modal ("能用", "可以")


def strip_own_name(text: str, p: Product) -> str:
    t = normalize(text)
    for n in sorted({normalize(x) for x in [p.name, p.series or "", *p.aliases] if x}, key=len, reverse=True):
        t = t.replace(n, " ")
    return t


def _shares_bigram(a: str, b: str) -> bool:
    """Whether two Chinese questions share a two-character word that is not grammar ("两条" in "两条能拼一起吗"
    and "两条能拼成双人的吗"; "吃吗" does not count)."""
    return bool(_content_bigrams(normalize(a)) & _content_bigrams(normalize(b)))


def _content_bigrams(t: str) -> set[str]:
    """Every two-character Chinese window of ``t`` that is not grammar."""
    return {
        t[i : i + 2]
        for i in range(len(t) - 1)
        if re.fullmatch(r"[\u4e00-\u9fff]{2}", t[i : i + 2]) and not _PARTICLES.search(t[i : i + 2])
    }


def _asked_dims(q: Parsed, lex: CatalogLexicon) -> frozenset[str]:
    """The kind of quantity asked: the asked attribute's own ("how long is the wand" asked a length),
    else what the question's interrogative says."""
    asked = [a for a in q.attributes if a not in ("price", "stock")]
    attr = lex.book.get(asked[0]) if asked else None
    if attr is not None and attr.dimensions:  # the first asked only: "电芯是哪家的" asks a brand, no quantity
        return frozenset(attr.dimensions)
    if attr is not None:
        return frozenset()
    return fact_ranker.asked_dimensions(q.text, lex.book)


def detail_features(
    snap: LoadedVersion, lex: CatalogLexicon, q: Parsed, p: Product, qvec: np.ndarray | None
) -> tuple[list[Fact], np.ndarray]:
    """The product's facts that could answer a detail question and their ranker features (also what
    ``evals.train_ranker`` learns from)."""
    terms = residual(q.text, lex, [p])
    heur: dict[str, float] = {}
    for score, f in _detail_candidates(snap, lex, q, p, qvec, terms):
        heur[f.id] = max(heur.get(f.id, 0.0), score)
    kinds = {"faq", "qa", "selling_point", "suitable", "not_suitable", "spec"} | ({"variant"} if q.variants else set())
    pool = [f for f in snap.index.facts_of(p.sku) if f.kind in kinds]
    sims = snap.index.similarity(qvec, [f.id for f in pool]) if qvec is not None else [0.0] * len(pool)
    asked = [a for a in q.attributes if a not in ("price", "stock")]
    keys: dict[str, float] = {}
    for rank, a in enumerate(asked):
        for k in lex.keys_for(p.sku, a):
            keys.setdefault(k, 1.0 if rank == 0 else 0.5)
    for k in q.keys_of(p.sku):
        keys[k] = 1.0
    ctx = fact_ranker.Context(
        text=q.text,
        lang=q.lang,
        intent=q.intent,
        terms=terms,
        asked_keys=keys,
        first_absent=bool(asked) and not lex.keys_for(p.sku, asked[0]),
        dims=_asked_dims(q, lex),
    )
    return pool, fact_ranker.feature_rows(ctx, pool, heur, sims, _cov, lex.book)


def _ranked(
    snap: LoadedVersion, lex: CatalogLexicon, q: Parsed, p: Product, qvec: np.ndarray | None
) -> list[tuple[float, Fact]]:
    ranker = fact_ranker.default_ranker()
    if ranker is None:  # no learned weights: the hand-weighted order
        return [x for x in _detail_candidates(snap, lex, q, p, qvec) if x[0] >= FAQ_MIN]
    pool, rows = detail_features(snap, lex, q, p, qvec)
    if not pool:
        return []
    order = ranker.order(rows)
    best = int(order[0])
    conf = ranker.confidence(rows[best])
    if conf < ranker.threshold:
        return []  # the best fact still misses what was asked: not an answer
    f = pool[best]
    # "重不重", "吵不吵": the attribute is the question and its spec answers it
    of_asked = f.kind == "spec" and any(f.key in lex.keys_for(p.sku, a) for a in q.attributes)
    of_asked = of_asked and re.search(r"([\u4e00-\u9fff])[不没]\1", q.text) is not None
    yes_no = asks_yes_no(q.text) and f.kind not in ("faq", "qa") and not of_asked
    if q.lang != "en" and (asks_existence(q.text) or yes_no):
        # "温奶器能定时吗": whether it has a feature is answered only by a fact that names the feature (a
        # FAQ may answer in other words: "两条能拼一起吗" ~ "两条能拼成双人的吗")
        terms = [t for t in residual(q.text, lex, [p]) if re.search(r"[\u4e00-\u9fff]|[a-z]{2}", t)]
        if (
            f.kind == "spec"
            and not asks_existence(q.text)  # "含乳糖吗" needs a fact naming 乳糖, whatever the nutrition spec says
            and (own := _said_names(q, lex, lex.attributes_of(p.sku, f.key or "")[:1]))
        ):
            # "吸奶器声音大吗": the attribute's own name is the question, and its spec answers it
            terms = [t for t in terms if not any(t in n for n in own)]
        if terms and _cov(terms, " ".join(x for x in (f.key, f.value, f.text) if x)) == 0:
            return []
    if q.lang == "en" and asks_existence(q.text) and f.kind not in ("faq", "qa"):
        # "does it contain lactose": the feature's English word must be in the fact's dictionary English
        terms = [
            stem(t)
            for t in residual(q.text, lex, [p])
            if re.fullmatch(r"[a-z]{3,}", t) and stem(t) not in _EXISTENCE_EN
        ]
        said = " ".join(x for x in (f.key, f.value, f.text) if x)
        if terms and not any(t in _glossed(said) or t in normalize(said) for t in terms):
            return []
    return [(conf, pool[best])] + [(0.0, pool[int(i)]) for i in order[1:]]


_EXISTENCE_EN = frozenset({"contain", "include", "have", "come", "support", "there"})


def _said_names(q: Parsed, lex: CatalogLexicon, attrs: Sequence[str]) -> list[str]:
    """The names of these attributes the question says word for word."""
    t = normalize(q.text)
    return [n for a in attrs if (x := lex.book.get(a)) for n in x.names_zh if normalize(n) in t]


def detail(snap: LoadedVersion, lex: CatalogLexicon, q: Parsed, p: Product, qvec: np.ndarray | None) -> Draft:
    """Spec, FAQ or suitability of one product: the fact that answers the question, or an honest
    'not in our info' naming what was asked."""
    cands = _ranked(snap, lex, q, p, qvec)
    if not cands:
        asked = [a for a in q.attributes if a not in ("price", "stock")]
        what = _attr_label(lex, asked[0], q.lang) if asked else ""
        # Say what is known instead: the price, never a neighbouring fact passed off as the answer.
        return not_found(q.lang, f"{p.name}的{what}" if what and q.lang != "en" else "", price(snap, p, q.lang))
    best = cands[0][1]
    body = render_fact(best)
    if q.intent == "suitability" and best.kind in ("suitable", "not_suitable"):
        body = _suitability_sentence(best, q, lex)
    if best.kind in ("faq", "qa"):
        body = _own_clauses(body, p, snap)
    if q.lang == "en":
        return Draft(f"About {p.name}: {short(render_fact_en(best, lex), 90)}", [best])
    return Draft(f"{p.name}：{short(body)}", [best])


def _own_clauses(body: str, p: Product, snap: LoadedVersion) -> str:
    """A FAQ answer written for a family ("3-6岁款刷头29元，6-12岁款刷头35元") told of one product: the
    clauses naming only a sibling's own name word are the sibling's, not this product's."""
    mine = set(normalize(p.name).split())
    kin = [set(normalize(o.name).split()) for o in snap.catalog.products if o.sku != p.sku and o.category == p.category]
    theirs = {w for ws in kin for w in ws if w not in mine and len(w) >= 2}
    own = mine - set().union(*kin) if kin else mine
    if not theirs:
        return body
    parts = [c for c in re.split(r"(?<=[，；。,;])", body) if c]
    kept = [c for c in parts if not any(w in normalize(c) for w in theirs) or any(w in normalize(c) for w in own)]
    if not kept or len(kept) == len(parts):
        return body
    text = "".join(kept).rstrip("，,；;")
    return text if text.endswith("。") else text + "。"


def _suitability_sentence(f: Fact, q: Parsed, lex: CatalogLexicon) -> str:
    items = (f.value or "").split("、")
    terms = residual(q.text, lex)
    hit = max(items, key=lambda it: _cov(terms, it)) if items else f.value or ""
    if f.kind == "not_suitable":
        return f"不建议{hit}使用。"
    return f"适合{hit}。"


# --- comparisons -------------------------------------------------------------------------------
def value_number(v: str) -> float | None:
    qs = [x for x in parse_quantities(v) if x.dimension]
    if qs and v[qs[0].span[1] : qs[0].span[1] + 1] in ("/", "每"):
        return qs[0].base  # a rate ("90mg/100g"): the amount, not what it is per
    if qs:
        return max(x.base for x in qs)
    nums = re.findall(r"\d+(?:\.\d+)?", v)
    return float(nums[-1]) if nums else None


def _spec_fact(snap: LoadedVersion, sku: str, key: str) -> Fact | None:
    return next((f for f in snap.index.facts_of(sku) if f.kind == "spec" and f.key == key), None)


def compare(
    snap: LoadedVersion, lex: CatalogLexicon, q: Parsed, prods: Sequence[Product], qvec: np.ndarray | None = None
) -> Draft:
    """Both values of the asked attribute and which wins in the asked direction; with no attribute
    asked, the price and the specs in which they differ."""
    a, b = prods[0], prods[1]
    lang = q.lang
    # An attribute word inside the products' own names ("S码和M码…": 码) is not what is compared.
    said = {x for x, _ in lex.book.mentioned(without_grams(q.text, a.name, b.name))}
    attrs = [x for x in q.attributes if x in said] + [x for x in q.attributes if x not in said]
    asked = attrs[0] if attrs else None
    if asked is None and qvec is not None and residual(q.text, lex, [a, b]):
        # "豆腐砂和混合砂哪个能冲马桶": no attribute the book knows — each product's own answer, side by side
        da, db = detail(snap, lex, q, a, qvec), detail(snap, lex, q, b, qvec)
        if not da.refused and not db.refused:
            return Draft(da.text.rstrip("。.") + ("; " if lang == "en" else "；") + db.text, da.facts + db.facts)
    rows: list[tuple[str, str, str, Fact | None, Fact | None]] = []  # (label, value a, value b, fact a, fact b)
    price_asked = asked == "price" or (asked is None and re.search(r"钱|价|贵|便宜|price|cost|cheap", q.text, re.I))
    spelled = [k for k in q.keys_of(a.sku) if k in b.specs and k in a.specs]
    if spelled:  # "1段和2段哪个DHA高": the spec key both say, spelled out, before the attribute's first key
        k = max(spelled, key=len)
        rows.append((k, a.specs[k], b.specs[k], _spec_fact(snap, a.sku, k), _spec_fact(snap, b.sku, k)))
    if asked and asked not in ("price", "stock") and not rows:
        for ka in lex.keys_for(a.sku, asked):
            kb = next((k for k in lex.keys_for(b.sku, asked) if k == ka), None) or next(
                iter(lex.keys_for(b.sku, asked)), None
            )
            if kb:
                rows.append((ka, a.specs[ka], b.specs[kb], _spec_fact(snap, a.sku, ka), _spec_fact(snap, b.sku, kb)))
                break
    if not rows and not price_asked:
        shared = [k for k in a.specs if k in b.specs and a.specs[k] != b.specs[k]]
        if not shared:  # siblings that name the same thing differently: pair by attribute
            for ka in a.specs:
                for attr in lex.attributes_of(a.sku, ka):
                    kb = next(iter(lex.keys_for(b.sku, attr)), None)
                    if kb and a.specs[ka] != b.specs[kb]:
                        shared.append(ka)
                        break
        for k in shared[:2]:
            kb = k if k in b.specs else next(iter(lex.keys_for(b.sku, lex.attributes_of(a.sku, k)[0])), k)
            if kb in b.specs:
                rows.append((k, a.specs[k], b.specs[kb], _spec_fact(snap, a.sku, k), _spec_fact(snap, b.sku, kb)))
    va, vb = q.variants.get(a.sku), q.variants.get(b.sku)
    pa = va.price if va and va.price is not None else a.price
    pb = vb.price if vb and vb.price is not None else b.price
    na = a.name + (f"（{va.name}）" if va else "")
    nb = b.name + (f"（{vb.name}）" if vb else "")
    facts: list[Fact] = _of(snap, a.sku, {"price", "variant"}) + _of(snap, b.sku, {"price", "variant"})
    for _, _, _, fa, fb in rows:
        facts += [f for f in (fa, fb) if f is not None]
    winner = None
    direction = q.direction
    attr_for_winner = None if spelled else asked  # a spelled key is its own label ("DHA更高")
    plain = None
    if rows and spelled and direction is None:
        plain = plain_comparative(q.text)
        direction = plain[0] if plain else None
    if rows:
        label, xa, xb, _, _ = rows[0]
        if direction is None:
            attrs = lex.attributes_of(a.sku, label)
            attr_for_winner = attr_for_winner or (attrs[0] if attrs else None)
            book_attr = lex.book.get(attr_for_winner) if attr_for_winner else None
            direction = book_attr.better if book_attr else None
        na_, nb_ = value_number(xa), value_number(xb)
        if direction and na_ is not None and nb_ is not None and na_ != nb_:
            winner = na if (na_ > nb_) == (direction == "more") else nb
    elif price_asked and pa != pb:
        winner = na if (pa < pb) == (direction != "more") else nb
    if lang == "en":
        labels = [key_label(lex, a.sku, r[0], "en") for r in rows]
        parts = [f"{na}: ¥{fmt_price(pa)}" + "".join(f", {lb} {r[1]}" for lb, r in zip(labels, rows))]
        parts.append(f"{nb}: ¥{fmt_price(pb)}" + "".join(f", {lb} {r[2]}" for lb, r in zip(labels, rows)))
        text = "; ".join(parts) + "."
        if winner:
            text += f" {winner} comes out ahead on {'price' if not rows else labels[0]}."
        return Draft(text, facts)
    parts = [f"{na}直播价{fmt_price(pa)}元" + "".join(f"，{_kv(r[0], r[1])}" for r in rows)]
    parts.append(f"{nb}直播价{fmt_price(pb)}元" + "".join(f"，{_kv(r[0], r[2])}" for r in rows))
    text = "；".join(parts) + "。"
    if winner:
        word = _direction_word(lex, attr_for_winner if rows else "price", direction, rows[0][0] if rows else "价格")
        if plain:
            word = f"的{rows[0][0]}更{plain[1]}"
        text += f"{winner}{word}。"
    return Draft(text, facts)


def _kv(key: str, value: str) -> str:
    """ "DHA" + "DHA 90mg/100g" is said once: a value that starts with its key stands alone."""
    return value if normalize(value).startswith(normalize(key)) else f"{key}{value}"


def _direction_word(lex: CatalogLexicon, attr: str | None, direction: str | None, label: str) -> str:
    a = lex.book.get(attr) if attr else None
    words = (a.more_words if direction == "more" else a.less_words) if a else []
    word = next((w for w in words if w.startswith("更") and len(w) <= 4), None)
    if word:
        return word
    return f"的{label}{'更高' if direction == 'more' else '更低'}"


# --- recommendations ---------------------------------------------------------------------------
def recommend(
    snap: LoadedVersion,
    lex: CatalogLexicon,
    q: Parsed,
    candidates: Sequence[Product],
    hits: Sequence[SearchHit],
    qvec: np.ndarray | None = None,
    interests: Sequence[str] = (),
) -> Draft:
    """Rank candidates by the viewer's stated need against who each suits, its selling points and specs,
    and say why with one fact of the chosen product."""
    if not candidates:
        return not_found(q.lang)
    unwanted = negated(q.text)  # "不用充电的头灯": 充电 is what the viewer does not want
    negators = set(function_words_of("negators_zh"))
    negators |= set(function_words_of("desire_zh"))  # "推荐", "想买": the asking, not the need
    terms = [t for t in residual(q.text, lex) if t not in unwanted and t not in negators]
    terms += [t for i in interests for t in residual(i, lex)]
    terms += [k for t in terms for k in sorted(lex.kinds.get(t, ())) if k not in terms]  # 金毛 → 大型犬
    n_terms = max(1, len(terms) + len(unwanted))
    retrieved: dict[str, float] = {}
    for h in hits:
        if h.sku and h.sku not in retrieved:
            retrieved[h.sku] = 0.8 ** len(retrieved)
    asked = next((a for a in q.attributes if a != "stock"), None)
    scored: list[tuple[float, Product, Fact | None]] = []
    values: dict[str, float] = {}
    # "不用充电的" reads as a direction on charging; only a comparative says the viewer wants more or less
    if asked and q.direction and not (unwanted and not re.search("最|更|越", q.text)):
        for p in candidates:
            if asked == "price":
                values[p.sku] = p.price
            else:
                k = next(iter(lex.keys_for(p.sku, asked)), None)
                v = value_number(p.specs[k]) if k else None
                if v is not None:
                    values[p.sku] = v
    # What the viewer says of themselves in numbers ("狗狗8岁了", "我家狗20斤", "身高160"), not a product's own size
    named_qty = {(x.dimension, round(x.base, 3)) for p in candidates for x in lex.entries[p.sku].name_qty}
    stated = [x for x in q.quantities if x.dimension and (x.dimension, round(x.base, 3)) not in named_qty]
    name_words = {p.sku: _name_words(p) for p in candidates}
    pitch: dict[str, list[tuple[float, float, Fact]]] = {}  # sku → its selling points, by fit to the need
    blobs = [
        normalize(" ".join([p.name, *(f.value or f.text for f in snap.index.facts_of(p.sku))])) for p in candidates
    ]
    weights = _term_weights(terms, blobs)
    for p in candidates:
        own = snap.index.facts_of(p.sku)
        fit, fit_fact = _range_fit(stated, [f for f in own if f.kind in ("spec", "suitable")], lex)
        facts = [f for f in own if f.kind in ("suitable", "selling_point", "spec", "faq", "summary")]
        ns = [f for f in own if f.kind == "not_suitable"]
        sims = (
            snap.index.similarity(qvec, [f.id for f in facts + ns])
            if qvec is not None
            else [0.0] * (len(facts) + len(ns))
        )
        others = {w for sku, ws in name_words.items() if sku != p.sku for w in ws} - name_words[p.sku]
        best_f, best_fc, best_c, against = None, 0.0, 0.0, 0.0
        pitch[p.sku] = []
        for f, sim in zip(facts, sims):
            pro, con = _clauses(f.value or f.text, others)
            c = _cov(terms, pro, weights) * len(terms) / n_terms * (1.2 if f.kind == "suitable" else 1.0)
            c += max(0.0, sim - 0.35) + sum(1.0 for ph in unwanted.values() if ph in normalize(pro)) / n_terms
            against = max(against, _cov(terms, con, weights) * len(terms) / n_terms)
            best_c = max(best_c, c)
            if f.kind == "selling_point":
                pitch[p.sku].append((c, float(sim), f))
            if f.kind != "summary" and c > best_fc:
                best_f, best_fc = f, c
        penalty = max(
            (_cov(terms, f.value or "", weights) + max(0.0, sim - 0.35) for f, sim in zip(ns, sims[len(facts) :])),
            default=0.0,
        )
        penalty = max(penalty, against) + 0.5 * _has_unwanted(own, unwanted)
        s = best_c + 0.3 * retrieved.get(p.sku, 0.0) - 0.8 * penalty + 0.15 * _cov(terms, p.name)
        if fit > 0:  # "8岁" inside "适用年龄 7岁以上": the range says it suits
            s += 1.0
            best_f = fit_fact
        elif fit < 0:  # a range of the same kind that leaves the viewer out
            s -= 0.8
        if values and p.sku in values:
            order = sorted(values.values(), reverse=q.direction == "more")
            s += 0.8 * (1.0 - order.index(values[p.sku]) / max(1, len(order) - 1))
            k = "价格" if asked == "price" else next(iter(lex.keys_for(p.sku, asked or "")), None)
            if k and k != "价格":
                best_f = _spec_fact(snap, p.sku, k) or best_f
        scored.append((s, p, best_f))
        log.debug("recommend %s %.2f (fit %.2f, against %.2f) %s", p.sku, s, best_c, penalty, best_f and best_f.value)
    scored.sort(key=lambda x: -x[0])
    s, p, reason = scored[0]
    if reason is None:  # nothing matched the need: the product's first selling point, cited like any fact
        reason = next((f for f in snap.index.facts_of(p.sku) if f.kind == "selling_point"), None)
    facts = _of(snap, p.sku, {"price"}) + ([reason] if reason else [])
    why = render_fact(reason).rstrip("。") if reason else ""
    # Who it suits says why; the selling point nearest the need says what it has (the merchant's own
    # pitch), else the spec no sibling shares.
    points = sorted((x for x in pitch.get(p.sku, []) if x[2] != reason), key=lambda x: (-x[0], -x[1]))
    mark = points[0][2] if points and reason is not None and reason.kind != "selling_point" else None
    spec = _distinctive_spec(snap, p, candidates)
    for extra in (mark, spec):
        if extra is not None and extra != reason and extra not in facts:
            facts.append(extra)
            why = "，".join(x for x in (why, render_fact(extra).rstrip("。")) if x)
    if q.lang == "en":
        return Draft(f"I'd suggest {p.name}: ¥{fmt_price(p.price)} tonight" + (f" — {why}." if why else "."), facts)
    # The why is its own sentence: merchant words the claim checker must drop ("入门首选") take only it.
    return Draft(f"推荐你看看{p.name}，直播价{fmt_price(p.price)}元。" + (f"{short(why, 64)}。" if why else ""), facts)


def _name_words(p: Product) -> set[str]:
    """The words of a product's names long enough to name it on their own ("棉睡袋")."""
    return {w for n in [p.name, p.series or "", *p.aliases] for w in normalize(n).split() if len(w) >= 3}


def _clauses(text: str, others: set[str]) -> tuple[str, str]:
    """A fact's clauses that speak for the product, and those that advise against it ("山里风大不建议");
    a clause that names another product ("夏天请选棉睡袋") speaks for neither."""
    pro: list[str] = []
    con: list[str] = []
    for c in re.split(r"[，,。；;！!？?]", text):
        if any(w in normalize(c) for w in others):
            continue
        (con if advises_against(c) else pro).append(c)
    return "，".join(pro), "，".join(con)


def _has_unwanted(facts: Sequence[Fact], unwanted: dict[str, str]) -> float:
    """1.0 when the product's own text has a thing the viewer said they do not want ("充电是USB-C" for
    "不用充电的"), unless the text itself negates it ("长线没地方充电")."""
    negators = function_words_of("negators_zh") + ["没"]
    for f in facts:
        t = normalize(f.value or f.text)
        for core in unwanted:
            for m in re.finditer(re.escape(core), t):
                if not any(t[max(0, m.start() - len(n) - 2) : m.start()].find(n) >= 0 for n in negators):
                    return 1.0
    return 0.0


def _range_fit(stated: Sequence[Quantity], facts: Sequence[Fact], lex: CatalogLexicon) -> tuple[int, Fact | None]:
    """+1 and the fact when a range a fact states ("15-30kg", "7岁以上") holds what the viewer stated,
    -1 when ranges of that kind exist and none holds it, 0 when the facts state no such range."""
    if not stated:
        return 0, None
    seen = False
    for f in facts:
        text = f.value or f.text
        units = {u.unit for u in parse_quantities(text, lex.book)}
        for lo, hi, dim in value_ranges(text, lex.book):
            if hi <= lo:
                continue  # a single value ("净含量 2kg") is the product's size, not whom it suits
            for x in stated:
                # counts are of things: "三只猫" is not "最多8餐"
                if x.dimension == dim and (dim != "count" or x.unit in units):
                    seen = True
                    if lo - 1e-9 <= x.base <= hi + 1e-9:
                        return 1, f
    return (-1 if seen else 0), None


def _distinctive_spec(snap: LoadedVersion, p: Product, pool: Sequence[Product]) -> Fact | None:
    """The first spec of ``p`` whose value no sibling of its category shares: what sets it apart."""
    sibs = [x for x in pool if x.sku != p.sku and x.category == p.category]
    for k, v in p.specs.items():
        if (
            sibs
            and all(x.specs.get(k) not in (None, v) for x in sibs if k in x.specs)
            and any(k in x.specs for x in sibs)
        ):
            return _spec_fact(snap, p.sku, k)
    return None


# --- store policies ------------------------------------------------------------------------------
@dataclass
class PolicyCandidate:
    sentence: str  # what would be said: the sentence of a document, or a store Q&A's whole answer
    fact: Fact
    heuristic: float  # the hand-weighted score, -1.0 when its filter dropped the sentence
    row: np.ndarray  # fact_ranker.POLICY_FEATURES


@lru_cache(maxsize=4096)
def _glossed(text: str) -> frozenset[str]:
    """English words CC-CEDICT gives for a store sentence (cached: store documents repeat per question)."""
    return frozenset(english_words(text))


def policy_candidates(
    snap: LoadedVersion,
    lex: CatalogLexicon,
    q: Parsed,
    hits: Sequence[SearchHit],
    qvec: np.ndarray | None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> list[PolicyCandidate]:
    """Every sentence of the retrieved store documents (and store Q&A) with its features (also what
    ``evals.train_ranker`` learns the policy head from)."""
    terms = residual(q.text, lex)
    store_names: list[str] = []
    for a in q.attributes:
        attr = lex.book.get(a)
        if attr is not None and attr.scope == "store":
            # …and the words store documents write it with (its spec-key patterns: "仓发出" for the origin)
            store_names += [normalize(n) for n in attr.names_zh + attr.names_en + attr.key_patterns if len(n) >= 2]
    # A topic word that is one of the asked attribute's everyday names ("快递", "香港") is covered by a
    # sentence using any of its names ("顺丰", "港澳台").
    if q.by_sound:  # "byma": the words are pinyin; the attribute's own names are what was asked
        terms = []
    alias_terms = {t for t in terms if any(t in n for n in store_names)}
    generic = {normalize(k) for a in q.attributes if (attr := lex.book.get(a)) is not None for k in attr.key_patterns}
    instance_terms = {t for t in alias_terms if t in store_names and t not in generic}
    cands = [
        f
        for h in hits
        if (f := snap.fact(h.fact_id)) is not None and (f.kind == "doc" or (f.kind == "qa" and not f.sku))
    ][:8]
    if not cands:
        return []
    sims = snap.index.similarity(qvec, [f.id for f in cands]) if qvec is not None else [0.0] * len(cands)
    split = {
        f.id: [s.strip().lstrip("-•* ").strip() for s in _SENT.findall(f.value or f.text) if s.strip()]
        if f.kind == "doc"
        else [f.value or f.text]
        for f in cands
    }
    # Sentence-level meaning: "能发香港吗" is answered by "港澳台和海外暂不发货" without sharing a word.
    ssim: dict[str, float] = {}
    if embed is not None and qvec is not None:
        todo = [x for x in dict.fromkeys(s for ss in split.values() for s in ss) if x not in lex.sentence_vectors]
        if todo:
            for x, v in zip(todo, embed(todo)):
                lex.sentence_vectors[x] = v
        ssim = {x: float(lex.sentence_vectors[x] @ qvec) for ss in split.values() for x in ss}
    # Topic words weigh by how rare they are in the store's documents: "能用港币付款吗" is about 港币,
    # which no document mentions, more than about 付款, which several do.
    all_sents = [normalize(x) for ss in split.values() for x in ss]
    unsaid_ok = {t for t in instance_terms if any(t in x for x in all_sents)}
    n_sents = max(1, len(all_sents))
    if q.lang == "en":  # English words are counted in the sentences' English glosses
        glosses = [_glossed(x) for ss in split.values() for x in ss]
        weight = {t: math.log(1 + n_sents / (1 + sum(1 for g in glosses if stem(t) in g))) for t in terms}
    else:
        weight = {t: math.log(1 + n_sents / (1 + sum(1 for x in all_sents if t in x))) for t in terms}
    total_w = sum(weight.values()) or 1.0
    ranked_ssim = sorted(ssim.values(), reverse=True)
    top_ssim = ranked_ssim[0] if ranked_ssim else 0.0
    second_ssim = ranked_ssim[1] if len(ranked_ssim) > 1 else 0.0
    qn = normalize(q.text)
    # A sentence about a kind of product the question does not name is a special case ("猫砂单独下单满2件包邮").
    specific_words = {w for w in lex.category_words if len(w) >= 2 and w not in qn}
    dims = fact_ranker.asked_dimensions(q.text, lex.book)
    out: list[PolicyCandidate] = []
    for rank, (f, sim) in enumerate(zip(cands, sims)):
        body = f.value or f.text
        sents = split[f.id]
        # The section a sentence sits under says what it is about ("## 到货时间" over "江浙沪1-2天到").
        # Its own section only: the document's title ("发货与快递") is over every sentence alike.
        m = _HEADING.match(f.text) if f.kind == "doc" else None
        head = normalize(m.group(1).rsplit("/", 1)[1]) if m and "/" in m.group(1) else ""
        for i, s in enumerate(sents):
            ns = normalize(s)
            named = sum(1 for n in store_names if n and (n in ns or n in head))
            # An instance the viewer names ("内蒙古", "顺丰": a name of the attribute, not one of its key words)
            # is half covered by a sentence naming another one ("新疆…"): the sentence saying it comes first;
            # one the store's documents never say ("白条") only by a sentence naming its group ("香港": 港澳台).
            grouped = any(k and (k in ns or k in head) for k in generic)
            c = (
                sum(
                    weight[t]
                    * (1.0 if t in ns or t not in instance_terms else 0.5 if t in unsaid_ok or grouped else 0.0)
                    for t in terms
                    if t in ns or (t in alias_terms and named)
                )
                / total_w
                if terms
                else 0.0
            )
            if q.lang == "en" and terms:  # "ship free to xinjiang": the sentence's words in English (CC-CEDICT)
                gl = _glossed(head + " " + s)
                c = max(c, sum(weight[t] for t in terms if stem(t) in gl) / total_w)
            if q.by_sound:
                c = min(1.0, 0.5 * named)
            elif q.lang == "en" or not terms:  # words cannot be compared: meaning decides
                c = max(c, 1.6 * (ssim.get(s, 0.0) - 0.2))
            sd = fact_ranker.value_dimensions(s, lex.book)
            kept = (
                c >= 0.4
                or (f.kind == "qa" and _cov(terms, f.key or "") >= 0.5)
                or ssim.get(s, 0.0) >= 0.55
                or (bool(named) and not terms and (not dims or bool(sd & dims)))
            )
            score = c + 0.3 * min(named, 1) + 0.3 * sim + 1.2 * max(0.0, ssim.get(s, 0.0) - 0.3) - 0.02 * rank
            if not terms:  # nothing but the attribute asked ("今天下单今天发吗"): the sentence saying more of its names
                score += 0.1 * min(max(named - 1, 0), 2)
            if points_elsewhere(s):
                score -= 0.3  # the section it points to says the rule
            specific = any(w in ns for w in specific_words)
            # "大促期间发货时效延长…": a rule for a time the question does not name is the special case too
            cond = re.search(r"([\u4e00-\u9fffa-z0-9、]{2,10})期间", ns)
            if cond and not any(cond.group(1)[i : i + 2] in qn for i in range(len(cond.group(1)) - 1)):
                score -= 0.35  # …whatever the time it states: the everyday rule is what was asked
            if specific:
                score -= 0.15  # the general rule before the special case, unless the question names the kind
            if dims:  # "多久发货" asks for a time: a sentence stating one answers it, one stating none hardly
                score += 0.2 if sd & dims else -0.1
            key_cov = _cov(terms, f.key or "") if f.kind == "qa" else 0.0
            if f.kind == "qa":
                score = max(score, key_cov + 0.3 * sim)
            heur = score if kept else -1.0
            x = {
                "bias": 1.0,
                "heuristic": max(-1.0, min(heur, 2.0)),
                "heuristic_pass": 1.0 if heur >= 0.45 else 0.0,
                "cov": min(c, 1.5),
                "named": 1.0 if named else 0.0,
                "doc_sim": sim,
                "sent_sim": ssim.get(s, 0.0),
                "sent_sim_rank1": 1.0 if ssim and ssim.get(s, -9.0) >= top_ssim else 0.0,
                "sent_sim_gap": ssim.get(s, 0.0) - (second_ssim if ssim.get(s, -9.0) >= top_ssim else top_ssim),
                "doc_rank": rank / 8,
                "is_qa": 1.0 if f.kind == "qa" else 0.0,
                "qa_key_cov": key_cov,
                "position": i / max(1, len(sents) - 1) if len(sents) > 1 else 0.0,
                "specific": 1.0 if specific else 0.0,
                "dim_match": 1.0 if dims and sd & dims else 0.0,
                "has_number": 1.0 if re.search(r"\d", s) else 0.0,
                "no_terms": 0.0 if terms else 1.0,
                "en": 1.0 if q.lang == "en" else 0.0,
                "by_sound": 1.0 if q.by_sound else 0.0,
            }
            row = np.array([x[k] for k in fact_ranker.POLICY_FEATURES])
            out.append(PolicyCandidate(s if f.kind == "doc" else body, f, heur, row))
    return out


def policy(
    snap: LoadedVersion,
    lex: CatalogLexicon,
    q: Parsed,
    hits: Sequence[SearchHit],
    qvec: np.ndarray | None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> Draft:
    """The store document sentence (or store Q&A) that answers the question, scored by the question's
    topic words and the store attributes it names (shipping, returns …) with their everyday names, their
    meaning, and how general a rule the sentence states — weighed by the learned policy head when its
    weights are there, by hand otherwise."""
    cands = policy_candidates(snap, lex, q, hits, qvec, embed)
    if not cands:
        return not_found(q.lang)
    ranker = fact_ranker.policy_ranker()
    best: PolicyCandidate | None
    if ranker is not None:
        rows = np.vstack([c.row for c in cands])
        best = cands[int(ranker.order(rows)[0])]
        if ranker.confidence(best.row) < ranker.threshold:
            best = None
    else:
        best = max(cands, key=lambda c: c.heuristic)
        if best.heuristic < 0.45:
            best = None
    if best is None:
        return not_found(q.lang)
    prefix = "Store policy: " if q.lang == "en" else ""
    return Draft(prefix + short(best.sentence, 80), [best.fact])
