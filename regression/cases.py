"""Regression cases: what a merchant's viewers ask, and what the answer must (not) say.

``generate(catalog)`` reads everything from the catalog and the cross-category attribute book
(``knowledge/data/attributes.json``) — no table of demo products or categories:

- per product: its price (and each option's price), its stock, one question per spec and per FAQ,
  a comparison with its nearest sibling (same category, closest name), and "unanswerable" probes:
  attributes that other products of its category state and it does not (the answer must refuse and
  must not borrow the sibling's value);
- per store Q&A pair: its question.

Case ids are stable (``spec:SKU:key``), so the set generated from the published version can be
*rebased* on a draft (``rebase``): a case whose source the draft still has takes the draft's value (a
deliberate edit moves its expectation), one whose source the draft lost keeps the old expectation (a
spec deleted by mistake now fails), and a price that jumps more than 2× or below half, or above the
list price, keeps the old one too (a typo like 129 → 1290 fails until an owner confirms it).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from knowledge.attributes import AttributeBook, load_attributes
from knowledge.facts import fmt_price, product_facts
from knowledge.schema import Catalog, Product

Source = Literal["generated", "review", "manual"]
Status = Literal["same", "updated", "kept", "suspect", "retired", "new"]

PRICE_JUMP = 2.0  # a live price that moves by more than this factor is treated as a typo until confirmed
PROBES_PER_PRODUCT = 2
VARIANTS_PER_PRODUCT = 3
HEAD_CHARS = 16  # how much of a long value / FAQ answer the answer must contain
_CLAUSE = re.compile(r"[，。；;！？,!?\n（(]")


class Case(BaseModel):
    id: str
    source: Source = "generated"
    kind: str  # price | variant_price | stock | spec | faq | qa | compare | probe | manual | review
    question: str = Field(min_length=1, max_length=200)
    sku: str | None = None
    must_contain: list[str] = Field(default_factory=list)
    must_contain_any: list[str] = Field(default_factory=list)
    must_not_contain: list[str] = Field(default_factory=list)
    must_refuse: bool = False
    expected_answer: str = ""  # a corrected review's answer, shown beside the agent's
    note: str = ""
    origin: dict[str, Any] = Field(default_factory=dict)  # what in the catalog the case was generated from
    created_by: str = ""
    at: float = 0.0


class Verdict(BaseModel):
    passed: bool
    refused: bool
    reasons: list[str] = Field(default_factory=list)


# --- judging --------------------------------------------------------------------------------------
def norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").lower().split())


def contains(text: str, value: str) -> bool:
    """Substring on the NFKC-folded text; a value that starts/ends with a digit must not sit inside a
    longer number ("99" is not in "199元", "5" not in "1.5m")."""
    t, v = norm(text), norm(value)
    if not v:
        return True
    pre = r"(?<![\d.])" if v[:1].isdigit() else ""
    post = r"(?!\d|\.\d)" if v[-1:].isdigit() else ""
    return re.search(pre + re.escape(v) + post, t) is not None


def judge(case: Case, answer: str, refused: bool) -> Verdict:
    reasons: list[str] = []
    leaked = [v for v in case.must_not_contain if contains(answer, v)]
    if leaked:
        reasons.append("不应出现：" + "、".join(leaked))
    if case.must_refuse:
        if not refused:
            reasons.append("应当如实说资料里没有，却给出了回答")
    else:
        if refused:
            reasons.append("没有回答（说资料里没有）")
        missing = [v for v in case.must_contain if not contains(answer, v)]
        if missing:
            reasons.append("缺少：" + "、".join(missing))
        if case.must_contain_any and not any(contains(answer, v) for v in case.must_contain_any):
            reasons.append("应包含其一：" + "、".join(case.must_contain_any))
    return Verdict(passed=not reasons, refused=refused, reasons=reasons)


# --- generation -----------------------------------------------------------------------------------
def head(text: str, limit: int = HEAD_CHARS, least: int = 4) -> str:
    """The opening of a value or answer: its first clause (with the next ones while it is shorter than
    ``least``: "可以。" alone says little), at most ``limit`` characters, never cut inside a number or a
    Latin word ("25/26/…/30" is not cut to "…/3")."""
    t = text.strip()
    end = 0
    for m in _CLAUSE.finditer(t):
        end = m.start()
        if len(t[:end].strip()) >= least:
            break
    else:
        end = len(t)
    out = t[:end].strip() or t
    if len(out) > limit:
        cut = limit
        while cut > 0 and out[cut - 1 : cut + 1].isascii() and out[cut - 1 : cut + 1].isalnum():
            cut -= 1
        out = out[: cut or limit]
    return out.strip()


def _grams(s: str) -> set[str]:
    s = norm(s).replace(" ", "")
    return {s[i : i + 2] for i in range(len(s) - 1)} or {s}


def nearest_sibling(
    p: Product, products: Iterable[Product], grams: dict[str, set[str]] | None = None
) -> Product | None:
    """The product of the same category whose name is closest (ties: the closest price)."""
    grams = grams if grams is not None else {}
    mine = grams.get(p.sku) or _grams(p.name)
    best: tuple[float, float, str] | None = None
    pick: Product | None = None
    for o in products:
        if o.sku == p.sku or not p.category or o.category != p.category:
            continue
        g = grams.get(o.sku) or _grams(o.name)
        key = (-len(mine & g) / max(1, len(mine | g)), abs(o.price - p.price), o.sku)
        if best is None or key < best:
            best, pick = key, o
    return pick


def own_values(p: Product) -> set[str]:
    out = {fmt_price(p.price)} | ({fmt_price(p.list_price)} if p.list_price else set())
    out |= {fmt_price(v.price) for v in p.variant_list() if v.price is not None}
    out |= {str(p.stock)} if p.stock is not None else set()
    return out | set(p.specs.values())


def _confusable(values: Iterable[str], p: Product) -> list[str]:
    own = own_values(p)
    return sorted({v for v in values if v and v not in own and not any(v in o for o in own)})


def _qid(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _attrs_of(p: Product, book: AttributeBook) -> set[str]:
    out: set[str] = set()
    for k, v in p.specs.items():
        out.update(book.for_spec(k, v))
    return out


def _key_attr(book: AttributeBook, key: str) -> str | None:
    """The attribute a spec key itself names ("重量", "续航时间"), not one guessed from the value's unit."""
    ids = book.for_spec(key, "")
    return ids[0] if ids else None


