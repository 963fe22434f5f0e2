"""Answer quality on the demo catalog, split by path.

    python -m evals.answers [--llm] [--json]
    python -m evals.answers --catalog gadgets [--llm] [--sample 30] [-v]

--catalog NAME imports evals/data/catalogs/NAME (products.json, qa.csv, policies/*.md) into a throwaway
data dir as merchant NAME and runs NAME/questions.jsonl; the report adds accuracy by kind and by style tag
(typo / pinyin / en / mixed), refusal rate on unanswerable, comparisons right (both values and the winner),
the fast/LLM path split and wall p50/p95. Without --catalog the demo eval runs exactly as before.

- answerable questions: % whose answer contains every expected fact and none of the confusable
  ones (e.g. the sibling product's price);
- unanswerable questions: % correctly refused ("I'll check with the host"), never invented;
- tool-call accuracy: the expected tools were called (search for every question; profile for
  recommendations; coupon issue for coupon requests).
With --llm the embedded model is started and serves the LLM path (recommendations, chit-chat).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from agent.core import AgentConfig
from agent.messages import ViewerMessage
from core.settings import Settings
from evals.retrieval import DEMO
from knowledge.importers import KBImportError
from liveroom.container import Container

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "evals" / "data" / "answer_questions.jsonl"
CATALOGS = ROOT / "evals" / "data" / "catalogs"
LIST_FIELDS = ("aliases", "selling_points", "suitable_for", "not_suitable_for")
EXPECTED_TOOLS = {"recommend": {"search_products", "lookup_profile"}, "coupon": {"search_products", "issue_coupon"}}


def load(path: Path = QUESTIONS) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _has(text: str, v: str, strict: bool) -> bool:
    """Substring match; with ``strict`` a value that starts/ends with a digit must not sit inside a longer
    number ("99" does not match "199元", "1m" does not match "1.1m")."""
    if not strict:
        return v in text
    pre = r"(?<![\d.])" if v[:1].isdigit() else ""
    post = r"(?![\d])" if v[-1:].isdigit() else ""
    return re.search(pre + re.escape(v) + post, text) is not None


def own_values(product) -> set[str]:
    """Every value of one product's own data (prices, list price, option prices, specs): a confusable that
    is one of them (the sibling's price equal to this product's list price) cannot mark its answer wrong."""
    from knowledge.facts import fmt_price

    out = {fmt_price(product.price)} | ({fmt_price(product.list_price)} if product.list_price else set())
    out |= {fmt_price(v.price) for v in product.variant_list() if v.price is not None}
    return out | set(product.specs.values())


def judge(q: dict, ans, strict: bool = False, own: set[str] = frozenset()) -> dict:
    """``strict`` (catalog runs) matches numbers on number boundaries; the demo keeps plain substrings.
    ``own``: the asked product's own values, never counted as confusable (catalog runs)."""
    text = ans.answer
    has = lambda v: _has(text, v, strict)  # noqa: E731
    q = {**q, "confusable": [c for c in q.get("confusable", []) if not any(c == v or c in v.split() for v in own)]}
    kind = q.get("kind", "")
    tools = {t.name for t in ans.tool_calls}
    tools_ok = EXPECTED_TOOLS.get(kind, {"search_products"}) <= tools
    if kind == "unanswerable":
        ok = ans.refused
    elif kind == "chitchat":  # anything friendly goes, as long as it answers and invents no listed fact
        ok = bool(text.strip()) and not any(has(c) for c in q.get("confusable", []))
    else:
        ok = (
            (not ans.refused or kind == "recommend")
            and all(has(e) for e in q.get("expect", []))
            and not any(has(c) for c in q.get("confusable", []))
        )
        if q.get("expect_any"):
            ok = ok and any(has(e) for e in q["expect_any"])
        if q.get("winner"):  # a comparison must also name the winning value / product
            ok = ok and has(q["winner"])
    return {"ok": ok, "tools_ok": tools_ok, "path": ans.path, "kind": kind, "tag": q.get("tag", "")}


def _coerce_lists(src: Path, dst: Path) -> int:
    """Copy products.json splitting string list fields ("大型犬、中型犬") into lists; returns how many."""
    data = json.loads(src.read_text(encoding="utf-8"))
    n = 0
    for p in data.get("products", []):
        for f in LIST_FIELDS:
            if isinstance(p.get(f), str):
                p[f] = [x.strip() for x in re.split(r"[、,，;；/]", p[f]) if x.strip()]
                n += 1
    dst.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return n


