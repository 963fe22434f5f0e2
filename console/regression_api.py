"""Routes of publish-with-proof (console/regression.py), under ``/console/api/m/{merchant}/regression``
and the product / review pages' draft actions. Included by console/api.py's ``router``; the guard
(console/guard.py) authenticates and scopes them like every ``{merchant}`` route."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, ValidationError

from console import kb as kbmod
from console.api import API, Console, MerchantId, Who, _audit, _ip, _kb_guard, _prompt_name, principal_of
from console.auth import Principal
from console.pages import render_page
from console.regression import AGENT_PROMPTS, GateError, Record, case_view, manual_case, view
from console.service import ConsoleService
from knowledge.importers import parse_files
from knowledge.schema import Catalog
from knowledge.store import KBError, merge_catalogs
from prompts import store as pstore
from prompts.loader import PromptError
from regression.runner import brief

router = APIRouter(tags=["console"], dependencies=[Depends(principal_of)])
R = API + "/regression"


def _gate(fn, *a, **kw):
    try:
        return _kb_guard(fn, *a, **kw)
    except GateError as e:
        raise HTTPException(409, e.message) from None


def figures(report: dict | None) -> dict:
    """What an audited publish was checked against (None: a first import, nothing to regress against)."""
    if report is None:
        return {"run_id": None}
    return {k: report[k] for k in ("run_id", "cases", "passed", "failed")}


async def settled(job: kbmod.Job, merchant: str) -> dict | JSONResponse:
    """Wait for a publish job (the synchronous routes): its result, or the refusal as the route answers it.
    A blocked change is 409 with its run: the draft waits on the regression page for an owner's override."""
    await run_in_threadpool(job.ended.wait)
    if job.state == "failed":
        if job.issues:
            return JSONResponse({"detail": "文件校验未通过", "issues": job.issues}, status_code=422)
        raise HTTPException(500, job.error or "发布检查失败")
    res = job.result or {}
    if res.get("published"):
        return res
    why = res.get("stale") or (
        f"这次修改让 {res.get('regressed', 0)} 个原本答对的问题答错了，没有发布：已存为草稿，"
        "店主可在“发布检查”页填写理由后发布"
    )
    return JSONResponse(
        {
            "detail": why,
            "published": False,
            "blocked": res.get("blocked", False),
            "run_id": res.get("run_id"),
            "version": res.get("version"),
            "regressions": [r["id"] for r in res.get("regressions") or []],
            "run_url": f"/console/m/{merchant}/regression?run={res.get('run_id')}",
        },
        status_code=409,
    )


def recorder(c: ConsoleService, merchant: str, who: Principal, ip: str, action: str, target, before, after) -> Record:
    """Audit a gated publish as the route always has (``target``/``after`` may take what was published)."""

    def record(report: dict | None, version_before: str | None, pub: dict) -> None:
        t = target(pub) if callable(target) else target
        a = after(pub) if callable(after) else after
        b = before if before is not None else {"version": version_before}
        if isinstance(a, dict):
            a = a | figures(report)
        c.audit.record(merchant, who.actor, action, t, b, a, ip)

    return record


@router.get("/console/m/{merchant}/regression", response_class=HTMLResponse, include_in_schema=False)
async def page_regression(request: Request, merchant: MerchantId, who: Who, c: Console) -> HTMLResponse:
    return HTMLResponse(render_page("regression", request, merchant, who, c))


# --- the set ---------------------------------------------------------------------------------------
@router.get(R + "/cases")
async def cases_list(
    merchant: MerchantId,
    c: Console,
    kind: str | None = Query(None, max_length=32),
    q: str = Query("", max_length=100),
    limit: int = Query(200, ge=1, le=2000),
) -> dict:
    def run():
        version = c.container.kb.active_version(merchant)
        cases = c.regression.cases.cases(merchant, version) if version else c.regression.cases.extra(merchant)
        counts: dict[str, int] = {}
        for x in cases:
            counts[x.kind] = counts.get(x.kind, 0) + 1
        sel = [x for x in cases if (not kind or x.kind == kind) and (not q or q in x.question or q == (x.sku or ""))]
        return {
            "version": version,
            "total": len(cases),
            "counts": counts,
            "cases": [case_view(x) for x in sel[:limit]],
            "truncated": max(0, len(sel) - limit),
        }

    return await run_in_threadpool(_kb_guard, run)


