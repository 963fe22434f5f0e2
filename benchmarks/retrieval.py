"""Search latency (p50/p95) at ~1k and ~100k facts, and index build throughput.

    python -m benchmarks.retrieval [--sizes 1000,100000] [--queries 300] [--json]

The 1k catalog is the demo catalog; larger ones are synthetic catalogs generated from it (the demo
products re-combined under new names and skus), embedded with the real encoder and indexed the way
an import does. Build throughput is facts/s from parsed catalog to a searchable version.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from knowledge.embedder import UseEmbedder
from knowledge.facts import catalog_facts
from knowledge.schema import Catalog, Product
from knowledge.store import KnowledgeBase

ROOT = Path(__file__).resolve().parent.parent
QUERIES = [
    "小蓝瓶多少钱",
    "敏感肌能用吗",
    "小个子能穿吗",
    "保质期多久",
    "what's tonight's price?",
    "海盐的咸不咸",
    "口红02号显白吗",
    "满多少包邮",
    "精化液容量多大",
    "羽绒服含绒量",
    "送妈妈的礼盒",
    "油皮用哪个面霜",
]
ADJ = [
    "轻盈",
    "柔雾",
    "清透",
    "云朵",
    "丝滑",
    "晨光",
    "月影",
    "星河",
    "暖阳",
    "雪松",
    "琥珀",
    "青柠",
    "蜜桃",
    "海盐",
    "山茶",
]


def synthetic_catalog(n_facts: int, seed: int = 7) -> Catalog:
    base = Catalog.model_validate_json((ROOT / "knowledge" / "demo" / "products.json").read_text("utf-8"))
    rnd = random.Random(seed)
    per = max(1, len(catalog_facts(base)) // max(1, len(base.products)))
    products: list[Product] = []
    i = 0
    while len(products) * per < n_facts:
        src = base.products[i % len(base.products)]
        tag = f"{rnd.choice(ADJ)}{rnd.choice(ADJ)}"
        p = src.model_copy(
            update={
                "sku": f"SY-{i:06d}",
                "name": f"{tag} {src.name}",
                "aliases": [],
                "price": round(src.price * rnd.uniform(0.6, 1.4), 1),
                "list_price": None,
                "stock": rnd.randint(0, 999),
            }
        )
        products.append(p)
        i += 1
    return Catalog(products=products)


class ScaleEmbedder:
    """For the large synthetic catalogs only: a synthetic fact's vector is the real encoder's vector
    of its source fact (tag and sku removed) plus small noise — a realistic distribution for search
    latency without spending minutes encoding 100k near-duplicate sentences. Queries use the real
    encoder unchanged."""

    def __init__(self, real: UseEmbedder, seed: int = 7):
        self.real, self.name, self.dim = real, real.name + "+scale", real.dim
        self._base: dict[str, np.ndarray] = {}
        self._rng = np.random.default_rng(seed)

    def encode(self, texts):
        if len(texts) == 1:
            return self.real.encode(texts)
        keys = [re.sub(r"（SY-\d+）", "", re.sub(r"^\S+ ", "", t)) for t in texts]
        todo = [k for k in dict.fromkeys(keys) if k not in self._base]
        if todo:
            self._base.update(zip(todo, self.real.encode(todo)))
        vecs = np.stack([self._base[k] for k in keys]) + self._rng.normal(0, 0.02, (len(keys), self.dim))
        return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 2)


def bench(size: int, n_queries: int, embedder: UseEmbedder) -> dict:
    scaled = size > 20_000
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Path(tmp), ScaleEmbedder(embedder) if scaled else embedder)
        if size <= 1500:
            from evals.retrieval import DEMO

            files = sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
            from knowledge.importers import parse_files

            catalog = parse_files(files)
        else:
            catalog = synthetic_catalog(size)
        t0 = time.perf_counter()
        info = kb.publish_catalog("bench", catalog, note="bench")
        build_s = time.perf_counter() - t0
        kb.snapshot("bench")
        kb.search("bench", "预热")
        lat = []
        for i in range(n_queries):
            q = QUERIES[i % len(QUERIES)]
            t = time.perf_counter()
            kb.search("bench", q, k=5)
            lat.append((time.perf_counter() - t) * 1000)
    return {
        "facts": info.facts,
        "products": info.products,
        "build_s": round(build_s, 1),
        "vectors": "source vectors + noise" if scaled else "real encoder",
        "build_facts_per_s": round(info.facts / build_s, 1),
        "search_ms": {"p50": pct(lat, 50), "p95": pct(lat, 95), "max": round(max(lat), 2)},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    emb = UseEmbedder()
    results = [bench(int(s), a.queries, emb) for s in a.sizes.split(",")]
    if a.json:
        print(json.dumps(results))
        return
    print(f"{'facts':>8} {'products':>9} {'build s':>8} {'facts/s':>8} {'p50 ms':>7} {'p95 ms':>7}  vectors")
    for r in results:
        print(
            f"{r['facts']:>8} {r['products']:>9} {r['build_s']:>8} {r['build_facts_per_s']:>8} "
            f"{r['search_ms']['p50']:>7} {r['search_ms']['p95']:>7}  {r['vectors']}"
        )


if __name__ == "__main__":
    main()