def _label(book: AttributeBook, attr: str) -> str:
    a = book.get(attr)
    if a is None:
        return attr
    return (a.key_patterns or a.names_zh or [attr])[0]


def _price_case(p: Product, sib: Product | None) -> Case:
    return Case(
        id=f"price:{p.sku}",
        kind="price",
        sku=p.sku,
        question=f"{p.name}多少钱",
        must_contain=[fmt_price(p.price)],
        must_not_contain=_confusable([fmt_price(sib.price)] if sib else [], p),
        origin={"sku": p.sku, "field": "price", "value": p.price, "list_price": p.list_price},
    )


class _View:
    """What every product's cases look up in the rest of the catalog, computed once per catalog (a
    2,000-product catalog is not scanned again for each product)."""

    def __init__(self, products: list[Product], book: AttributeBook):
        self.book = book
        self.by_cat: dict[str, list[Product]] = {}
        self.grams = {p.sku: _grams(p.name) for p in products}
        self.counts: dict[str, Counter[str]] = {}
        self.values: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (category, attribute) → (sku, value)
        keys: dict[str, str | None] = {}
        for o in products:
            self.by_cat.setdefault(o.category, []).append(o)
            c = self.counts.setdefault(o.category, Counter())
            for k, v in o.specs.items():
                if k not in keys:
                    keys[k] = _key_attr(book, k)
                a = keys[k]
                if a:
                    c[a] += 1
                    self.values.setdefault((o.category, a), []).append((o.sku, v))
        self.order = {a.id: i for i, a in enumerate(book.attributes)}