class CaseIn(BaseModel):
    question: str = Field(min_length=1, max_length=200)
    must_contain: list[str] = Field(default_factory=list, max_length=10)
    must_not_contain: list[str] = Field(default_factory=list, max_length=10)
    must_refuse: bool = False
    note: str = Field("", max_length=200)


@router.post(R + "/cases", status_code=201)
async def cases_add(merchant: MerchantId, body: CaseIn, request: Request, who: Who, c: Console) -> dict:
    if not (body.must_refuse or body.must_contain or body.must_not_contain):  # a case must check something
        raise HTTPException(422, "请填写回答必须包含或不能包含的内容，或勾选“应当如实说没有”")
    case = manual_case(body.question, body.must_contain, body.must_not_contain, body.must_refuse, body.note, who.actor)
    case = await run_in_threadpool(c.regression.cases.add, merchant, case)
    await run_in_threadpool(_audit, c, merchant, who, "regression.case.add", case.id, None, case_view(case), request)
    return case_view(case)


@router.delete(R + "/cases/{case_id}")
async def cases_delete(merchant: MerchantId, case_id: str, request: Request, who: Who, c: Console) -> dict:
    before = next((x for x in c.regression.cases.extra(merchant) if x.id == case_id), None)
    if before is None:
        raise HTTPException(404, "只能删除手动添加或复核生成的用例")
    await run_in_threadpool(c.regression.cases.delete, merchant, case_id)
    await run_in_threadpool(
        _audit, c, merchant, who, "regression.case.delete", case_id, case_view(before), None, request
    )
    return {"ok": True}


# --- drafts and runs ---------------------------------------------------------------------------------
@router.post(API + "/kb/products/{sku}/draft")
async def product_draft(
    merchant: MerchantId,
    sku: str,
    request: Request,
    who: Who,
    c: Console,
    data: dict[str, Any] = Body(...),
    publish: bool = Query(False, description="publish it when the run breaks no passing case"),
) -> Any:
    """Save the edit as a draft version (viewers keep the active one) and run the set on it; with
    ``publish`` the job also publishes it when nothing that passed fails (the product page's save)."""
    try:
        if publish:
            old = c.kb.product(merchant, sku)
            rec = recorder(
                c,
                merchant,
                who,
                _ip(request),
                "kb.product.edit",
                sku,
                _pjson(old) if old else None,
                lambda pub: {**data, "sku": sku, "_version": pub["version"]},
            )
            job = await run_in_threadpool(
                _gate, c.regression.start_product_publish, merchant, sku, data, who.actor, rec
            )
        else:
            job = await run_in_threadpool(_gate, c.regression.start_product_draft, merchant, sku, data, who.actor)
    except KeyError:
        raise HTTPException(404, f"商品 {sku} 不存在") from None
    except ValidationError as e:
        return JSONResponse({"issues": kbmod.validation_issues(e)}, status_code=422)
    await run_in_threadpool(_audit, c, merchant, who, "kb.product.draft", sku, None, data, request)
    return job.view()


def _pjson(p) -> dict:
    return json.loads(p.model_dump_json())


