"""Run a regression set through the production agent, pinned to one KB version (and prompt drafts).

The agent that answers is the app's own ``Agent`` (same config, intent model, claim checker, LLM client,
prompt store), copied with three things swapped: the knowledge base is pinned to the version under
test (``KnowledgeBase.pinned``), so are the catalog tools, and answers go to a private answer bus (a
run never shows in the live log, the metrics or the drift watch). Nothing else differs from a viewer's
question: the same triage, understanding, composition and claim checks run.

A run yields the event loop after every case and sleeps ``pace`` × the time the case took, so a run
during a show takes at most 1/(1+pace) of a core away from live answers. It shares the process (and
its GIL) with them, so it also gives way to them: before each case it waits while ``live_busy()`` says
viewers' questions are being answered (the server's admission count), up to ``max_yield_s``, and while
live questions were seen in the last ``live_window_s`` it paces itself at ``live_pace`` (9: a tenth of a
core at most) — a run finishes under a steady stream of questions, slowly, and at full pace off-show.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from agent.bus import AnswerBus
from agent.core import Agent
from agent.guardrails import RateLimiter
from agent.memory import Memory
from agent.messages import ViewerMessage
from knowledge.store import KnowledgeBase, LoadedVersion
from prompts import loader as prompt_loader
from regression.cases import Case, judge, rebase
from regression.store import SUMMARY_KEYS, CaseStore
from tools.catalog import catalog_tools

Progress = Callable[[str, int, int], None]


class Cancelled(Exception):
    pass


def pinned_agent(base: Agent, kb: KnowledgeBase, snap: LoadedVersion) -> Agent:
    """The app's agent answering from ``snap`` (see the module docstring)."""
    a = copy.copy(base)
    a.kb = kb.pinned(snap)
    a.tools = base.tools.replaced(catalog_tools(a.kb))
    a.memory = Memory()
    a.answers = AnswerBus()
    a.limiter = RateLimiter(rate=1_000_000, per=1.0, burst=1_000_000)
    return a


def _cites(snap: LoadedVersion, ans: Any) -> list[dict[str, Any]]:
    out = []
    for c in ans.citations[:6]:
        f = snap.fact(c.fact_id)
        out.append({"fact_id": c.fact_id, "sku": c.sku, "text": f.text if f else None})
    return out


