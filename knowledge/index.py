"""Hybrid retrieval over one KB version: FAISS dense + character BM25, fused by reciprocal rank,
with a boost for facts of the product the question names (also by alias, partial name or typo)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import bm25s
import faiss
import numpy as np
from rapidfuzz import fuzz

from knowledge.schema import Fact, Product, SearchHit
from knowledge.text import normalize, tokens


@dataclass(frozen=True)
class RetrievalParams:
    rrf_k: int = 60
    pool: int = 50  # candidates taken from each ranker
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    boost_weight: float = 0.03  # a full product match ≈ two first places in RRF
    boost_min: float = 0.35  # product-name matches weaker than this are ignored
    mode: str = "hybrid"  # "hybrid" | "dense" | "bm25" (for the retrieval eval)


_SKU_RE = re.compile(r"[a-z]{2,4}-?\d{2,5}")


class ProductMatcher:
    """Which products does a question name? BM25 over each product's names (character unigrams +
    bigrams, so typos keep partial credit) plus fuzzy alias matching and exact sku mentions."""

    def __init__(self, products: Sequence[Product]):
        self._skus = [p.sku for p in products]
        self._sku_norm = {normalize(p.sku).replace("-", ""): i for i, p in enumerate(products)}
        self._aliases = [[normalize(a) for a in [*p.aliases, p.series] if a and len(a) >= 2] for p in products]
        corpus = [tokens(" ".join([_strip_common(p.name), p.series, *p.aliases])) or [""] for p in products]
        self._bm25 = bm25s.BM25()
        if products:
            self._bm25.index(corpus, show_progress=False)

    def match(self, query: str) -> dict[str, float]:
        """sku → strength in [0, 1]."""
        if not self._skus:
            return {}
        q = normalize(query)
        out: dict[str, float] = {}
        for m in _SKU_RE.finditer(q):
            i = self._sku_norm.get(m.group().replace("-", ""))
            if i is not None:
                out[self._skus[i]] = 1.0
        qt = [t for t in tokens(query) if t in self._bm25.vocab_dict]
        if qt:
            scores = self._bm25.get_scores(qt)
            top = float(scores.max())
            if top > 0:
                # Relative to the best product and to a perfect self-match of the query tokens.
                for i in np.argsort(-scores)[:5]:
                    s = float(scores[i])
                    if s <= 0:
                        break
                    strength = (s / top) * min(1.0, top / (1.2 * len(qt) ** 0.5 + 1e-9))
                    out[self._skus[i]] = max(out.get(self._skus[i], 0.0), strength)
        for i, aliases in enumerate(self._aliases):
            for a in aliases:
                if a in q:
                    out[self._skus[i]] = 1.0
                elif len(a) >= 3 and fuzz.partial_ratio(a, q) >= 80:
                    out[self._skus[i]] = max(out.get(self._skus[i], 0.0), 0.8)
        return out


def _strip_common(name: str) -> str:
    # Sizes and units ("30ml", "500g") are shared across products and say little about which one.
    return re.sub(r"\d+(\.\d+)?\s*(ml|g|kg|片|支|盒|袋|件)", " ", name, flags=re.I)


class HybridIndex:
    def __init__(self, facts: list[Fact], vectors: np.ndarray, products: Sequence[Product],
                 bm25: bm25s.BM25 | None = None, dense: faiss.Index | None = None):
        self.facts = facts
        self._by_id = {f.id: f for f in facts}
        self._by_sku: dict[str, list[int]] = {}
        for i, f in enumerate(facts):
            if f.sku:
                self._by_sku.setdefault(f.sku, []).append(i)
        if dense is None:
            dense = faiss.IndexFlatIP(vectors.shape[1] if vectors.size else 512)
            if len(vectors):
                dense.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.dense = dense
        self._vecs = faiss.rev_swig_ptr(dense.get_xb(), dense.ntotal * dense.d).reshape(dense.ntotal, dense.d) \
            if dense.ntotal else np.zeros((0, dense.d), np.float32)
        if bm25 is None:
            bm25 = bm25s.BM25()
            if facts:
                bm25.index([tokens(f.text) or [""] for f in facts], show_progress=False)
        self.bm25 = bm25
        self.matcher = ProductMatcher(products)

    def fact(self, fact_id: str) -> Fact | None:
        return self._by_id.get(fact_id)

    def search(self, query: str, qvec: np.ndarray, k: int = 5, params: RetrievalParams = RetrievalParams(),
               skus: set[str] | None = None) -> list[SearchHit]:
        n = len(self.facts)
        if n == 0 or not query.strip():
            return []
        pool = min(params.pool, n)
        fused: dict[int, float] = {}
        dense_rank: dict[int, int] = {}
        bm25_rank: dict[int, int] = {}
        if params.mode in ("hybrid", "dense"):
            sims, ids = self.dense.search(qvec.reshape(1, -1).astype(np.float32), pool)
            for r, i in enumerate(ids[0]):
                if i >= 0:
                    dense_rank[int(i)] = r + 1
            floor = sims[0]
        if params.mode in ("hybrid", "bm25"):
            qt = [t for t in tokens(query) if t in self.bm25.vocab_dict]
            if qt:
                scores = self.bm25.get_scores(qt)
                top = np.argpartition(-scores, pool - 1)[:pool] if pool < n else np.arange(n)
                top = top[np.argsort(-scores[top])]
                for r, i in enumerate(top):
                    if scores[i] > 0:
                        bm25_rank[int(i)] = r + 1
        boosts: dict[str, float] = {}
        if params.mode == "hybrid":
            boosts = {s: v for s, v in self.matcher.match(query).items() if v >= params.boost_min}
            # Facts of a named product compete even if neither ranker surfaced them (large catalogs).
            extra = [i for s in boosts for i in self._by_sku.get(s, ()) if i not in dense_rank]
            if extra:
                sims_extra = self._vecs[extra] @ qvec.astype(np.float32)
                for i, s in zip(extra, sims_extra):
                    dense_rank[i] = 1 + int(np.sum(floor > s))
        for i, r in dense_rank.items():
            fused[i] = fused.get(i, 0.0) + params.dense_weight / (params.rrf_k + r)
        for i, r in bm25_rank.items():
            fused[i] = fused.get(i, 0.0) + params.bm25_weight / (params.rrf_k + r)
        hits: list[SearchHit] = []
        for i, base in fused.items():
            f = self.facts[i]
            if skus is not None and f.sku not in skus:
                continue
            b = params.boost_weight * boosts.get(f.sku, 0.0) if f.sku else 0.0
            hits.append(SearchHit(fact_id=f.id, sku=f.sku, name=f.name, kind=f.kind, text=f.text,
                                  score=round(base + b, 6), dense_rank=dense_rank.get(i),
                                  bm25_rank=bm25_rank.get(i), product_boost=round(b, 6)))
        hits.sort(key=lambda h: -h.score)
        return hits[:k]

    # --- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "facts.jsonl", "w", encoding="utf-8") as fh:
            for f in self.facts:
                fh.write(f.model_dump_json(exclude_none=True) + "\n")
        faiss.write_index(self.dense, str(directory / "dense.faiss"))
        self.bm25.save(str(directory / "bm25"), show_progress=False)

    @classmethod
    def load(cls, directory: Path, products: Sequence[Product]) -> "HybridIndex":
        with open(directory / "facts.jsonl", encoding="utf-8") as fh:
            facts = [Fact.model_validate(json.loads(line)) for line in fh if line.strip()]
        dense = faiss.read_index(str(directory / "dense.faiss"))
        bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False, verbosity=0) if facts else None
        return cls(facts, np.zeros((0, dense.d), np.float32), products, bm25=bm25, dense=dense)
