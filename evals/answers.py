"""Answer quality on the demo catalog, split by path.

    python -m evals.answers [--llm] [--json]

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
import tempfile
from collections import defaultdict
from pathlib import Path

from agent.core import AgentConfig
from agent.messages import ViewerMessage
from evals.retrieval import DEMO
from liveroom.container import Container
from liveroom.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "evals" / "data" / "answer_questions.jsonl"
EXPECTED_TOOLS = {"recommend": {"search_products", "lookup_profile"}, "coupon": {"search_products", "issue_coupon"}}


def load(path: Path = QUESTIONS) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def judge(q: dict, ans) -> dict:
    text = ans.answer
    kind = q.get("kind", "")
    tools = {t.name for t in ans.tool_calls}
    tools_ok = EXPECTED_TOOLS.get(kind, {"search_products"}) <= tools
    if kind == "unanswerable":
        ok = ans.refused
    else:
        ok = (not ans.refused or kind == "recommend") and all(e in text for e in q.get("expect", [])) and \
             not any(c in text for c in q.get("confusable", []))
    return {"ok": ok, "tools_ok": tools_ok, "path": ans.path, "kind": kind}


async def run(use_llm: bool) -> list[tuple[dict, dict, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        c = Container(Settings(data_dir=Path(tmp), llm_autostart=False), AgentConfig(rate=(1000, 1.0)))
        files = sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
        c.kb.import_files("demo", files)
        if use_llm:
            await c.start_llm()
            await c.agent.warm_up("demo")
        out = []
        try:
            for i, q in enumerate(load()):
                ans = await c.agent.answer(ViewerMessage(merchant="demo", viewer_id=f"eval-{i}", text=q["q"]))
                out.append((q, judge(q, ans), ans))
        finally:
            await c.aclose()
        return out


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
    return {"all": block(alls), **{p: block(js) for p, js in sorted(by_path.items())},
            "by_kind": {k: block([j for j in alls if j["kind"] == k]) for k in sorted({j["kind"] for j in alls})}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm", action="store_true", help="start the embedded model for the LLM path")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failure")
    a = ap.parse_args()
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
        print(f"{name:<14} {b['n']:>4} {fmt(b['answer_accuracy']):>11} {fmt(b['correct_refusals']):>9} "
              f"{fmt(b['tool_call_accuracy']):>9}")
    fails = [(q, j, ans) for q, j, ans in results if not j["ok"]]
    if fails:
        print(f"\n{len(fails)} failures" + ("" if a.verbose else " (-v to list)"))
        if a.verbose:
            for q, j, ans in fails:
                print(f"  [{j['kind']}/{j['path']}] {q['q']} -> {ans.answer}  expect={q.get('expect')}")


if __name__ == "__main__":
    main()
