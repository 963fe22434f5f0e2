"""Routes of publish-with-proof (console/regression.py), under ``/console/api/m/{merchant}/regression``
and the product / review pages' draft actions. Included by console/api.py's ``router``; the guard
(console/guard.py) authenticates and scopes them like every ``{merchant}`` route."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, ValidationError

from console import kb as kbmod
from console.api import API, Console, MerchantId, Who, _audit, _kb_guard, principal_of
from console.pages import render_page
from console.regression import GateError, case_view, manual_case, view
from knowledge.store import KBError
from regression.runner import brief

router = APIRouter(tags=["console"], dependencies=[Depends(principal_of)])
R = API + "/regression"


def _gate(fn, *a, **kw):
    try:
        return _kb_guard(fn, *a, **kw)
    except GateError as e:
        raise HTTPException(409, e.message) from None


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
    if not body.must_refuse and not body.must_contain:
        raise HTTPException(422, "请填写回答必须包含的内容，或勾选“应当如实说没有”")
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
    merchant: MerchantId, sku: str, request: Request, who: Who, c: Console, data: dict[str, Any] = Body(...)
) -> Any:
    """Save the edit as a draft version (viewers keep the active one) and run the set on it."""
    try:
        job = await run_in_threadpool(_gate, c.regression.start_product_draft, merchant, sku, data, who.actor)
    except KeyError:
        raise HTTPException(404, f"商品 {sku} 不存在") from None
    except ValidationError as e:
        return JSONResponse({"issues": kbmod.validation_issues(e)}, status_code=422)
    await run_in_threadpool(_audit, c, merchant, who, "kb.product.draft", sku, None, data, request)
    return job.view()


class RunIn(BaseModel):
    version: str | None = Field(None, max_length=16)
    prompt: str | None = Field(None, max_length=32)
    pace: float | None = Field(None, ge=0, le=20, description="sleep this × each case's time between cases")


@router.post(R + "/runs")
async def run_start(merchant: MerchantId, body: RunIn, c: Console) -> dict:
    """Run the set on a version (default: the active one) or on a prompt's draft, in the background."""
    if body.prompt:
        from console.api import _prompt_name

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
