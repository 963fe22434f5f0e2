"""The console's side of publish-with-proof: drafts of a product edit, a prompt or a review's correction,
the regression run on them in the background (a KB job with progress), and the gated publish.

A draft KB version is built without switching to it (``KnowledgeBase.build_draft``); the run compares
the active version (published prompts) with the draft (``regression/runner.py``). Publishing a draft
whose run broke a case that passed before needs an owner and a reason (audited as
``regression.override``); a run made against an active version that has since changed is stale.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from console import kb as kbmod
from core.errors import LiveRoomError
from knowledge.schema import Catalog, QAPair, QASet
from regression.cases import Case, head
from regression.drift import DriftWatch

CORRECTIONS_SOURCE = "corrections.csv"  # the Q&A set that corrected reviews add to a draft
AGENT_PROMPTS = ("system", "answer")  # the prompts the agent answers with; the others cannot change an answer
Record = Callable[[dict | None, str | None, dict], None]


class GateError(LiveRoomError):
    code = "regression_gate"
    http_status = 409


class RegressionConsole:
    def __init__(self, container, kbc: kbmod.KBConsole):
        self.container = container
        self.kbc = kbc
        self.runner = container.regression
        admission = container.admission
        self.runner.live_busy = lambda: admission.inflight > 0  # a console run gives way to viewers' questions
        self.cases = container.regression_cases
        self.drift = DriftWatch()
        self._running: dict[str, str] = {}  # merchant → job id of its run
        self._lock = threading.Lock()

    # --- jobs ------------------------------------------------------------------------------------
    def _start(self, merchant: str, kind: str, work) -> kbmod.Job:
        with self._lock:
            cur = self._running.get(merchant)
            job = self.kbc.job(merchant, cur) if cur else None
            if job is not None and job.state == "running":
                raise GateError("上一次发布检查还在运行，请等它结束")

            def wrapped(progress):
                try:
                    return work(progress)
                finally:
                    with self._lock:
                        if self._running.get(merchant) == job_id:
                            del self._running[merchant]

            job = self.kbc.start_job(merchant, kind, wrapped)
            job_id = job.job_id
            self._running[merchant] = job_id
        return job

    def _report(
        self, merchant: str, version: str | None, progress, prompt_drafts=None, extra: dict | None = None, pace=None
    ) -> dict:
        report = self.runner.run(
            merchant,
            version,
            prompt_drafts=prompt_drafts,
            progress=lambda stage, done, total: progress(stage, done, total),
            pace=pace,
        )
        if extra:
            report.update(extra)
            self.cases.save_run(merchant, report)
        return report

    def _run(
        self, merchant: str, version: str | None, progress, prompt_drafts=None, extra: dict | None = None, pace=None
    ):
        return view(self._report(merchant, version, progress, prompt_drafts, extra, pace))

    def start_catalog_draft(self, merchant: str, catalog: Catalog, note: str, extra: dict | None = None) -> kbmod.Job:
        kb = self.container.kb

        def work(progress):
            def build(stage, done, total):
                progress("building", done if stage == "embedding" else total, total)

            info = kb.build_draft(merchant, catalog, note, progress=build)
            return self._run(merchant, info.version, progress, extra=(extra or {}) | {"note": note})

        return self._start(merchant, "regression", work)

    def start_product_draft(self, merchant: str, sku: str, data: dict, actor: str) -> kbmod.Job:
        cat, old, new = self.kbc.edited_catalog(merchant, sku, data)  # KeyError / ValidationError before any job
        if old == new:
            raise GateError("没有修改")
        return self.start_catalog_draft(merchant, cat, f"编辑商品 {sku}（{actor}）草稿", {"skus": [sku]})

    def start_run(
        self, merchant: str, version: str | None = None, prompt: str | None = None, pace: float | None = None
    ) -> kbmod.Job:
        drafts = None
        if prompt:
            st = self.container.prompts.state(merchant, prompt)
            text = (st.draft or {}).get("text")
            if not text:
                raise GateError(f"提示词 {prompt} 没有草稿")
            drafts = {prompt: text}

        def work(progress):
            return self._run(
                merchant, version, progress, prompt_drafts=drafts, extra={"prompt_text": drafts}, pace=pace
            )

        return self._start(merchant, "regression", work)

    # --- every publish: draft → run → published when it broke nothing --------------------------------
    def start_publish(
        self,
        merchant: str,
        actor: str,
        record: Record,
        *,
        catalog: Callable[[], Catalog] | None = None,
        note: str = "",
        prompt_drafts: dict[str, str] | None = None,
        kind: str = "publish",
        extra: dict | None = None,
    ) -> kbmod.Job:
        """The one way a console change reaches viewers: ``catalog()`` built as a draft version (or
        ``prompt_drafts`` over the published prompts), the set run on it, and published when no case that
        passed fails; otherwise it waits, with its run, for an owner's override on the regression page.
        ``record(report, version_before, published)`` audits a publish (report None: a first import, which
        has nothing to regress against)."""
        kb = self.container.kb

        def work(progress) -> dict:
            cat = catalog() if catalog is not None else None  # parsed in the job: KBImportError → per-row issues
            if cat is not None and kb.active_version(merchant) is None:
                info = kb.publish_catalog(merchant, cat, note, progress=progress)
                out = {"target": "kb", "version": info.version}
                record(None, None, out)
                return out | {"published": True, "run_id": None} | _built(info)
            built: dict = {}
            version = None
            if cat is not None:

                def build(stage: str, done: int, total: int) -> None:
                    progress("building", done if stage == "embedding" else total, total)

                info = kb.build_draft(merchant, cat, note, progress=build)
                version, built = info.version, _built(info)
            more = (extra or {}) | {"note": note} | ({"prompt_text": prompt_drafts} if prompt_drafts else {})
            report = self._report(merchant, version, progress, prompt_drafts, more)
            return self.publish_if_clear(merchant, report, actor, record) | built

        return self._start(merchant, kind, work)

    def publish_if_clear(self, merchant: str, report: dict, actor: str, record: Record) -> dict:
        out = view(report) | {"published": False}
        if report["blocked"]:
            return out
        try:
            self.check_publish(merchant, report["run_id"], None, is_owner=False)
        except GateError as e:  # the active version moved while the run went on
            return out | {"stale": e.message}
        before = self.container.kb.active_version(merchant)
        pub = self.publish(merchant, report, actor)
        record(report, before, pub)
        return out | pub | {"published": True}

    def start_product_publish(self, merchant: str, sku: str, data: dict, actor: str, record: Record) -> kbmod.Job:
        cat, old, new = self.kbc.edited_catalog(merchant, sku, data)  # KeyError / ValidationError before any job
        if old == new:
            raise GateError("没有修改")
        return self.start_publish(
            merchant, actor, record, catalog=lambda: cat, note=f"编辑商品 {sku}（{actor}）", extra={"skus": [sku]}
        )

    # --- reviews -----------------------------------------------------------------------------------
    def correct_review(
        self, merchant: str, review: dict, answer: str, must_contain: list[str], add_qa: bool, actor: str
    ) -> tuple[Case, kbmod.Job | None]:
        """The correction becomes a case (its answer the expected one); with ``add_qa`` a draft with the
        question and the corrected answer as a store Q&A pair is built and tested."""
        answer = answer.strip()
        case = Case(
            id=f"review:{review['id']}",
            source="review",
            kind="review",
            question=review["question"][:200],
            sku=next((c.get("sku") for c in review.get("citations") or [] if c.get("sku")), None),
            must_contain=[x for x in (must_contain or [head(answer)]) if x.strip()],
            expected_answer=answer,
            note=f"回答复核 #{review['id']} 的更正（原回答：{review['answer'][:80]}）",
            created_by=actor,
        )
        case = self.cases.add(merchant, case)
        job = None
        if add_qa:
            kb = self.container.kb
            cat = kb.catalog(merchant)
            sets = {q.source: q for q in cat.qa_sets}
            cur = sets.get(CORRECTIONS_SOURCE) or QASet(source=CORRECTIONS_SOURCE, pairs=[])
            pairs = [p for p in cur.pairs if p.question != case.question]
            pairs.append(QAPair(question=case.question, answer=answer, sku=case.sku))
            sets[CORRECTIONS_SOURCE] = QASet(source=CORRECTIONS_SOURCE, pairs=pairs)
            draft = cat.model_copy(update={"qa_sets": list(sets.values())})
            job = self.start_catalog_draft(
                merchant, draft, f"回答复核 #{review['id']} 的更正（{actor}）草稿", {"review_id": review["id"]}
            )
        return case, job

    # --- publish -----------------------------------------------------------------------------------
    def check_publish(self, merchant: str, run_id: str, override_reason: str | None, is_owner: bool) -> dict:
        """The run to publish, if it may be published now; raises GateError / PermissionError."""
        report = self.cases.load_run(merchant, run_id)
        if report is None:
            raise KeyError(run_id)
        kb = self.container.kb
        if report["base_version"] != kb.active_version(merchant):
            raise GateError("测试之后知识库已经换了版本，请重新测试再发布")
        if report["target"] == "kb":
            info = next((v for v in kb.versions(merchant) if v.version == report["version"]), None)
            if info is None or not info.draft:
                raise GateError(f"{report['version']} 不是待发布的草稿")
        if report["blocked"]:
            if not is_owner:
                raise PermissionError("这次修改让原本通过的问题答错了：只有店主可以填写理由后强制发布")
            if not override_reason or len(override_reason.strip()) < 4:
                raise ValueError("强制发布需要填写理由（至少 4 个字）")
        return report

    def publish(self, merchant: str, report: dict, actor: str) -> dict:
        kb = self.container.kb
        if report["target"] == "kb":
            before = kb.catalog(merchant)
            info = kb.publish_draft(merchant, report["version"])
            after = kb.catalog(merchant)
            changed = kbmod.catalog_diff(before, after)["products"]
            skus = {p["sku"] for p in changed["changed"] + changed["added"]}
            if skus:
                try:  # keep the audience layer's sku → category/price in step (as a direct edit does)
                    self.container.audience.upsert_products(
                        merchant,
                        [
                            {"sku": p.sku, "name": p.name, "category": p.category, "price": p.price}
                            for p in after.products
                            if p.sku in skus
                        ],
                    )
                except Exception:  # noqa: BLE001 - the publish itself succeeded
                    pass
            return {"target": "kb", "version": info.version}
        out = {"target": "prompt", "prompts": {}}
        prompts = self.container.prompts
        for name, text in (report.get("prompt_text") or {}).items():
            restore = (report.get("prompt_restore") or {}).get(name)
            if restore is not None:  # a restore publishes the old text again and keeps the draft
                v = prompts.restore(merchant, name, restore, actor)
            else:
                v = prompts.publish(
                    merchant, name, actor, text, report.get("prompt_note") or f"发布检查 {report['run_id']}"
                )
            out["prompts"][name] = v.version
        return out


def _built(info) -> dict:
    return {"products": info.products, "facts": info.facts, "embedded": info.embedded}


def view(report: dict, limit: int = 300) -> dict:
    """A report as the page shows it: everything, the long lists capped."""
    out = dict(report)
    for k in ("changed", "failures", "regressions", "retired"):
        items = report.get(k) or []
        out[k] = items[:limit]
        out[f"{k}_total"] = len(items)
    out.pop("prompt_text", None)
    return out


def case_view(c: Case) -> dict[str, Any]:
    return json.loads(c.model_dump_json())


def manual_case(question: str, must_contain, must_not_contain, must_refuse: bool, note: str, actor: str) -> Case:
    return Case(
        id=f"manual:{int(time.time() * 1000):x}",
        source="manual",
        kind="manual",
        question=question.strip()[:200],
        must_contain=[x.strip() for x in must_contain if x.strip()],
        must_not_contain=[x.strip() for x in must_not_contain if x.strip()],
        must_refuse=must_refuse,
        note=note,
        created_by=actor,
    )