def import_catalog(c: Container, name: str, tmp: Path) -> str:
    """Import catalog NAME as merchant NAME; returns a note on what the importer did with the raw files."""
    src = CATALOGS / name
    files = sorted(p for p in src.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
    try:
        c.kb.import_files(name, files)
        return "imported as written"
    except KBImportError as e:
        issues = getattr(e, "issues", [])
        copy = tmp / "_catalog"
        shutil.copytree(src, copy)
        n = _coerce_lists(src / "products.json", copy / "products.json")
        c.kb.import_files(
            name, sorted(p for p in copy.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
        )
        return (
            f"raw import REJECTED ({len(issues)} issues, e.g. {issues[0] if issues else e}); "
            f"ran on a copy with {n} string list fields split into lists"
        )


async def run(
    use_llm: bool, catalog: str | None = None, sample: int | None = None, seed: int = 13, info: dict | None = None
) -> list[tuple[dict, dict, object]]:
    merchant = catalog or "demo"
    with tempfile.TemporaryDirectory() as tmp:
        c = Container(Settings(data_dir=Path(tmp), llm_autostart=False), AgentConfig(rate=(1000, 1.0)))
        if catalog:
            note = import_catalog(c, catalog, Path(tmp))
            qs = load(CATALOGS / catalog / "questions.jsonl")
        else:
            files = sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
            c.kb.import_files("demo", files)
            note, qs = "", load()
        if info is not None:
            info["import"] = note
        if sample and sample < len(qs):
            qs = random.Random(seed).sample(qs, sample)
        if use_llm:
            await c.start_llm()
            await c.agent.warm_up(merchant)
        await c.agent.prepare(merchant)  # as the server does at startup: the first question pays no warm-up
        out = []
        try:
            for i, q in enumerate(qs):
                t0 = time.perf_counter()
                ans = await c.agent.answer(ViewerMessage(merchant=merchant, viewer_id=f"eval-{i}", text=q["q"]))
                p = c.kb.snapshot(merchant).product(q["sku"]) if catalog and q.get("sku") else None
                j = judge(q, ans, strict=bool(catalog), own=own_values(p) if p is not None else frozenset())
                j["wall_ms"] = (time.perf_counter() - t0) * 1000
                out.append((q, j, ans))
        finally:
            await c.aclose()
        return out


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def catalog_report(results) -> dict:
    js = [j for _, j, _ in results]

    def acc(sel):
        return {
            "n": len(sel),
            "ok": sum(j["ok"] for j in sel),
            "acc": round(sum(j["ok"] for j in sel) / len(sel), 3) if sel else None,
        }

    ans = [j for j in js if j["kind"] not in {"unanswerable", "chitchat"}]
    walls = [j["wall_ms"] for j in js]
    return {
        "n": len(js),
        "answerable": acc(ans),
        "by_kind": {k: acc([j for j in js if j["kind"] == k]) for k in sorted({j["kind"] for j in js})},
        "by_tag": {t: acc([j for j in js if j["tag"] == t]) for t in sorted({j["tag"] for j in js} - {""})},
        "refusal_rate_unanswerable": acc([j for j in js if j["kind"] == "unanswerable"])["acc"],
        "false_refusals_answerable": sum(
            a.refused for q, j, a in results if j["kind"] not in {"unanswerable", "chitchat", "recommend"}
        ),
        "comparisons_right": acc([j for j in js if j["kind"] == "compare"]),
        "paths": {p: sum(j["path"] == p for j in js) for p in sorted({j["path"] for j in js})},
        "by_path": {p: acc([j for j in js if j["path"] == p]) for p in sorted({j["path"] for j in js})},
        "wall_ms_p50": round(_pct(walls, 50) or 0, 1),
        "wall_ms_p95": round(_pct(walls, 95) or 0, 1),
        "wall_ms_max": round(max(walls, default=0.0), 1),
        "tool_call_accuracy": round(sum(j["tools_ok"] for j in js) / len(js), 3) if js else None,
        # The model's share: answers it wrote, and small-talk tries past their budget (a set reply went).
        "llm_written": sum(a.path == "llm" for _, _, a in results),
        "llm_past_budget": sum("smalltalk_budget" in a.flags or "llm_unavailable" in a.flags for _, _, a in results),
        "llm_rejected_sentences": sum(
            any(f.startswith("claims:") for f in a.flags) and a.path == "llm" for _, _, a in results
        ),
    }


def print_catalog(name: str, results, info: dict, use_llm: bool, verbose: bool) -> None:
    r = catalog_report(results)
    print(f"catalog eval: {name}, {r['n']} questions ({'with' if use_llm else 'without'} the LLM)")
    print(f"import: {info.get('import')}")
    print(f"{'split':<18} {'n':>4} {'ok':>4} {'acc':>6}")
    rows = (
        [("answerable", r["answerable"])]
        + [(f"kind:{k}", v) for k, v in r["by_kind"].items()]
        + [(f"tag:{k}", v) for k, v in r["by_tag"].items()]
        + [(f"path:{k}", v) for k, v in r["by_path"].items()]
    )
    for n, b in rows:
        print(f"{n:<18} {b['n']:>4} {b['ok']:>4} {'-' if b['acc'] is None else format(b['acc'], '.3f'):>6}")
    print(f"refusal rate on unanswerable: {r['refusal_rate_unanswerable']}")
    print(f"false refusals on answerable (excl. recommend): {r['false_refusals_answerable']}")
    print(f"comparisons right: {r['comparisons_right']['ok']}/{r['comparisons_right']['n']}")
    print(
        f"path split: {r['paths']}   wall p50 {r['wall_ms_p50']} ms, p95 {r['wall_ms_p95']} ms, max {r['wall_ms_max']} ms"
    )
    print(
        f"model: wrote {r['llm_written']} answers, {r['llm_past_budget']} tries past their budget "
        "(the composed reply went)"
    )
    print(f"tool-call accuracy: {r['tool_call_accuracy']}")
    fails = [(q, j, a) for q, j, a in results if not j["ok"]]
    print(f"\n{len(fails)} failures" + ("" if verbose else " (-v to list)"))
    if verbose:
        for q, j, a in fails:
            want = q.get("expect") or q.get("expect_any") or ("<refuse>" if q.get("must_refuse") else "")
            print(
                f"  [{j['kind']}/{j['path']}{'/' + j['tag'] if j['tag'] else ''}] {q['q']} -> "
                f"{a.answer!r}  refused={a.refused} expect={want} winner={q.get('winner')}"
            )


def summarize(results) -> dict:
    by_path: dict[str, list[dict]] = defaultdict(list)
    for _, j, _ in results:
        by_path[j["path"]].append(j)

    def block(js: list[dict]) -> dict:
        ans = [j for j in js if j["kind"] != "unanswerable"]
        un = [j for j in js if j["kind"] == "unanswerable"]
        return {
            "n": len(js),
            "answer_accuracy": round(sum(j["ok"] for j in ans) / len(ans), 3) if ans else None,
            "correct_refusals": round(sum(j["ok"] for j in un) / len(un), 3) if un else None,
            "tool_call_accuracy": round(sum(j["tools_ok"] for j in js) / len(js), 3) if js else None,
        }

    alls = [j for _, j, _ in results]
    return {
        "all": block(alls),
        **{p: block(js) for p, js in sorted(by_path.items())},
        "by_kind": {k: block([j for j in alls if j["kind"] == k]) for k in sorted({j["kind"] for j in alls})},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm", action="store_true", help="start the embedded model for the LLM path")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failure")
    ap.add_argument("--catalog", metavar="NAME", help="run evals/data/catalogs/NAME instead of the demo")
    ap.add_argument("--sample", type=int, help="run a random sample of N questions (fixed seed)")
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    if a.catalog:
        info: dict = {}
        results = asyncio.run(run(a.llm, a.catalog, a.sample, a.seed, info))
        if a.json:
            print(
                json.dumps(
                    {"catalog": a.catalog, "import": info.get("import"), **catalog_report(results)}, ensure_ascii=False
                )
            )
        else:
            print_catalog(a.catalog, results, info, a.llm, a.verbose)
        return
    results = asyncio.run(run(a.llm))
    s = summarize(results)
    if a.json:
        print(json.dumps(s, ensure_ascii=False))
        return
    print(f"answer eval: {s['all']['n']} questions ({'with' if a.llm else 'without'} the LLM)")
    print(f"{'split':<14} {'n':>4} {'answer acc':>11} {'refusals':>9} {'tool acc':>9}")
    for name in ["all", "fast", "llm"] + [f"kind:{k}" for k in s["by_kind"]]:
        b = s["by_kind"][name[5:]] if name.startswith("kind:") else s.get(name)
        if not b:
            continue
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(
            f"{name:<14} {b['n']:>4} {fmt(b['answer_accuracy']):>11} {fmt(b['correct_refusals']):>9} "
            f"{fmt(b['tool_call_accuracy']):>9}"
        )
    fails = [(q, j, ans) for q, j, ans in results if not j["ok"]]
    if fails:
        print(f"\n{len(fails)} failures" + ("" if a.verbose else " (-v to list)"))
        if a.verbose:
            for q, j, ans in fails:
                print(f"  [{j['kind']}/{j['path']}] {q['q']} -> {ans.answer}  expect={q.get('expect')}")


if __name__ == "__main__":
    main()
