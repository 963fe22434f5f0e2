"""Which of a product's facts answers the question — or none does.

A logistic model over features that hold for any catalog: the hand-weighted word overlap of the
composer (``heuristic``), the sentence-embedding similarity of question and fact, whether the fact's
spec key is the attribute asked about, whether the *kind of quantity* the question asks for
("多重" → mass, "多久" → time, "几岁" → age) is the kind the fact's value states, and the fact's
kind. Its weights are learned offline from the tuning catalogs' questions
(``python -m evals.train_ranker`` writes ``agent/data/fact_ranker.json``); the held-out catalog is
never part of that. Without the weights file the composer keeps its hand-weighted order.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from knowledge.attributes import AttributeBook, load_attributes, parse_quantities
from knowledge.schema import Fact
from knowledge.text import normalize

WEIGHTS = Path(__file__).parent / "data" / "fact_ranker.json"

FEATURES: tuple[str, ...] = (
    "bias",
    "heuristic",
    "heuristic_pass",
    "sim",
    "sim_rank1",
    "key_attr",
    "key_named",
    "dim_match",
    "dim_clash",
    "key_dim",
    "dim_unique",
    "first_absent",
    "sim_gap",
    "cov",
    "key_cov",
    "no_terms",
    "kind_spec",
    "kind_faq",
    "kind_suit",
    "kind_point",
    "kind_variant",
    "suit_intent_fit",
    "en_sim",
)

# An interrogative and the word it asks about: 多重, 多久, 多大, 几岁, 几斤, 多少克, how heavy …
_ASK_ZH = re.compile(r"(?:多少(?=[\u4e00-\u9fff])|多(?!少)|几)[\u4e00-\u9fff]")
_ASK_EN = re.compile(r"\bhow (?:many |much )?[a-z]+")


def _asks(book: AttributeBook) -> dict[str, frozenset[str]]:
    if book._asks is None:
        book._asks = _read_asks(book)
    return book._asks  # type: ignore[no-any-return]


def _read_asks(book: AttributeBook) -> dict[str, frozenset[str]]:
    """Interrogative phrase → the quantity dimensions asked for, read off the attribute book: every
    everyday name of an attribute that has dimensions contributes its interrogatives ("有多重" of
    weight → 多重: mass)."""
    votes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a in book.attributes:
        if not a.dimensions:
            continue
        found = {m for n in a.names_zh for m in _ASK_ZH.findall(normalize(n))}
        found |= {m for n in a.names_en for m in _ASK_EN.findall(normalize(n))}
        for m in found:
            for d in a.dimensions:
                votes[m][d] += 1
    # A phrase some attributes share in passing ("多久" of a size's "用多久能穿") keeps only the
    # dimensions most of its attributes have.
    out: dict[str, set[str]] = defaultdict(set)
    for m, v in votes.items():
        top = max(v.values())
        out[m] = {d for d, n in v.items() if n * 3 >= top}
    # A unit after the interrogative names its dimension outright ("多少瓦", "几毫安").
    for u in book.units:
        for alias in u.aliases:
            if re.fullmatch(r"[\u4e00-\u9fff]{1,3}", alias):
                out["多少" + alias].add(u.dimension)
                out["几" + alias].add(u.dimension)
    return {k: frozenset(v) for k, v in out.items()}


def asked_dimensions(text: str, book: AttributeBook | None = None) -> frozenset[str]:
    """The dimensions of the quantity a question asks for (empty when it asks for none)."""
    b = book or load_attributes()
    t = normalize(text)
    asks = _asks(b)
    dims: set[str] = set()
    for k, v in asks.items():
        if k in t:
            dims |= v
    return frozenset(dims)


def _compatible(dims: frozenset[str]) -> frozenset[str]:
    """An age is a time ("几个月能吃" meets "2-12月龄")."""
    return dims | {"time"} if "age" in dims else dims


def value_dimensions(text: str, book: AttributeBook | None = None) -> frozenset[str]:
    return frozenset(q.dimension for q in parse_quantities(text, book) if q.dimension)


@dataclass(frozen=True)
class FactRanker:
    """Two linear heads on the same features: ``select`` orders a product's facts (learned from pairs
    of a right and a wrong fact of the same question), ``accept`` says whether the best one answers
    the question at all (learned from the best facts of answerable and unanswerable questions)."""

    select: np.ndarray
    accept: np.ndarray
    accept_bias: float
    threshold: float

    @classmethod
    def load(cls, path: Path = WEIGHTS, features: tuple[str, ...] = FEATURES) -> FactRanker | None:
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if tuple(data.get("features", ())) != features:
            return None  # weights of another feature set: retrain (python -m evals.train_ranker)
        return cls(
            np.asarray(data["select"], dtype=np.float64),
            np.asarray(data["accept"], dtype=np.float64),
            float(data["accept_bias"]),
            float(data["threshold"]),
        )

    def order(self, rows: np.ndarray) -> np.ndarray:
        """Fact indices, best first."""
        return np.argsort(-(rows @ self.select), kind="stable")

    def confidence(self, row: np.ndarray) -> float:
        """Probability that this (best) fact answers the question."""
        z = float(row @ self.accept + self.accept_bias)
        return 1.0 / (1.0 + float(np.exp(-np.clip(z, -30.0, 30.0))))


@lru_cache(maxsize=1)
def default_ranker() -> FactRanker | None:
    return FactRanker.load()


# --- store policy sentences ----------------------------------------------------------------------
POLICY_WEIGHTS = Path(__file__).parent / "data" / "policy_ranker.json"
POLICY_FEATURES: tuple[str, ...] = (
    "bias",
    "heuristic",
    "heuristic_pass",
    "cov",
    "named",
    "doc_sim",
    "sent_sim",
    "sent_sim_rank1",
    "sent_sim_gap",
    "doc_rank",
    "is_qa",
    "qa_key_cov",
    "position",
    "specific",
    "dim_match",
    "has_number",
    "no_terms",
    "en",
    "by_sound",
)


@lru_cache(maxsize=1)
def policy_ranker() -> FactRanker | None:
    return FactRanker.load(POLICY_WEIGHTS, POLICY_FEATURES)


@dataclass
class Context:
    """What the features need to know about the question, computed once per question."""

    text: str
    lang: str
    intent: str
    terms: list[str]
    asked_keys: dict[str, float]  # spec key → 1.0 for the first asked attribute's keys, 0.5 for others
    first_absent: bool  # the attribute asked first is one this product has no spec for ("电芯是哪家的": brand)
    dims: frozenset[str]


def feature_rows(
    ctx: Context,
    facts: Sequence[Fact],
    heuristic: dict[str, float],
    sims: Sequence[float],
    f_cov: Callable[[Sequence[str], str], float],
    book: AttributeBook,
) -> np.ndarray:
    """One row of ``FEATURES`` per fact. ``f_cov(terms, text)`` is the composer's word coverage."""
    t = normalize(ctx.text)
    order = sorted(range(len(sims)), key=lambda i: -sims[i])
    top = order[0] if order else -1
    second = sims[order[1]] if len(order) > 1 else 0.0
    first = sims[top] if order else 0.0
    rows = np.zeros((len(facts), len(FEATURES)))
    vdims = [
        _compatible(value_dimensions(f.value or f.text, book))
        if f.kind in ("spec", "faq", "qa", "variant")
        else frozenset()
        for f in facts
    ]
    asked = _compatible(ctx.dims)
    matching = [i for i, vd in enumerate(vdims) if asked and vd & asked]
    for i, f in enumerate(facts):
        h = heuristic.get(f.id, 0.0)
        vd = vdims[i]
        kind = f.kind
        key = f.key or ""
        suit = kind in ("suitable", "not_suitable")
        x = {
            "bias": 1.0,
            "heuristic": min(h, 1.5),
            "heuristic_pass": 1.0 if h >= 0.5 else 0.0,
            "sim": float(sims[i]),
            "sim_rank1": 1.0 if i == top else 0.0,
            "key_attr": ctx.asked_keys.get(key, 0.0) if kind == "spec" else 0.0,
            "key_named": 1.0 if kind == "spec" and len(key) >= 2 and normalize(key) in t else 0.0,
            "dim_match": 1.0 if asked and vd & asked else 0.0,
            "dim_clash": 1.0 if asked and vd and not vd & asked else 0.0,
            "key_dim": 1.0 if kind == "spec" and ctx.asked_keys.get(key) and vd & asked else 0.0,
            "dim_unique": 1.0 if matching == [i] else 0.0,  # the one fact stating the kind of quantity asked
            "first_absent": 1.0 if ctx.first_absent and ctx.asked_keys.get(key, 0.0) < 1.0 else 0.0,
            "sim_gap": float(sims[i]) - (second if i == top else first),
            "cov": f_cov(ctx.terms, f.text),
            "key_cov": f_cov(ctx.terms, key) if kind in ("spec", "faq", "qa") else 0.0,
            "no_terms": 0.0 if ctx.terms else 1.0,
            "kind_spec": 1.0 if kind == "spec" else 0.0,
            "kind_faq": 1.0 if kind in ("faq", "qa") else 0.0,
            "kind_suit": 1.0 if suit else 0.0,
            "kind_point": 1.0 if kind == "selling_point" else 0.0,
            "kind_variant": 1.0 if kind == "variant" else 0.0,
            "suit_intent_fit": 1.0 if ctx.intent == "suitability" and (suit or kind in ("faq", "qa")) else 0.0,
            "en_sim": float(sims[i]) if ctx.lang == "en" else 0.0,
        }
        rows[i] = [x[name] for name in FEATURES]
    return rows