# --- every path that publishes: tested first ------------------------------------------------------------
@router.put(API + "/kb/products/{sku}")
async def kb_product_save(
    merchant: MerchantId, sku: str, request: Request, who: Who, c: Console, data: dict[str, Any] = Body(...)
) -> Any:
    """Save an edit: built as a draft, the set run on it, published when no passing case fails (the answer
    as before: changed, version, embedded, facts, elapsed_ms — plus the run's figures). A blocked edit is
    409 with its run; the draft waits for an owner's override on the regression page."""
    try:
        _, old, new = await run_in_threadpool(_kb_guard, c.kb.edited_catalog, merchant, sku, data)
    except KeyError:
        raise HTTPException(404, f"商品 {sku} 不存在") from None
    except ValidationError as e:
        return JSONResponse({"issues": kbmod.validation_issues(e)}, status_code=422)
    if old == new:
        return {"changed": False, "version": c.container.kb.active_version(merchant)}
    t0 = time.perf_counter()
    rec = recorder(
        c,
        merchant,
        who,
        _ip(request),
        "kb.product.edit",
        sku,
        _pjson(old),
        lambda pub: _pjson(new) | {"_version": pub["version"]},
    )
    job = await run_in_threadpool(_gate, c.regression.start_product_publish, merchant, sku, data, who.actor, rec)
    res = await settled(job, merchant)
    if isinstance(res, JSONResponse):
        return res
    return {
        "changed": True,
        "version": res["version"],
        "embedded": res.get("embedded"),
        "facts": res.get("facts"),
        "elapsed_ms": round((time.perf_counter() - t0) * 1000),
    } | figures(res if res.get("run_id") else None)


@router.post(API + "/kb/uploads/{upload_id}/publish")
async def kb_upload_publish(merchant: MerchantId, upload_id: str, request: Request, who: Who, c: Console) -> dict:
    """Publish a previewed upload as a job: merged into the active catalog as a draft, tested, published when
    nothing that passed fails (``result.published``); otherwise the job's result is the blocking run."""
    try:
        files = c.kb.upload_files(merchant, upload_id)
    except KeyError:
        raise HTTPException(404, "上传不存在或已过期，请重新上传") from None
    kb = c.container.kb
    names = ", ".join(p.name for p in files)

    def catalog() -> Catalog:
        fragment = parse_files(files)
        c.kb.discard(merchant, upload_id)
        active = kb.active_version(merchant)
        return merge_catalogs(kb.catalog(merchant, active) if active else Catalog(), fragment)

    rec = recorder(c, merchant, who, _ip(request), "kb.import", names, None, lambda pub: dict(pub))
    job = await run_in_threadpool(
        _gate,
        c.regression.start_publish,
        merchant,
        who.actor,
        rec,
        catalog=catalog,
        note=f"控制台上传 {names}（{who.actor}）",
        kind="import",
    )
    return job.view()


class PromptPublishIn(BaseModel):
    text: str | None = Field(None, max_length=20000)
    note: str = Field("", max_length=200)


def _prompt_text_audit(c: ConsoleService, merchant: str, who: Principal, ip: str, action: str, name: str, before):
    def record(report: dict | None, _v: str | None, pub: dict) -> None:
        f = figures(report)
        target = f"{name} v{pub['prompts'][name]}" + (
            f" 发布检查 {f['run_id']} {f['passed']}/{f['cases']}" if report else ""
        )
        c.audit.record(merchant, who.actor, action, target, before, c.prompts.effective_text(merchant, name), ip)

    return record


async def _gated_prompt(
    c: ConsoleService, merchant: str, name: str, text: str, who: Principal, request: Request, action: str, extra: dict
) -> Any:
    """A prompt the agent answers with is run on the set with ``text`` over the published one first."""
    before = c.prompts.effective_text(merchant, name)
    rec = _prompt_text_audit(c, merchant, who, _ip(request), action, name, before)
    job = await run_in_threadpool(
        _gate, c.regression.start_publish, merchant, who.actor, rec, prompt_drafts={name: text}, extra=extra
    )
    res = await settled(job, merchant)
    if isinstance(res, JSONResponse):
        return res
    v = res["prompts"][name]
    return {"version": v, "at": c.prompts.state(merchant, name).versions[-1].at} | figures(res)


