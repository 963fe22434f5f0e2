"""Multi-turn eval: follow-ups, variants, language switches and named products over three catalogs.

    python -m evals.multiturn [--catalog demo|gadgets|pets|outdoor|all] [--llm] [-v] [--json]

``all`` is the three tuning catalogs; ``outdoor`` (held out, written blind) reads
evals/data/catalogs/outdoor/multiturn.jsonl and is reported on its own.

Each line of evals/data/multiturn.jsonl is one exchange of two or three turns sent in order by one viewer
in one room (``ViewerMessage(..., channel="sim")``, awaited one after the other), so the agent's
conversation memory is what carries "那大号呢" / "and in English?" / "包邮吗" from one turn to the next.

Per turn:
- ``q``: what the viewer types; ``lang``: the language the answer must be in ("zh" / "en");
- ``expect``: every value must appear in the answer (numbers on number boundaries: "99" does not
  match inside "199", see evals.answers._has); ``expect_any``: at least one must appear;
- ``confusable``: none may appear (the focus product's price when another product was named, a
  sibling's value, the product's price when the store policy was asked …);
- ``must_refuse``: the catalog cannot answer it, so the answer must be an honest "I'll check"
  (``AgentAnswer.refused`` or a sentence saying it is not known), never an invented fact;
- ``sku``: the product(s) the answer is about (a list for comparisons) and ``source: "policy"``
  for a store-policy answer; they are not sent to the agent, they ground the expected values
  (tests/test_multiturn_eval.py checks every value against that product's data or the policy text);
- ``context_sku`` (optional): the product on screen, sent as ``ViewerMessage.context_sku``.

An exchange is right when every one of its turns is right. The report gives accuracy per catalog, per
kind and overall (exchanges and turns), the fast/LLM path split and wall p50/p95 per answer. Only the
agent's public API is used (Container, agent.answer, ViewerMessage, AgentAnswer.answer / refused /
path / lang).

Language is judged on the answer's own words: the catalog's product names, aliases, series and variant
names are removed first (they are proper nouns an English answer may quote), then an "en" answer must
have at least 3 Latin letters per CJK character left and a "zh" answer must contain CJK and fewer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evals.answers import CATALOGS, _has, _pct, import_catalog
from evals.retrieval import DEMO

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "evals" / "data" / "multiturn.jsonl"
CATALOG_NAMES = ("demo", "gadgets", "pets", "outdoor", "kitchen", "baby")
# Written blind and kept out of all tuning; its exchanges live beside the catalog and are never in "all".
HELD_OUT = ("outdoor", "kitchen", "baby")  # each catalog's own file, written blind
KINDS = (
    "followup",
    "variant_followup",
    "language_switch",
    "named_override",
    "compare_followup",
    "policy_followup",
    "recommend_then_detail",
)
TURN_KEYS = {"q", "lang", "expect", "expect_any", "confusable", "must_refuse", "sku", "source", "context_sku", "note"}
EXCHANGE_KEYS = {"id", "catalog", "kind", "viewer", "turns", "note"}

# An honest "not in the catalog / I'll check" when the flag is not set (an LLM may phrase it itself).
REFUSAL = re.compile(
    r"确认|核实|不确定|不清楚|没有(?:这|相关|具体)?(?:方面|个|项)?(?:的)?(?:信息|资料|数据|说明)|暂无|没有标注|没写|"
    r"帮你问|帮您问|问一下主播|问问主播|请主播|稍后|"
    r"I'?ll check|not sure|don'?t (?:have|know)|no (?:information|info|details)|not (?:listed|stated|mentioned)|"
    r"isn'?t (?:listed|stated|mentioned)|check with",
    re.I,
)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


# ---------------------------------------------------------------- data


def load(path: Path = DATA) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def catalog_dir(name: str) -> Path:
    return DEMO if name == "demo" else CATALOGS / name


def catalog_data(name: str) -> dict[str, Any]:
    """The raw catalog: products by sku, and the store text (policies/*.md, qa.csv, merchant description)."""
    src = catalog_dir(name)
    raw = json.loads((src / "products.json").read_text(encoding="utf-8"))
    products = {p["sku"]: p for p in raw.get("products", [])}
    store = [json.dumps(raw.get("merchant", {}), ensure_ascii=False)]
    store += [p.read_text(encoding="utf-8") for p in sorted((src / "policies").glob("*.md"))]
    if (src / "qa.csv").exists():
        store.append((src / "qa.csv").read_text(encoding="utf-8"))
    return {"products": products, "store": "\n".join(store)}


def product_text(p: dict) -> str:
    """Every value of a product (name, prices, stock, specs, variants, FAQ, suitability …) as one string."""
    return json.dumps(p, ensure_ascii=False)


def _as_list(v: str | list[str] | None) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


def proper_nouns(products: Iterable[dict]) -> list[str]:
    """Names an answer in either language may quote as they are, longest first."""
    out: set[str] = set()
    for p in products:
        out.update(x for x in [p.get("name"), p.get("series"), p.get("category")] if x)
        out.update(_as_list(p.get("aliases")))
        out.update(v["name"] for v in p.get("variants") or [] if v.get("name"))
        out.update(w for w in re.split(r"\s+", p.get("name", "")) if w)  # "暖光", "极电", name parts
    return sorted(out, key=len, reverse=True)


def lang_of(text: str, nouns: Iterable[str] = ()) -> str:
    """'en' when, catalog names removed, Latin letters outnumber CJK characters 3 to 1; else 'zh'."""
    for n in nouns:
        text = text.replace(n, " ")
    cjk, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
    if cjk == 0 and latin == 0:
        return "none"
    return "en" if latin >= 3 * cjk else "zh"


def validate(exchanges: list[dict]) -> list[str]:
    """Problems with the data set (empty when it is sound): schema, skus, and every expected value
    grounded in the product's data (or the store's policy text for ``source: "policy"``)."""
    problems: list[str] = []
    cats = {n: catalog_data(n) for n in CATALOG_NAMES}
    seen_ids: set[str] = set()
    seen_viewers: set[str] = set()
    for ex in exchanges:
        eid = ex.get("id", "?")
        where = f"{eid}:"
        if eid in seen_ids:
            problems.append(f"{where} duplicate id")
        seen_ids.add(eid)
        if set(ex) - EXCHANGE_KEYS:
            problems.append(f"{where} unknown keys {sorted(set(ex) - EXCHANGE_KEYS)}")
        if ex.get("catalog") not in cats:
            problems.append(f"{where} unknown catalog {ex.get('catalog')!r}")
            continue
        if ex.get("kind") not in KINDS:
            problems.append(f"{where} unknown kind {ex.get('kind')!r}")
        v = ex.get("viewer")
        if not v or v in seen_viewers:
            problems.append(f"{where} viewer missing or not unique: {v!r}")
        seen_viewers.add(v)
        turns = ex.get("turns") or []
        if not 2 <= len(turns) <= 3:
            problems.append(f"{where} {len(turns)} turns (want 2 or 3)")
        cat = cats[ex["catalog"]]
        for i, t in enumerate(turns):
            w = f"{eid}[{i}]:"
            if set(t) - TURN_KEYS:
                problems.append(f"{w} unknown keys {sorted(set(t) - TURN_KEYS)}")
            if not str(t.get("q", "")).strip():
                problems.append(f"{w} empty q")
            if t.get("lang") not in ("zh", "en"):
                problems.append(f"{w} lang must be zh or en")
            expect, any_, conf = _as_list(t.get("expect")), _as_list(t.get("expect_any")), _as_list(t.get("confusable"))
            skus = _as_list(t.get("sku"))
            for s in skus + _as_list(t.get("context_sku")):
                if s not in cat["products"]:
                    problems.append(f"{w} sku {s} not in catalog {ex['catalog']}")
            policy = t.get("source") == "policy"
            if t.get("source") not in (None, "policy"):
                problems.append(f"{w} unknown source {t.get('source')!r}")
            if t.get("must_refuse"):
                if expect or any_:
                    problems.append(f"{w} must_refuse with expected values")
            elif not (expect or any_):
                problems.append(f"{w} nothing expected and not must_refuse")
            elif not skus and not policy:
                problems.append(f"{w} expected values need sku or source=policy to ground them")
            grounding = (cat["store"] if policy else "") + "".join(
                product_text(cat["products"][s]) for s in skus if s in cat["products"]
            )
            for e in expect + any_:
                if (expect or any_) and not _has(grounding, e, strict=True):
                    problems.append(f"{w} expected {e!r} not in the data of {skus or 'the store policies'}")
                if t.get("lang") == "en" and _CJK.search(e):
                    problems.append(f"{w} English answer cannot be expected to contain {e!r}")
            for c in conf:
                if c in expect or c in any_:
                    problems.append(f"{w} {c!r} both expected and confusable")
                if grounding and _has(grounding, c, strict=True):
                    problems.append(f"{w} confusable {c!r} is in the answer's own data (a right answer may say it)")
                everywhere = cat["store"] + "".join(product_text(p) for p in cat["products"].values())
                if not _has(everywhere, c, strict=True):
                    problems.append(f"{w} confusable {c!r} appears nowhere in the catalog")
    return problems


# ---------------------------------------------------------------- judging


def judge_turn(t: dict, ans: Any, nouns: list[str]) -> dict:
    text = ans.answer or ""
    has = lambda v: _has(text, v, strict=True)  # noqa: E731
    why: list[str] = []
    if t.get("must_refuse"):
        if not (ans.refused or REFUSAL.search(text)):
            why.append("not an honest refusal")
    else:
        if ans.refused and not all(has(e) for e in _as_list(t.get("expect"))):
            why.append("refused")
        why += [f"missing {e!r}" for e in _as_list(t.get("expect")) if not has(e)]
        if t.get("expect_any") and not any(has(e) for e in _as_list(t.get("expect_any"))):
            why.append(f"none of {_as_list(t.get('expect_any'))}")
    why += [f"confusable {c!r}" for c in _as_list(t.get("confusable")) if has(c)]
    got = lang_of(text, nouns)
    if got != t["lang"]:
        why.append(f"lang {got} (want {t['lang']})")
    return {"ok": not why, "why": why, "lang": got}


async def run_exchange(agent: Any, merchant: str, room: str, ex: dict, nouns: list[str]) -> dict:
    from agent.messages import ViewerMessage

    turns = []
    for t in ex["turns"]:
        t0 = time.perf_counter()
        ans = await agent.answer(
            ViewerMessage(
                merchant=merchant,
                room_id=room,
                viewer_id=ex["viewer"],
                text=t["q"],
                context_sku=t.get("context_sku"),
                channel="sim",
            )
        )
        wall = (time.perf_counter() - t0) * 1000
        j = judge_turn(t, ans, nouns)
        turns.append(
            {
                **j,
                "q": t["q"],
                "answer": ans.answer,
                "refused": ans.refused,
                "path": ans.path,
                "agent_lang": ans.lang,
                "wall_ms": wall,
            }
        )
    return {
        "id": ex["id"],
        "catalog": ex["catalog"],
        "kind": ex["kind"],
        "ok": all(t["ok"] for t in turns),
        "turns": turns,
    }


async def run(
    exchanges: list[dict], use_llm: bool = False, progress: bool = True, info: dict | None = None
) -> list[dict]:
    """Import every catalog the exchanges use into one throwaway container and run them in file order."""
    from agent.core import AgentConfig
    from core.settings import Settings
    from liveroom.container import Container

    cats = [n for n in CATALOG_NAMES if any(ex["catalog"] == n for ex in exchanges)]
    out: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        c = Container(Settings(data_dir=Path(tmp), llm_autostart=False), AgentConfig(rate=(1000, 1.0)))
        notes = {}
        for n in cats:
            if n == "demo":
                files = sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
                c.kb.import_files("demo", files)
                notes[n] = "imported as written"
            else:
                notes[n] = import_catalog(c, n, Path(tmp))
        if info is not None:
            info["import"] = notes
        try:
            if use_llm:
                await c.start_llm()
                for n in cats:
                    await c.agent.warm_up(n)
            for n in cats:  # as the server does at startup: the first question pays no warm-up
                await c.agent.prepare(n)
            nouns = {n: proper_nouns(catalog_data(n)["products"].values()) for n in cats}
            t0 = time.perf_counter()
            for i, ex in enumerate(exchanges, 1):
                out.append(await run_exchange(c.agent, ex["catalog"], f"mt-{ex['catalog']}", ex, nouns[ex["catalog"]]))
                if progress and (i % 10 == 0 or i == len(exchanges)):
                    ok = sum(r["ok"] for r in out)
                    print(
                        f"  {i}/{len(exchanges)} exchanges, {ok} right, {time.perf_counter() - t0:.0f}s",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            await c.aclose()
    return out


# ---------------------------------------------------------------- report


def _acc(rs: list[dict]) -> dict:
    n, ok = len(rs), sum(r["ok"] for r in rs)
    return {"n": n, "ok": ok, "acc": round(ok / n, 3) if n else None}


def report(results: list[dict]) -> dict:
    turns = [t for r in results for t in r["turns"]]
    walls = [t["wall_ms"] for t in turns]
    cats = [n for n in CATALOG_NAMES if any(r["catalog"] == n for r in results)]
    kinds = [k for k in KINDS if any(r["kind"] == k for r in results)]
    return {
        "exchanges": _acc(results),
        "turns": _acc(turns),
        "by_catalog": {n: _acc([r for r in results if r["catalog"] == n]) for n in cats},
        "by_kind": {k: _acc([r for r in results if r["kind"] == k]) for k in kinds},
        "by_catalog_kind": {
            n: {k: _acc([r for r in results if r["catalog"] == n and r["kind"] == k]) for k in kinds} for n in cats
        },
        "lang_right": _acc([{"ok": not any(w.startswith("lang ") for w in t["why"])} for t in turns]),
        "paths": {p: sum(t["path"] == p for t in turns) for p in sorted({t["path"] for t in turns})},
        "llm_answers": sum(t["path"] == "llm" for t in turns),
        "wall_ms_p50": round(_pct(walls, 50) or 0, 1),
        "wall_ms_p95": round(_pct(walls, 95) or 0, 1),
    }


def _fmt(b: dict) -> str:
    return f"{b['n']:>4} {b['ok']:>4} {'-' if b['acc'] is None else format(b['acc'], '.3f'):>6}"


def print_report(results: list[dict], info: dict, use_llm: bool, verbose: bool) -> None:
    r = report(results)
    print(
        f"multi-turn eval: {r['exchanges']['n']} exchanges, {r['turns']['n']} turns "
        f"({'with' if use_llm else 'without'} the LLM)"
    )
    for n, note in (info.get("import") or {}).items():
        print(f"import {n}: {note}")
    print(f"\n{'catalog':<24} {'n':>4} {'ok':>4} {'acc':>6}")
    for n, b in r["by_catalog"].items():
        print(f"{n:<24} {_fmt(b)}")
    print(f"\n{'kind':<24} {'n':>4} {'ok':>4} {'acc':>6}   " + "  ".join(f"{n:>9}" for n in r["by_catalog"]))
    for k, b in r["by_kind"].items():
        cells = []
        for n in r["by_catalog"]:
            cb = r["by_catalog_kind"][n][k]
            cells.append(f"{cb['ok']:>4}/{cb['n']:<4}" if cb["n"] else f"{'-':>9}")
        print(f"{k:<24} {_fmt(b)}   " + "  ".join(cells))
    print(f"\n{'overall (exchanges)':<24} {_fmt(r['exchanges'])}")
    print(f"{'turns':<24} {_fmt(r['turns'])}")
    print(f"{'answer language right':<24} {_fmt(r['lang_right'])}")
    print(f"path split: {r['paths']}   LLM answers: {r['llm_answers']}/{r['turns']['n']}")
    print(f"wall per answer: p50 {r['wall_ms_p50']} ms, p95 {r['wall_ms_p95']} ms")
    fails = [x for x in results if not x["ok"]]
    print(f"\n{len(fails)} failing exchanges" + ("" if verbose else " (-v to list)"))
    if verbose:
        for x in fails:
            print(f"\n[{x['id']} {x['catalog']}/{x['kind']}]")
            for i, t in enumerate(x["turns"]):
                mark = "ok " if t["ok"] else "BAD"
                print(f"  {mark} {i + 1}. {t['q']}")
                print(f"        -> {t['answer']!r}  (path={t['path']}, refused={t['refused']}, lang={t['lang']})")
                if t["why"]:
                    print(f"        why: {'; '.join(t['why'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default="all", choices=[*CATALOG_NAMES, "all"])
    ap.add_argument("--llm", action="store_true", help="start the embedded model for the LLM path")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failing exchange with its answers")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA, help=argparse.SUPPRESS)
    a = ap.parse_args()
    exchanges = load(CATALOGS / a.catalog / "multiturn.jsonl") if a.catalog in HELD_OUT else load(a.data)
    problems = validate(exchanges)
    if problems:
        print("multiturn.jsonl does not validate:\n  " + "\n  ".join(problems), file=sys.stderr)
        raise SystemExit(2)
    if a.catalog != "all":
        exchanges = [ex for ex in exchanges if ex["catalog"] == a.catalog]
    info: dict = {}
    results = asyncio.run(run(exchanges, a.llm, progress=True, info=info))
    if a.json:
        print(json.dumps({"import": info.get("import"), **report(results), "results": results}, ensure_ascii=False))
    else:
        print_report(results, info, a.llm, a.verbose)


if __name__ == "__main__":
    main()