def product_cases(p: Product, view: _View) -> list[Case]:
    sib = nearest_sibling(p, view.by_cat.get(p.category, []), view.grams)
    out = [_price_case(p, sib)]
    variants = p.variant_list()
    # An option named in the product's own name ("精华液 30ml" with options 30ml / 50ml) is not a
    # question a viewer can ask unambiguously: skip those products' options.
    clash = any(norm(v.name) in norm(p.name) for v in variants)
    for v in [v for v in variants if v.price is not None and not clash][:VARIANTS_PER_PRODUCT]:
        assert v.price is not None
        out.append(
            Case(
                id=f"variant_price:{p.sku}:{v.name}",
                kind="variant_price",
                sku=p.sku,
                question=f"{p.name}{v.name}多少钱",
                must_contain=[fmt_price(v.price)],
                origin={"sku": p.sku, "field": "variant", "key": v.name, "value": v.price},
            )
        )
    if p.stock is not None:
        out.append(
            Case(
                id=f"stock:{p.sku}",
                kind="stock",
                sku=p.sku,
                question=f"{p.name}还有货吗",
                must_contain=[str(p.stock)] if p.stock > 0 else [],
                must_contain_any=["售罄", "缺货", "sold out"] if p.stock == 0 else [],
                origin={"sku": p.sku, "field": "stock", "value": p.stock},
            )
        )
    for k, val in p.specs.items():
        numeric = bool(re.search(r"\d", val))
        out.append(
            Case(
                id=f"spec:{p.sku}:{k}",
                kind="spec",
                sku=p.sku,
                question=f"{p.name}的{k}{'是多少' if numeric else '是什么'}",
                must_contain=[head(val)],
                origin={"sku": p.sku, "field": "spec", "key": k, "value": val},
            )
        )
    for qa in p.faq:
        out.append(
            Case(
                id=f"faq:{p.sku}:{_qid(qa.q)}",
                kind="faq",
                sku=p.sku,
                question=f"{p.name}{qa.q}"[:200],
                must_contain=[head(qa.a)],
                origin={"sku": p.sku, "field": "faq", "key": qa.q, "value": qa.a},
            )
        )
    if sib is not None and fmt_price(sib.price) != fmt_price(p.price):
        cheaper = p if p.price < sib.price else sib
        out.append(
            Case(
                id=f"compare:{p.sku}:{sib.sku}",
                kind="compare",
                sku=p.sku,
                question=f"{p.name}和{sib.name}哪个便宜",
                must_contain=[fmt_price(p.price), fmt_price(sib.price)],
                note=f"便宜的是{cheaper.name}",
                origin={"sku": p.sku, "field": "compare", "key": sib.sku},
            )
        )
    out.extend(_probes(p, view))
    return out


def _probes(p: Product, view: _View) -> list[Case]:
    """Attributes the products of ``p``'s category state by spec key (most often first) and ``p`` neither
    has nor mentions in any of its facts."""
    book, order = view.book, view.order
    has = _attrs_of(p, book)
    said = {a for f in product_facts(p) for a, _ in book.mentioned(f.text)}
    pool = view.counts.get(p.category, Counter())
    picks = [
        a
        for a, _ in sorted(pool.items(), key=lambda kv: (-kv[1], order.get(kv[0], 0)))
        if a not in has
        and a not in said
        and a not in ("price", "stock")
        and (attr := book.get(a)) is not None
        and attr.scope == "product"
    ][:PROBES_PER_PRODUCT]
    out = []
    for a in picks:
        attr = book.get(a)
        assert attr is not None
        others = [v for sku, v in view.values.get((p.category, a), []) if sku != p.sku and len(v) <= 12]
        label = _label(book, a)
        out.append(
            Case(
                id=f"probe:{p.sku}:{a}",
                kind="probe",
                sku=p.sku,
                question=f"{p.name}的{label}{'是多少' if attr.dimensions else '是什么'}",
                must_refuse=True,
                must_not_contain=_confusable(others, p)[:6],
                note=f"{p.name}的资料里没有“{label}”，应如实说没有",
                origin={"sku": p.sku, "field": "probe", "key": a},
            )
        )
    return out