@router.post(API + "/prompts/{name}/publish")
async def prompt_publish(
    merchant: MerchantId, name: str, body: PromptPublishIn, request: Request, who: Who, c: Console
) -> Any:
    """Publish ``text`` (default: the saved draft). A prompt the agent answers with (system, answer) is run on
    the set first and refused (409, with its run) when a case that passed fails; the others cannot change an
    answer and publish directly."""
    _prompt_name(name)
    text = body.text if body.text is not None else (c.prompts.state(merchant, name).draft or {}).get("text")
    errs = pstore.problems(name, text) if text is not None else ["没有可发布的草稿"]
    if errs:
        return JSONResponse({"detail": "提示词有错误，不能发布", "problems": errs}, status_code=422)
    if name in AGENT_PROMPTS and c.container.kb.active_version(merchant) is not None:
        extra = {"prompt_note": body.note} if body.note else {}
        return await _gated_prompt(c, merchant, name, text, who, request, "prompt.publish", extra)
    before = c.prompts.effective_text(merchant, name)
    try:
        v = await run_in_threadpool(c.prompts.publish, merchant, name, who.actor, text, body.note)
    except PromptError as e:
        return JSONResponse({"detail": "提示词有错误，不能发布", "problems": [str(e)]}, status_code=422)
    await run_in_threadpool(_audit, c, merchant, who, "prompt.publish", f"{name} v{v.version}", before, v.text, request)
    return {"version": v.version, "at": v.at}


class RestoreIn(BaseModel):
    version: int = Field(ge=0)


@router.post(API + "/prompts/{name}/restore")
async def prompt_restore(
    merchant: MerchantId, name: str, body: RestoreIn, request: Request, who: Who, c: Console
) -> Any:
    """Publish an old version's text again, tested like any publish (system, answer)."""
    _prompt_name(name)
    try:
        text = c.prompts.text(merchant, name, body.version)
        pstore.validate(name, text)
    except PromptError as e:
        return JSONResponse({"detail": str(e)}, status_code=404 if "no version" in str(e) else 422)
    if name in AGENT_PROMPTS and c.container.kb.active_version(merchant) is not None:
        extra = {"prompt_restore": {name: body.version}}
        res = await _gated_prompt(c, merchant, name, text, who, request, "prompt.restore", extra)
        return res if isinstance(res, JSONResponse) else res | {"restored_from": body.version}
    before = c.prompts.effective_text(merchant, name)
    v = await run_in_threadpool(c.prompts.restore, merchant, name, body.version, who.actor)
    await run_in_threadpool(
        _audit, c, merchant, who, "prompt.restore", f"{name} v{body.version}→v{v.version}", before, v.text, request
    )
    return {"version": v.version, "restored_from": body.version}


class RunIn(BaseModel):
    version: str | None = Field(None, max_length=16)
    prompt: str | None = Field(None, max_length=32)
    pace: float | None = Field(None, ge=0, le=20, description="sleep this × each case's time between cases")


@router.post(R + "/runs")
async def run_start(merchant: MerchantId, body: RunIn, c: Console) -> dict:
    """Run the set on a version (default: the active one) or on a prompt's draft, in the background."""
    if body.prompt:
        _prompt_name(body.prompt)
    job = await run_in_threadpool(_gate, c.regression.start_run, merchant, body.version, body.prompt, body.pace)
    return job.view()


@router.get(R + "/jobs/{job_id}")
async def run_job(merchant: MerchantId, job_id: str, c: Console) -> dict:
    job = c.kb.job(merchant, job_id)
    if job is None:
        raise HTTPException(404, "任务不存在")
    return job.view()


@router.get(R + "/runs")
async def runs_list(merchant: MerchantId, c: Console) -> list[dict]:
    return await run_in_threadpool(c.regression.cases.runs, merchant)


