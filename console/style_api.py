"""The answer-style page and its API under ``/console/api/m/{merchant}/style``: the merchant's structured
style (agent/style.py — greeting, sign-off, tone, address form, banned words, lines to always mention),
checked, previewed side by side on the merchant's own questions (what their viewers asked in their rooms,
else their catalog's Q&A), published as a new version and restored. Included by console/api.py's
``router``; the guard scopes it like every ``{merchant}`` route (check and preview are read-only)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from agent import style as agent_style
from agent.messages import ViewerMessage
from console.api import API, Console, MerchantId, Who, _audit, principal_of
from console.pages import render_page
from knowledge.store import KBError
from prompts.loader import PromptError

router = APIRouter(tags=["console"], dependencies=[Depends(principal_of)])
S = API + "/style"
MAX_PREVIEW = 8


@router.get("/console/m/{merchant}/style", response_class=HTMLResponse, include_in_schema=False)
async def page_style(request: Request, merchant: MerchantId, who: Who, c: Console) -> HTMLResponse:
    return HTMLResponse(render_page("style", request, merchant, who, c))


def own_questions(c, merchant: str, n: int = 6) -> list[str]:
    """The merchant's own questions: what viewers asked in their rooms lately, then their catalog's Q&A."""
    out: list[str] = []
    for room in c.rooms(merchant):
        out += [a.question for a in c.answers.recent(merchant, room["room_id"], limit=20) if a.channel != "console"]
    try:
        cat = c.container.kb.snapshot(merchant).catalog
        out += [q.question for s in cat.qa_sets for q in s.pairs]
        out += [f.q for p in cat.products for f in p.faq]
    except (KBError, AttributeError):
        pass
    return list(dict.fromkeys(q.strip() for q in out if q and q.strip()))[:n]


@router.get(S)
async def style_get(merchant: MerchantId, c: Console) -> dict:
    store = c.container.styles
    raw = await run_in_threadpool(store.published, merchant)
    return {
        "style": agent_style.MerchantStyle.model_validate(raw or {}).model_dump(),
        "version": await run_in_threadpool(store.published_version, merchant),
        "history": await run_in_threadpool(store.history, merchant),
        "questions": await run_in_threadpool(own_questions, c, merchant),
    }


def _problems(c, merchant: str, st: agent_style.MerchantStyle) -> list[str]:
    return agent_style.problems(st, c.container.agent.claims_for(merchant))


@router.post(S + "/check")
async def style_check(merchant: MerchantId, body: agent_style.MerchantStyle, c: Console) -> dict:
    return {"problems": await run_in_threadpool(_problems, c, merchant, body)}


class PreviewIn(BaseModel):
    style: agent_style.MerchantStyle
    questions: list[str] = Field(default_factory=list, max_length=MAX_PREVIEW)


async def _answer(c, merchant: str, question: str) -> dict[str, Any]:
    ans = await c.container.agent.answer(
        ViewerMessage(
            merchant=merchant,
            room_id="console-preview",
            viewer_id=f"style-preview-{uuid.uuid4().hex[:8]}",  # a fresh viewer: no memory carried over
            text=question[:200],
            channel="console",
        )
    )
    return {"answer": ans.answer, "path": ans.path, "intent": ans.intent, "flags": ans.flags}


@router.post(S + "/preview")
async def style_preview(merchant: MerchantId, body: PreviewIn, c: Console) -> Any:
    """Each question answered with the published style and with the draft, side by side."""
    errs = await run_in_threadpool(_problems, c, merchant, body.style)
    if errs:
        return JSONResponse({"detail": "风格有问题，无法预览", "problems": errs}, status_code=422)
    questions = [q.strip() for q in body.questions if q.strip()] or await run_in_threadpool(own_questions, c, merchant)
    rows = []
    for q in questions[:MAX_PREVIEW]:
        try:
            before = await _answer(c, merchant, q)
            with agent_style.preview(merchant, body.style):
                after = await _answer(c, merchant, q)
        except KBError as e:
            raise HTTPException(409, str(e)) from None
        rows.append({"question": q, "published": before, "draft": after})
    return {"rows": rows}


class PublishIn(BaseModel):
    style: agent_style.MerchantStyle
    note: str = Field("", max_length=200)


@router.post(S + "/publish")
async def style_publish(merchant: MerchantId, body: PublishIn, request: Request, who: Who, c: Console) -> Any:
    errs = await run_in_threadpool(_problems, c, merchant, body.style)
    if errs:
        return JSONResponse({"detail": "风格有问题，无法发布", "problems": errs}, status_code=422)
    store = c.container.styles
    before = await run_in_threadpool(store.published, merchant)
    after = body.style.model_dump()
    version = await run_in_threadpool(store.publish, merchant, after, who.actor, body.note)
    await run_in_threadpool(_audit, c, merchant, who, "style.publish", f"v{version}", before, after, request)
    return {"version": version, "style": after}


@router.post(S + "/restore/{version}")
async def style_restore(merchant: MerchantId, version: int, request: Request, who: Who, c: Console) -> Any:
    """Publish an old version again (as a new version); it is checked again first."""
    store = c.container.styles
    try:
        old = await run_in_threadpool(store.version, merchant, version)
    except PromptError as e:
        raise HTTPException(404, e.message) from None
    st = agent_style.MerchantStyle.model_validate(old)
    errs = await run_in_threadpool(_problems, c, merchant, st)
    if errs:
        return JSONResponse({"detail": "该版本不再能通过检查", "problems": errs}, status_code=422)
    before = await run_in_threadpool(store.published, merchant)
    n = await run_in_threadpool(store.publish, merchant, st.model_dump(), who.actor, f"恢复自 v{version}")
    await run_in_threadpool(_audit, c, merchant, who, "style.restore", f"v{n}", before, st.model_dump(), request)
    return {"version": n, "style": st.model_dump()}
