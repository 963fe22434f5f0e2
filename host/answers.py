"""Grounded answers for question clusters, composed from KB facts in code (the agent's composers,
``agent.compose``, over the question parsed against the catalog lexicon of the KB version), checked by
the one claim checker (``agent.claims``: compliance, numbers, actions, contact, medical, ranking,
politics, other viewers …). Milliseconds, no model call: used for the console's talking points and for
the host's spoken answers when the agent itself can't answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from agent import compliance, compose, understand
from agent.claims import ClaimChecker, ClaimContext, default_checker
from agent.compose import Draft, render_fact  # render_fact: re-exported for host modules
from agent.messages import ToolCallRecord
from audience.coupons import describe
from host.topics import TOPICS, is_store_topic, on_topic, topic
from knowledge.attributes import load_attributes
from knowledge.lexicon import CatalogLexicon
from knowledge.schema import Fact, Product, SearchHit
from knowledge.store import LoadedVersion
from tools.contracts import CouponOffer

log = logging.getLogger("liveroom.host")

# A product's facts that may answer a topic when no spec names it (a FAQ, who it suits, a selling point).
_TOPIC_FACT_KINDS = ("faq", "suitable", "not_suitable", "selling_point", "spec")


@dataclass
class Composed:
    text: str
    facts: list[Fact] = field(default_factory=list)
    refused: bool = False


def short_name(p: Product) -> str:
    """ "暖光 玻尿酸保湿精华液 30ml" → "玻尿酸保湿精华液" (brand word and size dropped) for speech."""
    parts = p.name.split()
    if len(parts) >= 3:
        parts = parts[1:]  # the brand
    if len(parts) >= 2 and any(ch.isdigit() for ch in parts[-1]):
        parts = parts[:-1]  # the size / shade code
    out = " ".join(parts) or p.name
    return out[:20]


def price_facts(
    p: Product | None, offers: Iterable[CouponOffer] = (), facts: Iterable[Fact] = ()
) -> compliance.PriceFacts | None:
    texts = [f.text for f in facts]
    if p is None:
        coupons = [
            compliance.CouponTerms(kind=o.kind, amount=o.amount, discount=o.discount, threshold=o.threshold or 0.0)
            for o in offers
        ]
        return compliance.PriceFacts(coupons=coupons, fact_texts=texts)
    return compliance.PriceFacts.from_product(p, offers, texts)


_COMPLIANCE_RULES = ("absolute", "medical", "scarcity", "price")


def guard(
    text: str,
    p: Product | None,
    facts: Sequence[Fact],
    offers: Sequence[CouponOffer] = (),
    extra: Sequence[str] = (),
    *,
    checker: ClaimChecker | None = None,
) -> str:
    """Every host line through ``agent.claims.ClaimChecker`` (source ``host``): compliance (absolute terms,
    medical claims, scarcity, price claims against the real figures) rewrites or drops sentences; any
    other rule (an ungrounded number, an action or promise claim, contact, ranking, other viewers …) drops
    the whole line. ``extra``: real room data that may ground numbers (the order counter, stock).
    Returns "" if nothing is left."""
    if not text:
        return ""
    offer_texts = [f"{o.title} {describe(o)} {o.amount or ''} {o.threshold or ''}" for o in offers]
    names = [n for n in ([p.name, p.series, p.category, *p.aliases] if p else []) if n]
    ctx = ClaimContext(
        facts=tuple(facts),
        tool_calls=(ToolCallRecord(name="room_data", arguments={}, result=[*extra, *offer_texts]),),
        catalog_names=names,
        real_stock=p.stock if p else None,
        prices=price_facts(p, offers, facts),
        source="host",
    )
    v = (checker or default_checker()).check_text(text, ctx)
    if any(f.split(":")[1] not in _COMPLIANCE_RULES for f in v.flags):
        return ""
    return v.text


@lru_cache(maxsize=256)
def _topic_attributes(name: str) -> tuple[str, ...]:
    """The attribute-book ids (knowledge/data/attributes.json) a topic is about, read from its label
    (保质期 → shelf_life, 面料/厚薄 → material, thickness): the spec keys come from the catalog."""
    t = topic(name)
    return tuple(a for a, _ in load_attributes().mentioned(t.label)) if t is not None else ()


def topic_fact(snap: LoadedVersion, p: Product, topics: frozenset[str]) -> Fact | None:
    """The product fact a topic asks for: a FAQ whose question is on the topic, else a spec of an
    attribute the topic is about (whatever the merchant calls the key) that mentions it, else a
    suitability fact that mentions it."""
    rx = [re.compile("|".join(t.patterns)) for t in TOPICS if t.name in topics]
    if not rx:
        return None
    facts = [f for f in snap.index.facts if f.sku == p.sku]
    for f in facts:
        if f.kind == "faq" and any(r.search(f.key or "") for r in rx):
            return f
    book = load_attributes()
    specs = [f for f in facts if f.kind == "spec" and f.key]
    for t in sorted(topics):
        # a spec of the attribute that also talks about the topic: 适用肤质 "干皮" does not answer 敏感肌
        on = [f for f in specs if on_topic(f.text, frozenset({t}))]
        for attr in _topic_attributes(t):
            f = next((f for f in on if attr in book.for_spec(f.key or "", f.value or "")), None)
            if f is not None:
                return f
    for f in facts:
        if f.kind in ("suitable", "not_suitable") and any(r.search(f.value or "") for r in rx):
            return f
    return None


class ClusterAnswerer:
    """Answer "what are they asking" from the snapshot: product facts for product questions, store
    documents for shop questions, the ledger's offers for coupon questions."""

    def __init__(
        self,
        snapshot: Callable[[], LoadedVersion | None],
        offers: Callable[[str | None], list[CouponOffer]] | None = None,
    ):
        self.snapshot = snapshot
        self.offers = offers or (lambda sku: [])

    def hits(
        self,
        snap: LoadedVersion,
        text: str,
        vec: np.ndarray | None,
        sku: str | None,
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ) -> list[SearchHit]:
        if vec is None:
            if embed is None:
                return []
            vec = embed([text])[0]
        skus = {sku} if sku and snap.product(sku) else None
        try:
            return snap.index.search(text, np.asarray(vec, dtype=np.float32), k=8, skus=skus)
        except Exception:  # a broken index must not take the room down
            log.exception("search failed")
            return []

    def answer(
        self,
        questions: Sequence[str],
        topics: frozenset[str],
        sku: str | None,
        vec: np.ndarray | None = None,
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ) -> Composed:
        snap = self.snapshot()
        if snap is None:
            return Composed("", refused=True)
        p = snap.product(sku) if sku else None
        if "coupon" in topics:
            offers = self._store_offers(sku)
            if offers:
                o = offers[0]
                text = f"现在可以领「{o.title}」，{describe(o)}，在公屏打“领券”就能领～"
                return Composed(guard(text, p, [], offers) or "", [])
            return Composed("", refused=True)
        store = is_store_topic(topics)
        lex = snap.lexicon
        for q in questions[:5]:
            hits = self.hits(snap, q, vec, None if store else sku, embed)
            if store or p is None:
                qvec = self._vec(q, vec, embed)
                d = compose.policy(snap, lex, self._parse(q, "policy", snap, lex, hits), hits, qvec, embed)
            elif "price" in topics:
                d = compose.price(snap, p, "zh")
            elif "stock" in topics:
                d = compose.stock(snap, p, "zh")
            else:
                f = topic_fact(snap, p, topics)
                if f is not None:
                    d = Draft(f"{p.name}：{render_fact(f)}", [f])
                else:
                    parsed = self._parse(q, "detail", snap, lex, hits)
                    d = compose.detail(snap, lex, parsed, p, self._vec(q, vec, embed))
                if d.refused:
                    d = self._by_topic(snap, p, topics)
            if not d.refused and d.text:
                offers = self.offers(sku) if "price" in topics else []
                text = guard(d.text, p, d.facts + self._all_facts(snap, p), offers)
                if text:
                    more = [snap.fact(h.fact_id) for h in hits[:3]]
                    facts = list({f.id: f for f in d.facts + [f for f in more if f is not None]}.values())[:3]
                    return Composed(text, facts)
        return Composed("", refused=True)

    @staticmethod
    def _parse(
        text: str, intent: str, snap: LoadedVersion, lex: CatalogLexicon, hits: list[SearchHit]
    ) -> understand.Parsed:
        return understand.parse(text, "zh", intent, 1.0, snap, lex, hits)

    @staticmethod
    def _vec(text: str, vec: np.ndarray | None, embed: Callable[[list[str]], np.ndarray] | None) -> np.ndarray | None:
        """The question's embedding (unit norm): the cluster's centroid when given, else encoded here."""
        if vec is None:
            if embed is None:
                return None
            vec = embed([text])[0]
        v = np.asarray(vec, dtype=np.float32)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v

    def _by_topic(self, snap: LoadedVersion, p: Product, topics: frozenset[str]) -> Draft:
        """A fact of the product that talks about the topic, when no composer found one."""
        own = [f for f in snap.index.facts_of(p.sku) if f.kind in _TOPIC_FACT_KINDS]
        for kind in _TOPIC_FACT_KINDS:
            f = next((f for f in own if f.kind == kind and on_topic(f.text, topics)), None)
            if f is not None:
                return Draft(f"{p.name}：{render_fact(f)}", [f])
        return Draft("", refused=True)

    @staticmethod
    def _all_facts(snap: LoadedVersion, p: Product | None) -> list[Fact]:
        return [f for f in snap.index.facts if p is not None and f.sku == p.sku]

    def _store_offers(self, sku: str | None) -> list[CouponOffer]:
        try:
            return self.offers(sku)
        except Exception:
            log.exception("offers lookup failed")
            return []
