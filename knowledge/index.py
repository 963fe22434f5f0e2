"""Hybrid retrieval over one KB version: FAISS dense + character BM25, fused by reciprocal rank,
with a boost for facts of the product the question names (also by alias, partial name or typo)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import faiss
import numpy as np
from rapidfuzz import fuzz, process

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


NAME_SCORE_FLOOR = 2.5
NAME_SCORE_SPAN = 5.0
_SKU_RE = re.compile(r"[a-z]{2,4}-?\d{2,5}")


class ProductMatcher:
    """Which products (or store documents) does a question name? BM25 over each product's names and
    each document's title and headings (character unigrams + bigrams, so typos keep partial credit),
    plus alias matching and exact sku mentions. Keys are skus, or ``doc:<id>`` for documents."""

    def __init__(self, products: Sequence[Product], documents: dict[str, list[str]] | None = None):
        documents = documents or {}
        self._skus = [p.sku for p in products] + [f"doc:{d}" for d in documents]
        self._sku_norm = {normalize(p.sku).replace("-", ""): i for i, p in enumerate(products)}
        # One flat list for rapidfuzz's C loop: (alias, product row).
        self._alias_list: list[str] = []
        self._alias_row: list[int] = []
        for i, p in enumerate(products):
            for a in dict.fromkeys(normalize(a) for a in [*p.aliases, p.series] if a and len(a) >= 2):
                self._alias_list.append(a)
                self._alias_row.append(i)
        corpus = [tokens(" ".join([_strip_common(p.name), p.series, *p.aliases])) or [""] for p in products]
        self._generic = _generic_words(products, corpus)
        corpus += [tokens(" ".join(names)) or [""] for names in documents.values()]
        self._bm25 = bm25s.BM25()
        if corpus:
            self._bm25.index(corpus, show_progress=False)

    def match(self, query: str) -> dict[str, float]:
        """key (sku or doc:<id>) → strength in [0, 1]."""
        if not self._skus:
            return {}
        q = normalize(query)
        out: dict[str, float] = {}
        for m in _SKU_RE.finditer(q):
            i = self._sku_norm.get(m.group().replace("-", ""))
            if i is not None:
                out[self._skus[i]] = 1.0
        qt = [t for t in _without_generic(tokens(query), self._generic) if t in self._bm25.vocab_dict]
        if qt:
            scores = self._bm25.get_scores(qt)
            top = float(scores.max())
            # Absolute BM25 calibration (product names are a small, stable corpus): one shared
            # common character scores ~2-3 ("包" in 包邮 vs 面包), a real partial name ≥ 7.
            for i in np.argsort(-scores)[:5]:
                s = float(scores[i])
                strength = min(1.0, max(0.0, (s - NAME_SCORE_FLOOR) / NAME_SCORE_SPAN)) * (s / top if top else 0)
                if strength <= 0:
                    break
                out[self._skus[i]] = max(out.get(self._skus[i], 0.0), strength)
        for a, _, j in process.extract(q, self._alias_list, scorer=fuzz.partial_ratio, score_cutoff=90, limit=20):
            sku = self._skus[self._alias_row[j]]
            if a in q:
                out[sku] = 1.0
            elif len(a) >= 3:  # a near-miss spelling of an alias ("小兰瓶")
                out[sku] = max(out.get(sku, 0.0), 0.6)
        return out


# Exact (flat) search scans every vector: ~215 MB per query at 100k facts. Beyond this size an HNSW
# graph answers in about a millisecond at near-exact recall (M=16, efConstruction=40: 105k
# facts build in ~25 s on 2 cores).
HNSW_MIN_FACTS = 20_000
HNSW_M = 16
HNSW_EF_SEARCH = 128


def build_dense(vectors: np.ndarray) -> faiss.Index:
    d = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 512
    index: faiss.Index
    if len(vectors) >= HNSW_MIN_FACTS:
        index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
    else:
        index = faiss.IndexFlatIP(d)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _stored_vectors(index: faiss.Index) -> np.ndarray:
    """A zero-copy view of the vectors held by a flat or HNSW-flat index."""
    flat = faiss.downcast_index(index.storage) if isinstance(index, faiss.IndexHNSWFlat) else index
    if flat.ntotal == 0:
        return np.zeros((0, flat.d), np.float32)
    xb = flat.get_xb()  # type: ignore[attr-defined]  # flat indexes have it; faiss's stubs say Index
    out: np.ndarray = faiss.rev_swig_ptr(xb, flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
    return out


def _entity(f: Fact) -> str | None:
    if f.sku:
        return f.sku
    if f.kind == "doc":
        return "doc:" + f.id.split(":")[1]
    return None


def _interleave(hits: list[SearchHit], keys: list[str]) -> list[SearchHit]:
    """Alternate the named products' facts at the top, keeping each one's own order."""
    queues = {k: [h for h in hits if h.sku == k] for k in keys}
    head: list[SearchHit] = []
    while any(queues.values()):
        for k in keys:
            if queues[k]:
                head.append(queues[k].pop(0))
    return head + [h for h in hits if h.sku not in queues]


GENERIC_SHARE = 0.5  # a name word the catalog's own text uses for at least this share of its products


def _generic_words(products: Sequence[Product], names: list[list[str]]) -> frozenset[str]:
    """Name words the catalog uses about most of its products ("宝宝" in a baby shop: one alias says
    宝宝餐椅, but 0-6个月宝宝 is in four products in five) say little about which product is meant."""
    if len(products) < 8:
        return frozenset()
    in_names = {t for ts in names for t in ts}
    seen: dict[str, int] = {}
    for p in products:
        text = " ".join(
            [*p.specs.values(), *p.selling_points, *p.suitable_for, *p.not_suitable_for, *(f.a for f in p.faq)]
        )
        for t in set(tokens(text)) & in_names:
            seen[t] = seen.get(t, 0) + 1
    # Words only: single characters are what keeps a typo's partial credit ("精化液" still shares 精/液).
    return frozenset(t for t, n in seen.items() if len(t) >= 2 and n >= GENERIC_SHARE * len(products))


def _without_generic(toks: list[str], generic: frozenset[str]) -> list[str]:
    """The query's tokens without its generic words, nor the characters those words were made of."""
    if not generic:
        return toks
    drop = [t for t in toks if t in generic]
    if not drop:
        return toks
    out = [t for t in toks if t not in generic]
    for w in drop:
        for ch in w:
            if ch in out:
                out.remove(ch)
    return out