def store_cases(catalog: Catalog) -> list[Case]:
    out = []
    for qs in catalog.qa_sets:
        for pair in qs.pairs:
            out.append(
                Case(
                    id=f"qa:{qs.source}:{_qid(pair.question)}",
                    kind="qa",
                    sku=pair.sku,
                    question=pair.question[:200],
                    must_contain=[head(pair.answer)],
                    origin={"field": "qa", "source": qs.source, "key": pair.question, "value": pair.answer},
                )
            )
    return out


def generate(catalog: Catalog, book: AttributeBook | None = None) -> list[Case]:
    """Every generated case of a catalog, in catalog order."""
    view = _View(catalog.products, book or load_attributes())
    out: list[Case] = []
    for p in catalog.products:
        out.extend(product_cases(p, view))
    return out + store_cases(catalog)


# --- rebasing on a draft ----------------------------------------------------------------------------
def _suspect_price(old: float, new: float, list_price: float | None) -> str | None:
    if old <= 0:
        return None
    if new <= 0:
        return f"直播价从 {fmt_price(old)} 改成了 {fmt_price(new)}"
    if new / old > PRICE_JUMP or old / new > PRICE_JUMP:
        return f"直播价从 {fmt_price(old)} 变成 {fmt_price(new)}（变化超过 {PRICE_JUMP:g} 倍），疑似输错"
    if list_price and new > list_price:
        return f"直播价 {fmt_price(new)} 高于日常价 {fmt_price(list_price)}，疑似输错"
    return None


def rebase(base: list[Case], draft: Catalog, book: AttributeBook | None = None) -> list[tuple[Case, Status, str]]:
    """The set to run on ``draft``: (case, status, why) for every case of ``base`` and every new one.

    same     — the draft generates the same case;
    updated  — the draft changed what the case is about on purpose (its expectation follows the draft);
    suspect  — a price moved implausibly: the old expectation is kept (fails until an owner confirms);
    kept     — the draft lost the case's source (a spec, a FAQ, a product): the old expectation is kept;
    retired  — the case no longer applies (a probe whose attribute the product now has, a new sibling);
    new      — a case the draft adds (nothing to compare it with).
    Hand-added and review cases are kept as they are.
    """
    book = book or load_attributes()
    fresh = {c.id: c for c in generate(draft, book)}
    products = {p.sku: p for p in draft.products}
    out: list[tuple[Case, Status, str]] = []
    seen: set[str] = set()
    for c in base:
        seen.add(c.id)
        if c.source != "generated":
            out.append((c, "same", ""))
            continue
        new = fresh.get(c.id)
        if new is not None:
            if c.kind == "price":
                p = products.get(c.sku or "")
                why = _suspect_price(float(c.origin.get("value") or 0), p.price, p.list_price) if p else None
                if why:  # the old price is still expected, the new one must not be said
                    bad = sorted({*c.must_not_contain, fmt_price(p.price)}) if p else c.must_not_contain
                    out.append((c.model_copy(update={"note": why, "must_not_contain": bad}), "suspect", why))
                    continue
            same = new.model_dump(exclude={"note"}) == c.model_dump(exclude={"note"})
            out.append((new, "same" if same else "updated", "" if same else "草稿修改了这条资料，预期随之更新"))
            continue
        if c.kind in ("probe", "compare"):
            out.append((c, "retired", "商品现在有这项资料" if c.kind == "probe" else "最相近的同类商品变了"))
            continue
        sku = c.origin.get("sku")
        why = f"草稿里没有商品 {sku}" if sku and sku not in products else "草稿删掉了这条资料"
        out.append((c, "kept", why))
    for cid, c in fresh.items():
        if cid not in seen:
            out.append((c, "new", "草稿新增"))
    return out
