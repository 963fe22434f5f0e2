"""Retrieval quality on the demo catalog: recall@1 / recall@3 of the right product (or policy
document), dense-only vs BM25-only vs hybrid, overall and per question kind.

    python -m evals.retrieval [--json]

A question is a hit@k when its sku is among the top-k facts' skus (policy questions: a fact of the
named document or a store-level Q&A). Comparisons need both products in the top k (k ≥ 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from knowledge.embedder import UseEmbedder
from knowledge.index import RetrievalParams
from knowledge.store import KnowledgeBase

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "evals" / "data" / "retrieval_questions.jsonl"
DEMO = ROOT / "knowledge" / "demo"


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def demo_kb(root: Path, merchant: str = "evaldemo") -> KnowledgeBase:
    kb = KnowledgeBase(root, UseEmbedder())
    files = sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
    kb.import_files(merchant, files)
    return kb


def _hit(q: dict, hits, k: int) -> bool:
    top = hits[:k]
    if q.get("sku") is None:
        doc = q.get("doc")
        return any(
            (h.fact_id.startswith(f"doc:{doc}:") if doc else False) or (h.kind == "qa" and not h.sku) for h in top
        )
    skus = {h.sku for h in top}
    if q.get("sku2") and k >= 2:
        return q["sku"] in skus and q["sku2"] in skus
    return q["sku"] in skus or (q.get("sku2") in skus if q.get("sku2") else False)


def evaluate(kb: KnowledgeBase, merchant: str, questions: list[dict], params: RetrievalParams) -> dict:
    per_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    misses = []
    for q in questions:
        _, hits = kb.search(merchant, q["q"], k=3, params=params)
        h1, h3 = _hit(q, hits, 1), _hit(q, hits, 3)
        per_kind[q.get("kind", "other")].append((h1, h3))
        if not h3:
            misses.append(
                {"q": q["q"], "want": q.get("sku") or q.get("doc"), "got": [h.sku or h.fact_id for h in hits]}
            )
    allv = [v for vs in per_kind.values() for v in vs]

    def rate(vs, i):
        return round(sum(v[i] for v in vs) / len(vs), 3) if vs else 0.0

    return {
        "n": len(allv),
        "recall@1": rate(allv, 0),
        "recall@3": rate(allv, 1),
        "by_kind": {
            k: {"n": len(v), "recall@1": rate(v, 0), "recall@3": rate(v, 1)} for k, v in sorted(per_kind.items())
        },
        "misses": misses,
    }


def main(merchant: str = "evaldemo", as_json: bool = False) -> dict:
    questions = load_questions()
    with tempfile.TemporaryDirectory() as tmp:
        kb = demo_kb(Path(tmp), merchant)
        base = RetrievalParams()
        results = {
            mode: evaluate(kb, merchant, questions, replace(base, mode=mode)) for mode in ("dense", "bm25", "hybrid")
        }
    if as_json:
        print(
            json.dumps(
                {m: {k: v for k, v in r.items() if k != "misses"} for m, r in results.items()}, ensure_ascii=False
            )
        )
        return results
    print(f"retrieval eval: {results['hybrid']['n']} questions over the demo catalog")
    print(f"{'mode':<8} {'recall@1':>9} {'recall@3':>9}")
    for mode, r in results.items():
        print(f"{mode:<8} {r['recall@1']:>9.3f} {r['recall@3']:>9.3f}")
    print("\nhybrid by kind:")
    for kind, r in results["hybrid"]["by_kind"].items():
        print(f"  {kind:<14} n={r['n']:<4} R@1={r['recall@1']:.3f} R@3={r['recall@3']:.3f}")
    if results["hybrid"]["misses"]:
        print("\nhybrid misses (top-3):")
        for m in results["hybrid"]["misses"]:
            print(f"  {m['q']}  want={m['want']}  got={m['got']}")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    main(as_json=a.json)
    sys.exit(0)
