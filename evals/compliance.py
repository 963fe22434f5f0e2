"""Compliance checker eval: precision and recall on a corpus of good and bad copy lines.

    python -m evals.compliance [--json] [--show-errors]

Each line of ``evals/data/compliance_lines.jsonl`` is ``{"text", "expect": [rules], "sku"?, "coupons"?,
"stock"?}``: the rules it breaks (empty = a clean line). With a sku the line is checked against that
demo product's real figures (live price, list price, stock) and the given coupons, as copy is. Scores:
line level (flagged or not) and per rule (absolute, medical, scarcity, price).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent import compliance
from knowledge.schema import Product
from tools.contracts import CouponOffer

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "evals" / "data" / "compliance_lines.jsonl"
PRODUCTS = ROOT / "knowledge" / "demo" / "products.json"
RULES = ("absolute", "medical", "scarcity", "price")


def load_corpus(path: Path = CORPUS) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def demo_products(path: Path = PRODUCTS) -> dict[str, Product]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {p["sku"]: Product.model_validate(p) for p in data["products"]}


def predict(
    line: dict, products: dict[str, Product], rules: compliance.ComplianceRules = compliance.DEFAULT_RULES
) -> list[compliance.Violation]:
    prices, stock = None, line.get("stock")
    if line.get("sku"):
        p = products[line["sku"]]
        offers = [CouponOffer.model_validate(c) for c in line.get("coupons", [])]
        prices = compliance.PriceFacts.from_product(p, offers)
        stock = p.stock if stock is None else stock
    return compliance.check(line["text"], rules, real_stock=stock, prices=prices)


def _pr(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
    }


def evaluate(corpus: list[dict] | None = None) -> dict:
    corpus = corpus if corpus is not None else load_corpus()
    products = demo_products()
    line = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    per_rule = {r: {"tp": 0, "fp": 0, "fn": 0} for r in RULES}
    errors = []
    for item in corpus:
        got = {v.rule for v in predict(item, products)}
        want = set(item["expect"])
        if want and got:
            line["tp"] += 1
        elif got:
            line["fp"] += 1
        elif want:
            line["fn"] += 1
        else:
            line["tn"] += 1
        for r in RULES:
            if r in got and r in want:
                per_rule[r]["tp"] += 1
            elif r in got:
                per_rule[r]["fp"] += 1
            elif r in want:
                per_rule[r]["fn"] += 1
        if got != want:
            errors.append({"text": item["text"], "sku": item.get("sku"), "expected": sorted(want), "got": sorted(got)})
    lines = _pr(line["tp"], line["fp"], line["fn"])
    lines["tn"] = line["tn"]
    return {
        "lines": len(corpus),
        "bad_lines": sum(1 for x in corpus if x["expect"]),
        "good_lines": sum(1 for x in corpus if not x["expect"]),
        "line_level": lines,
        "per_rule": {r: _pr(**v) for r, v in per_rule.items()},
        "exact_rule_sets": round(1 - len(errors) / len(corpus), 4),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--show-errors", action="store_true")
    a = ap.parse_args(argv)
    res = evaluate()
    if a.json:
        print(json.dumps(res, ensure_ascii=False))
        return 0
    ll = res["line_level"]
    print(f"compliance eval: {res['lines']} lines ({res['bad_lines']} bad, {res['good_lines']} good)")
    print(
        f"  line level: precision {ll['precision']:.3f}  recall {ll['recall']:.3f}  "
        f"(tp {ll['tp']}, fp {ll['fp']}, fn {ll['fn']}, tn {ll['tn']})"
    )
    for r, v in res["per_rule"].items():
        print(
            f"  {r:9s} precision {v['precision']:.3f}  recall {v['recall']:.3f}  (tp {v['tp']}, fp {v['fp']}, fn {v['fn']})"
        )
    print(f"  exact rule sets: {res['exact_rule_sets']:.3f}")
    if a.show_errors or res["errors"]:
        for e in res["errors"]:
            print(f"  MISMATCH {e['text']} [{e['sku'] or '-'}] expected {e['expected']} got {e['got']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