def _strip_common(name: str) -> str:
    # Sizes and units ("30ml", "500g") are shared across products and say little about which one.
    return re.sub(r"\d+(\.\d+)?\s*(ml|g|kg|片|支|盒|袋|件)", " ", name, flags=re.I)


class HybridIndex:
    def __init__(
        self,
        facts: list[Fact],
        vectors: np.ndarray,
        products: Sequence[Product],
        bm25: bm25s.BM25 | None = None,
        dense: faiss.Index | None = None,
    ):
        self.facts = facts
        self._by_id = {f.id: f for f in facts}
        self._row = {f.id: i for i, f in enumerate(facts)}
        self._by_sku: dict[str, list[int]] = {}  # entity key (sku or doc:<id>) → fact rows
        doc_names: dict[str, list[str]] = {}
        for i, f in enumerate(facts):
            key = _entity(f)
            if key:
                self._by_sku.setdefault(key, []).append(i)
            if f.kind == "doc":
                doc_names.setdefault(f.id.split(":")[1], []).extend(x for x in (f.key or "").split(" / ") if x)
        if dense is None:
            dense = build_dense(vectors)
        self.dense = dense
        if isinstance(dense, faiss.IndexHNSWFlat):
            dense.hnsw.efSearch = HNSW_EF_SEARCH
        self._vecs = _stored_vectors(dense)
        if bm25 is None:
            bm25 = bm25s.BM25()
            if facts:
                bm25.index([tokens(f.text) or [""] for f in facts], show_progress=False)
        self.bm25 = bm25
        self.matcher = ProductMatcher(products, {d: sorted(set(v)) for d, v in doc_names.items()})

    def fact(self, fact_id: str) -> Fact | None:
        return self._by_id.get(fact_id)

    def facts_of(self, key: str) -> list[Fact]:
        """All facts of one product (sku) or store document (``doc:<id>``), in catalog order."""
        return [self.facts[i] for i in self._by_sku.get(key, ())]

    def similarity(self, qvec: np.ndarray, fact_ids: Sequence[str]) -> list[float]:
        """Cosine similarity of a (normalised) query vector to each fact (0.0 for unknown ids)."""
        rows = [self._row.get(i, -1) for i in fact_ids]
        known = [r for r in rows if r >= 0]
        if not known or len(self._vecs) == 0:
            return [0.0] * len(rows)
        sims = dict(zip(known, (self._vecs[known] @ qvec.astype(np.float32)).tolist()))
        return [float(sims.get(r, 0.0)) for r in rows]

    def search(
        self,
        query: str,
        qvec: np.ndarray,
        k: int = 5,
        params: RetrievalParams = RetrievalParams(),
        skus: set[str | None] | None = None,
    ) -> list[SearchHit]:
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
            key = _entity(f)
            b = params.boost_weight * boosts.get(key, 0.0) if key else 0.0
            hits.append(
                SearchHit(
                    fact_id=f.id,
                    sku=f.sku,
                    name=f.name,
                    kind=f.kind,
                    text=f.text,
                    score=round(base + b, 6),
                    dense_rank=dense_rank.get(i),
                    bm25_rank=bm25_rank.get(i),
                    product_boost=round(b, 6),
                )
            )
        hits.sort(key=lambda h: -h.score)
        ranked = sorted(boosts.items(), key=lambda kv: -kv[1]) + [("", 0.0)] * 3
        (k1, s1), (k2, s2), (_, s3) = ranked[:3]
        if s1 >= 0.7 and s2 >= 0.7 and s3 < s2 - 0.15:
            hits = _interleave(hits, [k1, k2])  # two products clearly named: show both one's best facts
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
    def load(cls, directory: Path, products: Sequence[Product]) -> HybridIndex:
        with open(directory / "facts.jsonl", encoding="utf-8") as fh:
            facts = [Fact.model_validate(json.loads(line)) for line in fh if line.strip()]
        dense = faiss.read_index(str(directory / "dense.faiss"))
        bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False, verbosity=0) if facts else None
        return cls(facts, np.zeros((0, dense.d), np.float32), products, bm25=bm25, dense=dense)
