"""Intent classifier (agent/intent_model.py) quality on its labelled set, leave-one-category-out.

    python -m evals.parser [--json] [--kfold] [--tune]

LOCO: for each of the 12 product categories, train on the other 11 and predict the held-out one —
the question a new catalog asks. Per category: n, intent accuracy, direction accuracy (rows with a
direction label; a missing or wrong direction is a miss), macro-F1 over the intents present; then
overall LOCO accuracy and the top confusions. ``--kfold``: random stratified 5-fold, for reference.
``--tune``: grid over C and the n-gram weight by LOCO accuracy (labelled set only).

The set is embedded once; each fold refits the heads on precomputed vectors.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from agent.intent_model import (
    C_DIRECTION,
    C_INTENT,
    CHAR_WEIGHT,
    DEFAULT_DATA,
    EMB_WEIGHT,
    INTENTS,
    IntentModel,
    LabelledRow,
    load_labelled,
)
from knowledge.embedder import UseEmbedder


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    f1s = []
    for c in sorted(set(gold)):
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s) if f1s else 0.0


def _score(rows: list[LabelledRow], preds: list, idx: list[int]) -> dict:
    gold = [rows[i].intent for i in idx]
    got = [preds[i].intent for i in idx]
    drows = [i for i in idx if rows[i].direction]
    nodir = [i for i in idx if not rows[i].direction]
    return {
        "n": len(idx),
        "intent_acc": round(sum(g == p for g, p in zip(gold, got)) / len(idx), 3) if idx else 0.0,
        "n_direction": len(drows),
        "direction_acc": round(sum(preds[i].direction == rows[i].direction for i in drows) / len(drows), 3)
        if drows
        else None,
        "direction_false_pos": sum(preds[i].direction is not None for i in nodir),
        "macro_f1": round(macro_f1(gold, got), 3),
    }


def run_folds(
    rows: list[LabelledRow],
    vecs: np.ndarray,
    folds: dict[str, list[int]],
    embedder: UseEmbedder,
    quiet: bool = False,
    **hyper: float,
) -> tuple[list, dict[str, dict]]:
    preds: list = [None] * len(rows)
    per: dict[str, dict] = {}
    for name, test in folds.items():
        t0 = time.perf_counter()
        held = set(test)
        train = [i for i in range(len(rows)) if i not in held]
        model = IntentModel.train([rows[i] for i in train], embedder, vecs=vecs[train], **hyper)
        out = model.predict_many([rows[i].text for i in test], vecs=vecs[test])
        for i, p in zip(test, out):
            preds[i] = p
        per[name] = _score(rows, preds, test)
        if not quiet:
            s = per[name]
            print(
                f"  fold {name}: n={s['n']} acc={s['intent_acc']:.3f} ({time.perf_counter() - t0:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
    return preds, per


def confusions(rows: list[LabelledRow], preds: list, top: int = 10) -> list[dict]:
    c = Counter((r.intent, p.intent) for r, p in zip(rows, preds) if r.intent != p.intent)
    examples: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r, p in zip(rows, preds):
        if r.intent != p.intent and len(examples[(r.intent, p.intent)]) < 3:
            examples[(r.intent, p.intent)].append(r.text)
    return [{"gold": g, "pred": p, "n": n, "examples": examples[(g, p)]} for (g, p), n in c.most_common(top)]


def loco_folds(rows: list[LabelledRow]) -> dict[str, list[int]]:
    folds: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        folds[r.category].append(i)
    return dict(folds)


def kfold_folds(rows: list[LabelledRow], k: int = 5, seed: int = 13) -> dict[str, list[int]]:
    by_intent: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_intent[r.intent].append(i)
    folds: dict[str, list[int]] = {str(j): [] for j in range(k)}
    rng = random.Random(seed)
    for idx in by_intent.values():
        rng.shuffle(idx)
        for n, i in enumerate(idx):
            folds[str(n % k)].append(i)
    return folds


def summary(rows: list[LabelledRow], preds: list, per: dict[str, dict]) -> dict:
    allidx = list(range(len(rows)))
    overall = _score(rows, preds, allidx)
    by_intent = {}
    for intent in INTENTS:
        idx = [i for i in allidx if rows[i].intent == intent]
        if idx:
            by_intent[intent] = round(sum(preds[i].intent == intent for i in idx) / len(idx), 3)
    by_lang = {}
    for lang in sorted({r.lang for r in rows}):
        idx = [i for i in allidx if rows[i].lang == lang]
        by_lang[lang] = {
            "n": len(idx),
            "intent_acc": round(sum(preds[i].intent == rows[i].intent for i in idx) / len(idx), 3),
        }
    return {
        "overall": overall,
        "per_fold": per,
        "recall_by_intent": by_intent,
        "by_lang": by_lang,
        "confusions": confusions(rows, preds),
    }


def print_report(title: str, res: dict) -> None:
    print(f"\n{title}")
    print(f"{'fold':<10} {'n':>4} {'intent':>7} {'macroF1':>8} {'dir n':>6} {'dir acc':>8} {'dir FP':>7}")
    for name, s in res["per_fold"].items():
        da = f"{s['direction_acc']:.3f}" if s["direction_acc"] is not None else "-"
        print(
            f"{name:<10} {s['n']:>4} {s['intent_acc']:>7.3f} {s['macro_f1']:>8.3f} {s['n_direction']:>6} {da:>8} "
            f"{s['direction_false_pos']:>7}"
        )
    o = res["overall"]
    print(
        f"{'OVERALL':<10} {o['n']:>4} {o['intent_acc']:>7.3f} {o['macro_f1']:>8.3f} {o['n_direction']:>6} "
        f"{o['direction_acc']:>8.3f} {o['direction_false_pos']:>7}"
    )
    print("recall by intent: " + ", ".join(f"{k} {v:.2f}" for k, v in res["recall_by_intent"].items()))
    print("by lang: " + ", ".join(f"{k} {v['intent_acc']:.3f} (n={v['n']})" for k, v in res["by_lang"].items()))
    print("top confusions (gold → predicted):")
    for c in res["confusions"]:
        print(f"  {c['gold']:>11} → {c['pred']:<11} {c['n']:>3}   e.g. {' / '.join(c['examples'])}")


def tune(rows: list[LabelledRow], vecs: np.ndarray, embedder: UseEmbedder) -> list[dict]:
    folds = loco_folds(rows)
    results = []
    for c in (1.0, 3.0, 10.0, 30.0, 100.0):
        for cw in (0.5, 0.75, 1.0, 1.5):
            t0 = time.perf_counter()
            preds, _ = run_folds(rows, vecs, folds, embedder, quiet=True, c_intent=c, c_direction=c, char_weight=cw)
            s = _score(rows, preds, list(range(len(rows))))
            results.append({"C": c, "char_weight": cw, **s})
            print(
                f"  C={c:<6} char_weight={cw:<5} LOCO acc={s['intent_acc']:.3f} macroF1={s['macro_f1']:.3f} "
                f"dir={s['direction_acc']} dirFP={s['direction_false_pos']} ({time.perf_counter() - t0:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
    return sorted(results, key=lambda r: -r["intent_acc"])


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--kfold", action="store_true", help="also a random stratified 5-fold, for reference")
    ap.add_argument("--tune", action="store_true", help="grid-search C and the n-gram weight by LOCO")
    args = ap.parse_args(argv)

    rows = load_labelled(DEFAULT_DATA)
    embedder = UseEmbedder(threads=1)
    t0 = time.perf_counter()
    vecs = embedder.encode([r.text for r in rows])
    embed_s = time.perf_counter() - t0
    print(f"{len(rows)} labelled rows, embedded in {embed_s:.1f}s", file=sys.stderr, flush=True)

    out: dict = {
        "n": len(rows),
        "embed_seconds": round(embed_s, 2),
        "hyper": {
            "C_intent": C_INTENT,
            "C_direction": C_DIRECTION,
            "emb_weight": EMB_WEIGHT,
            "char_weight": CHAR_WEIGHT,
        },
        "rows_by_category": dict(Counter(r.category for r in rows)),
        "rows_by_intent": dict(Counter(r.intent for r in rows)),
    }
    if args.tune:
        out["tune"] = tune(rows, vecs, embedder)
    print("leave-one-category-out:", file=sys.stderr, flush=True)
    preds, per = run_folds(rows, vecs, loco_folds(rows), embedder)
    out["loco"] = summary(rows, preds, per)
    if args.kfold:
        print("random 5-fold:", file=sys.stderr, flush=True)
        kpreds, kper = run_folds(rows, vecs, kfold_folds(rows), embedder)
        out["kfold"] = summary(rows, kpreds, kper)

    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print_report(
            f"LOCO (train on 11 categories, test the 12th) — C={C_INTENT}, char_weight={CHAR_WEIGHT}", out["loco"]
        )
        if args.kfold:
            print_report("random stratified 5-fold (reference)", out["kfold"])
        if args.tune:
            print("\ntune (best first):")
            for r in out["tune"][:8]:
                print(
                    f"  C={r['C']} char_weight={r['char_weight']}: LOCO acc {r['intent_acc']:.3f}, macroF1 {r['macro_f1']:.3f}"
                )
        print(f"\nLOCO intent accuracy: {out['loco']['overall']['intent_acc']:.3f}")
    return out


if __name__ == "__main__":
    main()