async def answer_cases(
    agent: Agent,
    snap: LoadedVersion,
    cases: list[Case],
    *,
    prompt_drafts: dict[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    pace: float = 0.0,
    live_busy: Callable[[], bool] | None = None,
    max_yield_s: float = 0.5,
    live_pace: float = 9.0,
    live_window_s: float = 2.0,
) -> dict[str, dict[str, Any]]:
    """case id → {answer, refused, passed, reasons, citations, path, intent, latency_ms}."""
    out: dict[str, dict[str, Any]] = {}
    merchant = snap.merchant
    with prompt_loader.scope(merchant, agent.prompt_store, prompt_drafts or {}):
        if not snap.lexicon_ready:
            await asyncio.to_thread(lambda: snap.lexicon)
        last_live = -1e9
        for i, c in enumerate(cases):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            if live_busy is not None:  # live questions first (see the module docstring)
                until = time.perf_counter() + max_yield_s
                while live_busy() and time.perf_counter() < until:
                    last_live = time.perf_counter()
                    await asyncio.sleep(0.005)
            t0 = time.perf_counter()
            ans = await agent.answer(
                ViewerMessage(
                    merchant=merchant,
                    room_id="regression",
                    viewer_id=f"regression-{i}",
                    text=c.question,
                    channel="console",
                )
            )
            v = judge(c, ans.answer, ans.refused)
            out[c.id] = {
                "answer": ans.answer,
                "refused": ans.refused,
                "passed": v.passed,
                "reasons": v.reasons,
                "citations": _cites(snap, ans),
                "path": ans.path,
                "intent": ans.intent,
                "latency_ms": ans.latency_ms,
            }
            if progress:
                progress(i + 1)
            took = time.perf_counter() - t0
            if live_busy is not None and live_busy():
                last_live = time.perf_counter()
            live = time.perf_counter() - last_live < live_window_s  # a show is on: at most 1/(1+live_pace)
            await asyncio.sleep(took * max(pace, live_pace if live else 0.0))
    return out


def _changed_skus(a: LoadedVersion, b: LoadedVersion) -> set[str]:
    pa, pb = a.products, b.products
    return {s for s in pa.keys() | pb.keys() if pa.get(s) != pb.get(s)}


def _selection(planned: list[tuple[Case, str, str]], a: LoadedVersion, b: LoadedVersion, budget: int) -> set[str]:
    """Every case the draft can have changed, then a sample of the rest fixed by case id (see the class)."""
    skus = _changed_skus(a, b)
    must = {
        c.id
        for c, st, _ in planned
        if st != "same"
        or c.source != "generated"
        or c.sku in skus
        or c.origin.get("key") in skus
        or c.kind == "qa"
        and a.catalog.qa_sets != b.catalog.qa_sets
    }
    rest = sorted((c.id for c, _, _ in planned if c.id not in must), key=lambda i: hashlib.sha1(i.encode()).hexdigest())
    return must | set(rest[: max(0, budget - len(must))])


def _digest(cases: list[Case], extra: object = None) -> str:
    h = hashlib.sha1()
    for c in cases:
        h.update(c.model_dump_json().encode())
    h.update(json.dumps(extra, sort_keys=True, ensure_ascii=False, default=str).encode())
    return h.hexdigest()[:16]


def _tally(cases: list[Case], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    n = len(cases)
    passed = sum(results[c.id]["passed"] for c in cases)
    probes = [c for c in cases if c.must_refuse]
    return {
        "cases": n,
        "passed": passed,
        "failed": n - passed,
        "accuracy": round(passed / n, 4) if n else None,
        "refusals": sum(results[c.id]["refused"] for c in cases),
        "refusals_ok": sum(results[c.id]["passed"] for c in probes),
        "probes": len(probes),
    }


def _row(c: Case, status: str = "", why: str = "") -> dict[str, Any]:
    return {
        "id": c.id,
        "kind": c.kind,
        "source": c.source,
        "sku": c.sku,
        "question": c.question,
        "must_contain": c.must_contain,
        "must_contain_any": c.must_contain_any,
        "must_not_contain": c.must_not_contain,
        "must_refuse": c.must_refuse,
        "expected_answer": c.expected_answer,
        "note": c.note,
        "status": status,
        "why": why,
    }


class RegressionRunner:
    """Runs a merchant's set on a version. ``run`` is synchronous (a console job thread, the CLI).

    ``max_cases`` bounds a run on a big catalog: past it, every case a draft can have changed (the
    products that differ, their comparisons, hand-added and review cases, every case whose expectation
    moved) runs, plus a fixed sample of the rest (chosen by case id, so the published version's answers
    to it are cached once and reused by every draft). ``None`` runs everything."""

    def __init__(
        self,
        kb: KnowledgeBase,
        agent: Callable[[], Agent],
        store: CaseStore,
        pace: float = 1.0,
        max_cases: int | None = 3000,
    ):
        self.kb, self._agent, self.store, self.pace, self.max_cases = kb, agent, store, pace, max_cases
        # set by whoever runs it beside live traffic (the console: the server's admission count)
        self.live_busy: Callable[[], bool] | None = None
        self.max_yield_s = 0.5
        # answers of a published version (with its prompts), per case: (case json, result)
        self._before: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def run(
        self,
        merchant: str,
        version: str | None = None,
        *,
        prompt_drafts: dict[str, str] | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        pace: float | None = None,
        run_id: str | None = None,
        max_cases: int | None | Literal["default"] = "default",
    ) -> dict[str, Any]:
        """Run the set on ``version`` (default: the active one) with ``prompt_drafts`` over the published
        prompts, against the active version with the published prompts. The report:

        cases / passed / failed / refusals_ok of the run on ``version``; ``before`` and ``after`` tallies;
        ``changed`` (answers that differ, both sides with citations); ``failures`` (now failing);
        ``regressions`` (passed before, fail now) and ``blocked`` (any regression)."""
        pace = self.pace if pace is None else pace
        budget = self.max_cases if max_cases == "default" else max_cases
        started = time.time()
        active = self.kb.active_version(merchant)
        if active is None:
            from knowledge.store import UnknownMerchant

            raise UnknownMerchant(f"merchant {merchant!r} has no knowledge base; import one first")
        version = version or active
        base_snap = self.kb.snapshot(merchant)
        snap = base_snap if version == base_snap.version else self.kb.load_version(merchant, version)
        all_base = self.store.cases(merchant, base_snap.version)
        same = version == base_snap.version and not prompt_drafts
        planned = [(c, "same", "") for c in all_base] if same else rebase(all_base, snap.catalog, self.store.book)
        sampled = None
        if budget is not None and len(planned) > budget:
            keep = _selection(planned, base_snap, snap, budget)
            sampled = {"of": len(planned), "ran": len(keep)}
            planned = [x for x in planned if x[0].id in keep]
        base_ids = {c.id for c, _, _ in planned}
        base_cases = [c for c in all_base if c.id in base_ids]
        after_cases = [c for c, st, _ in planned if st != "retired"]
        agent = self._agent()
        key = _digest([], [merchant, base_snap.version, self._published_prompts(agent, merchant)])
        with self._lock:
            cache = self._before.setdefault(key, {})
            while len(self._before) > 8:
                self._before.pop(next(iter(self._before)))
        todo = [] if same else [c for c in base_cases if cache.get(c.id, ("", {}))[0] != c.model_dump_json()]
        total = len(after_cases) + len(todo)

        def tick(stage: str, start: int) -> Callable[[int], None]:
            def cb(i: int) -> None:
                if progress:
                    progress(stage, start + i, total)

            return cb

        async def go() -> dict[str, dict[str, Any]]:
            if todo:
                got = await answer_cases(
                    pinned_agent(agent, self.kb, base_snap),
                    base_snap,
                    todo,
                    progress=tick("before", 0),
                    cancel=cancel,
                    pace=pace,
                    live_busy=self.live_busy,
                    max_yield_s=self.max_yield_s,
                )
                for c in todo:
                    cache[c.id] = (c.model_dump_json(), got[c.id])
            return await answer_cases(
                pinned_agent(agent, self.kb, snap),
                snap,
                after_cases,
                prompt_drafts=prompt_drafts,
                progress=tick("after", len(todo)),
                cancel=cancel,
                pace=pace,
                live_busy=self.live_busy,
                max_yield_s=self.max_yield_s,
            )

        if progress:
            progress("before" if todo else "after", 0, total)
        after_res = asyncio.run(go())
        if same:
            for c in base_cases:
                cache[c.id] = (c.model_dump_json(), after_res[c.id])
        before_res = {c.id: cache[c.id][1] for c in base_cases}
        report = self._report(
            merchant,
            version,
            base_snap.version,
            base_cases,
            planned,
            before_res,
            after_res,
            prompt_drafts,
            started,
            run_id,
            sampled,
        )
        return report

    @staticmethod
    def _published_prompts(agent: Agent, merchant: str) -> dict[str, Any]:
        store = agent.prompt_store
        if store is None:
            return {}
        out = {}
        for name in ("system", "answer"):
            try:
                out[name] = store.effective_text(merchant, name)
            except Exception:  # noqa: BLE001 - no override: the shipped text
                out[name] = None
        return out

    def _report(
        self,
        merchant: str,
        version: str,
        base_version: str,
        base_cases: list[Case],
        planned: list[tuple[Case, str, str]],
        before: dict[str, dict[str, Any]],
        after: dict[str, dict[str, Any]],
        prompt_drafts: dict[str, str] | None,
        started: float,
        run_id: str | None,
        sampled: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        base_by_id = {c.id: c for c in base_cases}
        run_cases = [c for c, st, _ in planned if st != "retired"]
        changed, failures, regressions, retired = [], [], [], []
        for c, st, why in planned:
            if st == "retired":
                retired.append(_row(c, st, why))
                continue
            a, b = after[c.id], before.get(c.id)
            row = _row(c, st, why) | {"before": b, "after": a}
            old = base_by_id.get(c.id)
            if old is not None and old.model_dump() != c.model_dump():
                row["before_case"] = _row(old)
            if b is not None and b["answer"] != a["answer"]:
                changed.append(row)
            if not a["passed"]:
                failures.append(row)
                if b is not None and b["passed"]:
                    regressions.append(row)
        t_after = _tally(run_cases, after)
        t_before = _tally(base_cases, before)
        finished = time.time()
        report = {
            "run_id": run_id or uuid.uuid4().hex[:16],
            "merchant": merchant,
            "target": "prompt" if prompt_drafts else "kb",
            "prompt": sorted(prompt_drafts) if prompt_drafts else [],
            "version": version,
            "base_version": base_version,
            "state": "done",
            **{k: t_after[k] for k in ("cases", "passed", "failed", "refusals_ok")},
            "before": t_before,
            "after": t_after,
            "changed": changed,
            "failures": failures,
            "regressions": regressions,
            "regressed": len(regressions),
            "retired": retired,
            "statuses": {s: sum(1 for _, st, _ in planned if st == s) for s in sorted({st for _, st, _ in planned})},
            "blocked": bool(regressions),
            "sampled": sampled,  # {"of", "ran"} when the run was bounded by max_cases
            "started": started,
            "finished": finished,
            "elapsed_s": round(finished - started, 2),
        }
        self.store.save_run(merchant, report)
        return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report.get(k) for k in SUMMARY_KEYS}


def brief(report: dict[str, Any]) -> dict[str, Any]:
    """``liveroom eval merchant --json`` and the API: the run on the version, what changed."""
    return {
        "version": report["version"],
        "base_version": report["base_version"],
        "cases": report["cases"],
        "passed": report["passed"],
        "failed": report["failed"],
        "refusals_ok": report["refusals_ok"],
        "blocked": report["blocked"],
        "regressions": [r["id"] for r in report["regressions"]],
        "changed": [
            {
                "id": r["id"],
                "question": r["question"],
                "before": r["before"]["answer"] if r.get("before") else None,
                "after": r["after"]["answer"],
                "passed_before": r["before"]["passed"] if r.get("before") else None,
                "passed_after": r["after"]["passed"],
            }
            for r in report["changed"]
        ],
        "run_id": report["run_id"],
        "elapsed_s": report["elapsed_s"],
        "sampled": report.get("sampled"),
    }