@router.get(R + "/runs/{run_id}")
async def run_get(merchant: MerchantId, run_id: str, c: Console) -> dict:
    report = await run_in_threadpool(c.regression.cases.load_run, merchant, run_id)
    if report is None:
        raise HTTPException(404, "测试记录不存在")
    return view(report)


class PublishIn(BaseModel):
    override_reason: str | None = Field(None, max_length=500)


@router.post(R + "/runs/{run_id}/publish")
async def run_publish(
    merchant: MerchantId, run_id: str, body: PublishIn, request: Request, who: Who, c: Console
) -> dict:
    """Publish the run's draft: refused (409) when the run broke a passing case, unless an owner gives a
    reason (audited as regression.override, then the publish itself as kb.publish / prompt.publish)."""
    try:
        report = await run_in_threadpool(
            _gate, c.regression.check_publish, merchant, run_id, body.override_reason, who.can("owner")
        )
    except KeyError:
        raise HTTPException(404, "测试记录不存在") from None
    except PermissionError as e:
        raise HTTPException(403, str(e)) from None
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    if report["blocked"]:
        await run_in_threadpool(
            _audit,
            c,
            merchant,
            who,
            "regression.override",
            f"{report['target']} {report['version']} run {run_id}",
            {"regressions": [r["id"] for r in report["regressions"]], "passed": report["passed"]},
            {"reason": (body.override_reason or "").strip()},
            request,
        )
    active = c.container.kb.active_version(merchant)
    try:
        out = await run_in_threadpool(c.regression.publish, merchant, report, who.actor)
    except KBError as e:
        raise HTTPException(409, str(e)) from None
    await run_in_threadpool(
        _audit,
        c,
        merchant,
        who,
        "kb.publish" if report["target"] == "kb" else "prompt.publish",
        report["version"] if report["target"] == "kb" else ",".join(report.get("prompt") or []),
        {"version": active},
        out
        | {"run_id": run_id, "passed": report["passed"], "failed": report["failed"], "overridden": report["blocked"]},
        request,
    )
    return out | {"run_id": run_id, "overridden": report["blocked"]}


@router.get(R + "/eval")
async def eval_merchant(merchant: MerchantId, c: Console, version: str | None = Query(None, max_length=16)) -> dict:
    """``liveroom eval merchant --json`` over HTTP: runs now (synchronously) and returns the summary."""
    report = await run_in_threadpool(_gate, c.container.regression.run, merchant, version)
    return brief(report)


# --- reviews and drift ----------------------------------------------------------------------------------
class CorrectIn(BaseModel):
    answer: str = Field(min_length=1, max_length=500)
    must_contain: list[str] = Field(default_factory=list, max_length=10)
    add_qa: bool = False


@router.post(API + "/reviews/{review_id}/correct")
async def review_correct(
    merchant: MerchantId, review_id: int, body: CorrectIn, request: Request, who: Who, c: Console
) -> dict:
    """The merchant's correction of a reviewed answer: a case expecting it, and (``add_qa``) a draft with
    the corrected answer as a Q&A pair, tested like any draft."""
    review = await run_in_threadpool(c.review, merchant, review_id)
    if review is None:
        raise HTTPException(404, "复核记录不存在")
    case, job = await run_in_threadpool(
        _gate, c.regression.correct_review, merchant, review, body.answer, body.must_contain, body.add_qa, who.actor
    )
    await run_in_threadpool(c.resolve_review, merchant, review_id, "resolved", who.actor)
    await run_in_threadpool(
        _audit,
        c,
        merchant,
        who,
        "review.correct",
        str(review_id),
        {"answer": review["answer"], "status": review["status"]},
        {"answer": body.answer, "case": case.id, "add_qa": body.add_qa},
        request,
    )
    return {"case": case_view(case), "job": job.view() if job else None}


@router.get(R + "/drift")
async def drift(merchant: MerchantId, c: Console) -> dict:
    return c.regression.drift.status(merchant) | {"alerts": c.regression.drift.alerts(merchant)}
