"""The console's routes: login/logout, HTML pages and the JSON API under ``/console/api/m/{merchant}``.

``router`` is what the server includes. Authentication, tenant isolation, roles and CSRF are enforced
by ``console.guard.Guard`` (app-wide); every handler here reads the caller from
``request.state.principal`` (set only by the guard — without it the console refuses to serve) and
passes the path's merchant to every store call.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import string
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError

from agent.messages import ViewerMessage
from console import kb as kbmod
from console.auth import ROLE_ZH, AuthError, Principal
from console.live import Simulator, dashboard, host_room
from console.pages import STATIC_DIR, login_page, render_page
from console.service import ConsoleService, get_console
from knowledge.facts import product_facts
from knowledge.importers import KBImportError
from knowledge.store import KBError, UnknownMerchant, UnknownVersion
from prompts import loader as prompt_loader
from prompts import store as pstore
from prompts.loader import PromptError

public_router = APIRouter(tags=["console"])  # the login form and static files: no credentials

MerchantId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
API = "/console/api/m/{merchant}"
SESSION_COOKIE = "lr_session"
LOGIN_CSRF_COOKIE = "lr_login_csrf"


def console_of(request: Request) -> ConsoleService:
    return get_console(request.app)


def principal_of(request: Request) -> Principal:
    p = getattr(request.state, "principal", None)
    if p is None:  # the guard did not run: refuse rather than serve unauthenticated
        raise HTTPException(503, "console guard not installed (see docs/console.md)")
    return p


Console = Annotated[ConsoleService, Depends(console_of)]
Who = Annotated[Principal, Depends(principal_of)]

# Everything but the login form and static files: refused outright unless the guard authenticated the caller.
private_router = APIRouter(tags=["console"], dependencies=[Depends(principal_of)])


def _ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _audit(
    c: ConsoleService,
    merchant: str,
    who: Principal,
    action: str,
    target: str,
    before: Any,
    after: Any,
    request: Request,
) -> None:
    c.audit.record(merchant, who.actor, action, target, before, after, _ip(request))


def _secure(request: Request, c: ConsoleService) -> bool:
    mode = c.config.secure_cookies.lower()
    return request.url.scheme == "https" if mode == "auto" else mode in ("1", "true", "yes")


# ============================================================================================
# login / logout / me
# ============================================================================================
def _safe_next(nxt: str | None, merchant: str) -> str:
    if nxt and nxt.startswith("/console/") and not nxt.startswith("//") and "\\" not in nxt and "\n" not in nxt:
        return nxt
    return f"/console/m/{merchant}/rooms"


@public_router.get("/console/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request, c: Console, next: str | None = None) -> HTMLResponse:
    token = uuid.uuid4().hex + uuid.uuid4().hex
    resp = HTMLResponse(login_page(token, next or "", None))
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request, c),
        path="/console/login",
        max_age=3600,
    )
    return resp


@public_router.post("/console/login", include_in_schema=False)
async def login(
    request: Request,
    c: Console,
    username: str = Form("", max_length=64),
    password: str = Form("", max_length=256),
    csrf: str = Form("", max_length=128),
    next: str = Form("", max_length=500),
) -> Response:
    def again(status: int, msg: str, retry: float | None = None) -> HTMLResponse:
        token = uuid.uuid4().hex + uuid.uuid4().hex
        resp = HTMLResponse(login_page(token, next, msg, username), status_code=status)
        resp.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=_secure(request, c),
            path="/console/login",
            max_age=3600,
        )
        if retry:
            resp.headers["Retry-After"] = str(int(retry) + 1)
        return resp

    import hmac

    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf or not hmac.compare_digest(cookie.encode(), csrf.encode()):
        return again(403, "页面已过期，请重新登录")
    wait = c.limiter.check(_ip(request), username or "-")
    if wait:
        return again(429, f"登录尝试过于频繁，请 {int(wait) + 1} 秒后再试", wait)
    user = await run_in_threadpool(c.accounts.authenticate, username, password)
    if user is None:
        c.limiter.failed(username or "-", _ip(request))
        return again(401, "用户名或密码错误")
    c.limiter.succeeded(username, _ip(request))
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # never keep a session id from before the login (fixation)
        await run_in_threadpool(c.accounts.end_session, old)
    sid, _csrf = await run_in_threadpool(c.accounts.create_session, user, _ip(request))
    await run_in_threadpool(
        c.audit.record,
        user["merchant"],
        f"user:{user['username']}",
        "login",
        user["username"],
        None,
        {"ip": _ip(request)},
        _ip(request),
    )
    resp = RedirectResponse(_safe_next(next, user["merchant"]), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE, sid, httponly=True, samesite="lax", secure=_secure(request, c), path="/", max_age=12 * 3600
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return resp


@private_router.post("/console/logout", include_in_schema=False)
async def logout(request: Request, c: Console, who: Who) -> JSONResponse:
    await run_in_threadpool(c.accounts.end_session, request.cookies.get(SESSION_COOKIE))
    if who.merchant:
        await run_in_threadpool(_audit, c, who.merchant, who, "logout", who.username or "", None, None, request)
    resp = JSONResponse({"ok": True, "redirect": "/console/login"})
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@private_router.get("/console/api/me")
async def me(who: Who, c: Console) -> dict:
    return {
        "merchant": who.merchant,
        "role": who.role,
        "role_zh": ROLE_ZH.get(who.role),
        "actor": who.actor,
        "kind": who.kind,
        "username": who.username,
    }


@private_router.get("/console", include_in_schema=False)
async def console_home(who: Who) -> RedirectResponse:
    return RedirectResponse(f"/console/m/{who.merchant}/rooms", status_code=303)


@public_router.get("/console/static/{path:path}", include_in_schema=False)
async def static(path: str) -> Response:
    target = (STATIC_DIR / path).resolve()
    if (
        not str(target).startswith(str(STATIC_DIR.resolve()) + "/")
        or not target.is_file()
        or target.suffix not in (".js", ".css", ".svg", ".txt", ".woff2")
    ):
        raise HTTPException(404)
    types = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
        ".txt": "text/plain; charset=utf-8",
        ".woff2": "font/woff2",
    }
    return FileResponse(target, media_type=types[target.suffix], headers={"Cache-Control": "public, max-age=300"})


# ============================================================================================
# pages
# ============================================================================================
PAGES = {
    "kb": "知识库",
    "search": "检索测试",
    "versions": "版本",
    "prompts": "提示词",
    "rooms": "直播间",
    "reviews": "回答复核",
    "team": "团队与审计",
}


def _page(name: str):
    async def page(request: Request, merchant: MerchantId, who: Who, c: Console) -> HTMLResponse:
        return HTMLResponse(render_page(name, request, merchant, who, c))

    page.__name__ = f"page_{name}"
    return page


for _name in PAGES:
    private_router.add_api_route(
        f"/console/m/{{merchant}}/{_name}",
        _page(_name),
        methods=["GET"],
        response_class=HTMLResponse,
        include_in_schema=False,
    )


@private_router.get("/console/m/{merchant}/kb/products/{sku}", response_class=HTMLResponse, include_in_schema=False)
async def page_product(request: Request, merchant: MerchantId, sku: str, who: Who, c: Console) -> HTMLResponse:
    p = await run_in_threadpool(_product_or_404, c, merchant, sku)
    return HTMLResponse(render_page("product", request, merchant, who, c, product=p))


@private_router.get("/console/m/{merchant}/prompts/{name}", response_class=HTMLResponse, include_in_schema=False)
async def page_prompt(request: Request, merchant: MerchantId, name: str, who: Who, c: Console) -> HTMLResponse:
    _prompt_name(name)
    return HTMLResponse(
        render_page(
            "prompt", request, merchant, who, c, prompt_name=name, prompt_label=pstore.LABELS.get(name, (name, ""))[0]
        )
    )


@private_router.get("/console/m/{merchant}/rooms/{room_id}", response_class=HTMLResponse, include_in_schema=False)
async def page_dashboard(request: Request, merchant: MerchantId, room_id: str, who: Who, c: Console) -> HTMLResponse:
    room = await run_in_threadpool(c.room, merchant, room_id)
    if room is None:
        raise HTTPException(404, "直播间不存在")
    return HTMLResponse(
        render_page(
            "dashboard", request, merchant, who, c, room=room, simulator_allowed=c.config.simulator_allowed(merchant)
        )
    )


# ============================================================================================
# knowledge base
# ============================================================================================
def _kb_guard(fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except UnknownMerchant as e:
        raise HTTPException(404, "知识库为空：请先上传商品资料") from e
    except UnknownVersion as e:
        raise HTTPException(404, "版本不存在") from e
    except KBError as e:
        raise HTTPException(400, str(e)) from e


def _product_or_404(c: ConsoleService, merchant: str, sku: str):
    p = _kb_guard(c.kb.product, merchant, sku)
    if p is None:
        raise HTTPException(404, f"商品 {sku} 不存在")
    return p


@private_router.get(API + "/kb/summary")
async def kb_summary(merchant: MerchantId, c: Console) -> dict:
    def run():
        active = c.container.kb.active_version(merchant)
        versions = c.container.kb.versions(merchant)
        cur = next((v for v in versions if v.active), None)
        return {
            "active_version": active,
            "versions": len(versions),
            "products": cur.products if cur else 0,
            "facts": cur.facts if cur else 0,
            "documents": cur.documents if cur else 0,
        }

    return await run_in_threadpool(run)


@private_router.get(API + "/kb/products")
async def kb_products(merchant: MerchantId, c: Console, q: str = Query("", max_length=100)) -> list[dict]:
    if c.container.kb.active_version(merchant) is None:
        return []
    return await run_in_threadpool(_kb_guard, c.kb.products, merchant, q)


@private_router.get(API + "/kb/products/{sku}")
async def kb_product(merchant: MerchantId, sku: str, c: Console) -> dict:
    p = await run_in_threadpool(_product_or_404, c, merchant, sku)
    return {"product": json.loads(p.model_dump_json()), "facts": [kbmod.fact_view(f) for f in product_facts(p)]}


@private_router.post(API + "/kb/products/{sku}/preview")
async def kb_product_preview(merchant: MerchantId, sku: str, c: Console, data: dict[str, Any] = Body(...)) -> dict:
    try:
        _, old, new = await run_in_threadpool(_kb_guard, c.kb.edited_catalog, merchant, sku, data)
    except KeyError:
        raise HTTPException(404, f"商品 {sku} 不存在") from None
    except ValidationError as e:
        return JSONResponse({"issues": kbmod.validation_issues(e)}, status_code=422)
    before = {f.id: f.text for f in product_facts(old)}
    return {
        "facts": [kbmod.fact_view(f) | {"changed": before.get(f.id) != f.text} for f in product_facts(new)],
        "removed": [fid for fid in before if fid not in {f.id for f in product_facts(new)}],
    }


# PUT /kb/products/{sku} (save an edit) is console/regression_api.py's: every publish is tested first


@private_router.post(API + "/kb/uploads")
async def kb_upload(
    merchant: MerchantId, request: Request, who: Who, c: Console, files: list[UploadFile] = File(...)
) -> Any:
    if not files:
        raise HTTPException(400, "请选择要上传的文件")
    if len(files) > kbmod.MAX_UPLOAD_FILES:
        raise HTTPException(400, f"一次最多上传 {kbmod.MAX_UPLOAD_FILES} 个文件")
    upload_id, d = c.kb.new_upload(merchant)
    try:
        names = set()
        for f in files:
            name = kbmod.safe_filename(f.filename or "")
            if name in names:
                raise kbmod.UploadRejected(f"文件名重复：{name}")
            names.add(name)
            size = 0
            with open(d / name, "wb") as out:
                head = b""
                while chunk := await f.read(256 * 1024):
                    if not head:
                        head = chunk[:4096]
                        kbmod.sniff(name, head)
                    size += len(chunk)
                    if size > kbmod.MAX_UPLOAD_FILE_BYTES:
                        raise kbmod.UploadRejected(
                            f"{name} 超过 {kbmod.MAX_UPLOAD_FILE_BYTES // (1024 * 1024)} MB 上限"
                        )
                    out.write(chunk)
            if size == 0:
                raise kbmod.UploadRejected(f"{name} 是空文件")
            if name.endswith(".xlsx"):
                await run_in_threadpool(kbmod.check_xlsx, d / name)  # archive caps + a time-limited trial parse
    except kbmod.UploadRejected as e:
        c.kb.discard(merchant, upload_id)
        status = 413 if "上限" in str(e) else 415 if "类型" in str(e) or "不是" in str(e) else 400
        return JSONResponse({"detail": str(e)}, status_code=status)
    try:
        preview = await run_in_threadpool(_kb_guard, c.kb.preview, merchant, upload_id)
    except KBImportError as e:
        c.kb.discard(merchant, upload_id)
        return JSONResponse(
            {"detail": "文件校验未通过，请按行修改后重新上传", "issues": kbmod.issue_rows(e)}, status_code=422
        )
    return preview


@private_router.delete(API + "/kb/uploads/{upload_id}")
async def kb_upload_discard(merchant: MerchantId, upload_id: str, c: Console) -> dict:
    try:
        c.kb.discard(merchant, upload_id)
    except KeyError:
        raise HTTPException(404, "上传不存在") from None
    return {"ok": True}


# POST /kb/uploads/{upload_id}/publish: console/regression_api.py (the upload is tested before it is published)


@private_router.get(API + "/kb/jobs/{job_id}")
async def kb_job(merchant: MerchantId, job_id: str, c: Console) -> dict:
    job = c.kb.job(merchant, job_id)
    if job is None:
        raise HTTPException(404, "任务不存在")
    return job.view()


class SearchIn(BaseModel):
    q: str = Field(min_length=1, max_length=200)
    k: int = Field(8, ge=1, le=20)
    with_answer: bool = True


@private_router.post(API + "/kb/search")
async def kb_search(merchant: MerchantId, body: SearchIn, who: Who, c: Console) -> dict:
    res = await run_in_threadpool(_kb_guard, c.kb.retrieval_test, merchant, body.q, body.k)
    if body.with_answer:
        ans = await c.container.agent.answer(
            ViewerMessage(
                merchant=merchant,
                room_id="console-test",
                viewer_id=f"console-{uuid.uuid4().hex[:8]}",
                text=body.q,
                channel="console",
            )
        )
        snap = c.container.kb.snapshot(merchant)
        res["answer"] = {
            "answer": ans.answer,
            "path": ans.path,
            "intent": ans.intent,
            "refused": ans.refused,
            "kb_version": ans.kb_version,
            "flags": ans.flags,
            "latency_ms": ans.latency_ms,
            "citations": [
                {
                    "fact_id": x.fact_id,
                    "sku": x.sku,
                    "text": (snap.fact(x.fact_id).text if snap.fact(x.fact_id) else None),
                }
                for x in ans.citations
            ],
        }
    return res


@private_router.get(API + "/kb/versions")
async def kb_versions(merchant: MerchantId, c: Console) -> list[dict]:
    vs = await run_in_threadpool(c.container.kb.versions, merchant)
    return [v.model_dump() for v in reversed(vs)]


@private_router.get(API + "/kb/versions/{version}/diff")
async def kb_version_diff(
    merchant: MerchantId, version: str, c: Console, against: str | None = Query(None, max_length=16)
) -> dict:
    try:
        return await run_in_threadpool(_kb_guard, c.kb.versions_diff, merchant, version, against)
    except KeyError:
        raise HTTPException(404, "版本不存在") from None


@private_router.post(API + "/kb/versions/{version}/restore")
async def kb_version_restore(merchant: MerchantId, version: str, request: Request, who: Who, c: Console) -> dict:
    before = c.container.kb.active_version(merchant)
    if any(v.version == version and v.draft for v in c.container.kb.versions(merchant)):
        raise HTTPException(409, "这是未发布的草稿：请在“发布检查”页测试后发布")
    info = await run_in_threadpool(_kb_guard, c.container.kb.restore, merchant, version)
    await run_in_threadpool(
        _audit, c, merchant, who, "kb.restore", version, {"version": before}, {"version": info.version}, request
    )
    return info.model_dump()


# ============================================================================================
# prompts
# ============================================================================================
def _prompt_name(name: str) -> str:
    try:
        return pstore.check_name(name)
    except PromptError:
        raise HTTPException(404, f"提示词 {name} 不存在") from None


def _prompt_view(c: ConsoleService, merchant: str, name: str) -> dict:
    st = c.prompts.state(merchant, name)
    label, desc = pstore.LABELS.get(name, (name, ""))
    published = c.prompts.effective_text(merchant, name)
    return {
        "name": name,
        "label": label,
        "description": desc,
        "required": sorted(pstore.required_vars(name)),
        "published_version": st.published or 0,
        "published_text": published,
        "default_text": pstore.default_text(name),
        "draft": st.draft,
        "versions": len(st.versions),
        "used_by_agent": name in ("system", "answer"),
    }


@private_router.get(API + "/prompts")
async def prompts_list(merchant: MerchantId, c: Console) -> list[dict]:
    def run():
        out = []
        for n in pstore.known_templates():
            v = _prompt_view(c, merchant, n)
            out.append(
                {k: v[k] for k in ("name", "label", "description", "published_version", "versions", "used_by_agent")}
                | {"has_draft": bool(v["draft"])}
            )
        return out

    return await run_in_threadpool(run)


@private_router.get(API + "/prompts/{name}")
async def prompt_get(merchant: MerchantId, name: str, c: Console) -> dict:
    _prompt_name(name)
    return await run_in_threadpool(_prompt_view, c, merchant, name)


class PromptText(BaseModel):
    text: str = Field(max_length=20000)


@private_router.put(API + "/prompts/{name}/draft")
async def prompt_save_draft(
    merchant: MerchantId, name: str, body: PromptText, request: Request, who: Who, c: Console
) -> dict:
    _prompt_name(name)
    before = c.prompts.state(merchant, name).draft
    st = await run_in_threadpool(c.prompts.save_draft, merchant, name, body.text, who.actor)
    await run_in_threadpool(
        _audit, c, merchant, who, "prompt.draft", name, before and before.get("text"), body.text, request
    )
    return {"draft": st.draft, "problems": pstore.problems(name, body.text)}


@private_router.delete(API + "/prompts/{name}/draft")
async def prompt_discard_draft(merchant: MerchantId, name: str, request: Request, who: Who, c: Console) -> dict:
    _prompt_name(name)
    before = c.prompts.state(merchant, name).draft
    await run_in_threadpool(c.prompts.discard_draft, merchant, name)
    await run_in_threadpool(
        _audit, c, merchant, who, "prompt.draft.discard", name, before and before.get("text"), None, request
    )
    return {"ok": True}


@private_router.post(API + "/prompts/{name}/validate")
async def prompt_validate(merchant: MerchantId, name: str, body: PromptText) -> dict:
    _prompt_name(name)
    errs = pstore.problems(name, body.text)
    return {"ok": not errs, "problems": errs, "variables": sorted(prompt_loader.variables(body.text))}


class PreviewIn(BaseModel):
    question: str = Field(min_length=1, max_length=200)
    text: str | None = Field(None, max_length=20000)


def _sample_values(c: ConsoleService, merchant: str, name: str, question: str) -> dict[str, str]:
    if name == "system":
        try:
            shop = c.container.kb.snapshot(merchant).catalog.merchant.name or merchant
        except KBError:
            shop = merchant
        return {"shop": shop, "max_chars": str(c.container.agent.config.max_chars)}
    if name == "answer":
        try:
            _, hits = c.container.kb.search(merchant, question, k=5)
            facts = "\n".join(f"- {h.text}" for h in hits) or "（无相关资料）"
        except KBError:
            facts = "（无相关资料）"
        return {"facts": facts, "profile": "", "history": "", "question": question}
    return {v: f"〔{v}〕" for v in pstore.required_vars(name)}


@private_router.post(API + "/prompts/{name}/preview")
async def prompt_preview(merchant: MerchantId, name: str, body: PreviewIn, c: Console) -> Any:
    _prompt_name(name)
    st = c.prompts.state(merchant, name)
    draft = (
        body.text if body.text is not None else (st.draft or {}).get("text") or c.prompts.effective_text(merchant, name)
    )
    errs = pstore.problems(name, draft)
    if errs:
        return JSONResponse({"detail": "草稿有错误，无法预览", "problems": errs}, status_code=422)
    values = await run_in_threadpool(_sample_values, c, merchant, name, body.question)
    published_text = c.prompts.effective_text(merchant, name)
    out: dict[str, Any] = {
        "llm": c.container.llm is not None,
        "used_by_agent": name in ("system", "answer"),
        "question": body.question,
    }

    async def one(label: str, drafts: dict[str, str]) -> dict:
        text = drafts.get(name, published_text)
        rendered = string.Template(text).safe_substitute(values)
        res: dict[str, Any] = {"rendered": rendered}
        if name in ("system", "answer"):
            with prompt_loader.scope(merchant, c.prompts, drafts):
                try:
                    ans = await c.container.agent.answer(
                        ViewerMessage(
                            merchant=merchant,
                            room_id="console-preview",
                            viewer_id=f"preview-{label}-{uuid.uuid4().hex[:6]}",
                            text=body.question,
                            channel="console",
                        )
                    )
                    snap = c.container.kb.snapshot(merchant)
                    res |= {
                        "answer": ans.answer,
                        "path": ans.path,
                        "intent": ans.intent,
                        "flags": ans.flags,
                        "refused": ans.refused,
                        "citations": [
                            {
                                "fact_id": x.fact_id,
                                "sku": x.sku,
                                "text": snap.fact(x.fact_id).text if snap.fact(x.fact_id) else None,
                            }
                            for x in ans.citations
                        ],
                    }
                except KBError as e:
                    res |= {"answer": None, "error": str(e)}
        return res

    out["published"] = await one("published", {})
    out["draft"] = await one("draft", {name: draft})
    out["published"]["version"] = st.published or 0
    return out


# POST /prompts/{name}/publish and /restore: console/regression_api.py (tested on the set first)


@private_router.get(API + "/prompts/{name}/history")
async def prompt_history(merchant: MerchantId, name: str, c: Console) -> list[dict]:
    _prompt_name(name)
    return await run_in_threadpool(c.prompts.history, merchant, name)


@private_router.get(API + "/prompts/{name}/versions/{version}")
async def prompt_version(merchant: MerchantId, name: str, version: int, c: Console) -> dict:
    _prompt_name(name)
    try:
        return {"version": version, "text": c.prompts.text(merchant, name, version)}
    except PromptError:
        raise HTTPException(404, "版本不存在") from None


@private_router.get(API + "/prompts/{name}/diff")
async def prompt_diff(
    merchant: MerchantId, name: str, c: Console, a: int = Query(..., ge=0), b: str = Query(..., max_length=16)
) -> dict:
    """Line diff of version ``a`` against version ``b`` (a number, ``draft`` or ``published``)."""
    _prompt_name(name)
    try:
        left = c.prompts.text(merchant, name, a)
        if b == "draft":
            draft = c.prompts.state(merchant, name).draft or {}
            right = draft.get("text") or c.prompts.effective_text(merchant, name)
        elif b == "published":
            right = c.prompts.effective_text(merchant, name)
        else:
            right = c.prompts.text(merchant, name, int(b))
    except (PromptError, ValueError):
        raise HTTPException(404, "版本不存在") from None
    lines = []
    for ln in difflib.ndiff(left.splitlines(), right.splitlines()):
        if ln.startswith("? "):
            continue
        lines.append({"op": ln[0] if ln[0] in "+-" else " ", "text": ln[2:]})
    return {"a": a, "b": b, "lines": lines}


# ============================================================================================
# rooms & live dashboard
# ============================================================================================
class RoomIn(BaseModel):
    room_id: str = Field(min_length=1, max_length=64)
    title: str = Field("", max_length=128)
    rundown: str = Field("", max_length=256)
    allowed_origins: list[str] = Field(default_factory=list, max_length=20)


class RoomPatch(BaseModel):
    title: str | None = Field(None, max_length=128)
    status: Literal["open", "closed"] | None = None
    rundown: str | None = Field(None, max_length=256)
    allowed_origins: list[str] | None = Field(None, max_length=20)


def viewer_url(request: Request, public_url: str, room_id: str) -> str:
    """A room's viewer page as an absolute URL: ``console.public_url``, else the address the console was opened at."""
    base = (public_url or str(request.base_url)).rstrip("/")
    return f"{base}/rooms/{quote(room_id, safe='')}"


@private_router.get(API + "/rooms")
async def rooms_list(merchant: MerchantId, request: Request, c: Console) -> list[dict]:
    rooms = await run_in_threadpool(c.rooms, merchant)
    return [{**r, "url": viewer_url(request, c.config.public_url, r["room_id"])} for r in rooms]


@private_router.post(API + "/rooms", status_code=201)
async def rooms_create(merchant: MerchantId, body: RoomIn, request: Request, who: Who, c: Console) -> dict:
    try:
        room = await run_in_threadpool(
            lambda: c.create_room(
                merchant,
                body.room_id,
                body.title,
                who.actor,
                rundown=body.rundown,
                allowed_origins=body.allowed_origins,
            )
        )
    except ValueError as e:
        raise HTTPException(409 if "占用" in str(e) else 422, str(e)) from None
    await run_in_threadpool(_audit, c, merchant, who, "room.create", body.room_id, None, room, request)
    return room


@private_router.patch(API + "/rooms/{room_id}")
async def rooms_update(
    merchant: MerchantId, room_id: str, body: RoomPatch, request: Request, who: Who, c: Console
) -> dict:
    """Close (or reopen) a room, retitle it, set its rundown or the origins allowed to embed it."""
    before = await run_in_threadpool(c.room, merchant, room_id)
    if before is None:
        raise HTTPException(404, "直播间不存在")
    try:
        room = await run_in_threadpool(
            lambda: c.update_room(
                merchant, room_id, title=body.title, rundown=body.rundown, allowed_origins=body.allowed_origins
            )
        )
        if body.status is not None:
            room = await run_in_threadpool(c.set_room_status, merchant, room_id, body.status)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    await run_in_threadpool(_audit, c, merchant, who, "room.update", room_id, before, room, request)
    return room


@private_router.get(API + "/rooms/{room_id}/live")
async def room_live(
    merchant: MerchantId, room_id: str, request: Request, c: Console, minutes: int = Query(30, ge=5, le=180)
) -> dict:
    if await run_in_threadpool(c.room, merchant, room_id) is None:
        raise HTTPException(404, "直播间不存在")
    return await run_in_threadpool(dashboard, c, request.app, merchant, room_id, minutes)


class FeedbackIn(BaseModel):
    reason: str = Field("", max_length=500)


@private_router.post(API + "/rooms/{room_id}/answers/{answer_id}/feedback", status_code=201)
async def answer_feedback(
    merchant: MerchantId, room_id: str, answer_id: str, body: FeedbackIn, request: Request, who: Who, c: Console
) -> dict:
    ans = c.answers.get(merchant, room_id, answer_id)
    if ans is None:
        raise HTTPException(404, "回答不存在或已过期")
    res = await run_in_threadpool(c.file_feedback, merchant, room_id, ans, body.reason, who.actor)
    await run_in_threadpool(
        _audit,
        c,
        merchant,
        who,
        "answer.thumbs_down",
        f"{room_id}/{answer_id}",
        None,
        {"question": ans.question, "answer": ans.answer, "reason": body.reason},
        request,
    )
    return res


class SimIn(BaseModel):
    action: Literal["start", "stop"]


@private_router.post(API + "/rooms/{room_id}/simulator")
async def room_simulator(
    merchant: MerchantId, room_id: str, body: SimIn, request: Request, who: Who, c: Console
) -> dict:
    if not c.config.simulator_allowed(merchant):
        raise HTTPException(403, "该商家未开启演示模拟器（LIVEROOM_CONSOLE_SIMULATOR）")
    key = (merchant, room_id)
    cur = c.simulators.get(key)
    if body.action == "start":
        if cur is None or not cur.running:
            if c.container.kb.active_version(merchant) is None:
                raise HTTPException(409, "请先上传知识库，模拟器需要商品数据")
            sim = Simulator(merchant, room_id)
            sim.task = asyncio.create_task(
                sim.run(c.container, host=host_room(request.app, merchant, room_id, create=True)), name=f"sim-{room_id}"
            )
            c.simulators[key] = sim
    elif cur is not None and cur.running:
        cur.task.cancel()
    await run_in_threadpool(_audit, c, merchant, who, f"simulator.{body.action}", room_id, None, None, request)
    return c.simulator_view(merchant, room_id)


# ============================================================================================
# reviews, team, tokens, audit
# ============================================================================================
@private_router.get(API + "/reviews")
async def reviews_list(
    merchant: MerchantId, c: Console, status: Literal["open", "resolved", "dismissed"] | None = None
) -> list[dict]:
    return await run_in_threadpool(c.reviews, merchant, status)


class ReviewIn(BaseModel):
    status: Literal["open", "resolved", "dismissed"]


@private_router.post(API + "/reviews/{review_id}")
async def review_update(
    merchant: MerchantId, review_id: int, body: ReviewIn, request: Request, who: Who, c: Console
) -> dict:
    before = await run_in_threadpool(c.review, merchant, review_id)
    if before is None:
        raise HTTPException(404, "复核记录不存在")
    after = await run_in_threadpool(c.resolve_review, merchant, review_id, body.status, who.actor)
    await run_in_threadpool(
        _audit,
        c,
        merchant,
        who,
        "review.update",
        str(review_id),
        {"status": before["status"]},
        {"status": body.status},
        request,
    )
    return after


class UserIn(BaseModel):
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    role: Literal["owner", "operator", "viewer"]
    display_name: str = Field("", max_length=64)


class UserPatch(BaseModel):
    role: Literal["owner", "operator", "viewer"] | None = None
    disabled: bool | None = None
    password: str | None = Field(None, min_length=8, max_length=256)


@private_router.get(API + "/users")
async def users_list(merchant: MerchantId, c: Console) -> list[dict]:
    return await run_in_threadpool(c.accounts.users, merchant)


@private_router.post(API + "/users", status_code=201)
async def users_create(merchant: MerchantId, body: UserIn, request: Request, who: Who, c: Console) -> dict:
    try:
        u = await run_in_threadpool(
            c.accounts.create_user, merchant, body.username, body.password, body.role, body.display_name
        )
    except AuthError as e:
        raise HTTPException(409 if "已存在" in str(e) else 422, str(e)) from None
    await run_in_threadpool(
        _audit,
        c,
        merchant,
        who,
        "user.create",
        body.username,
        None,
        {"username": u["username"], "role": u["role"]},
        request,
    )
    return u


@private_router.patch(API + "/users/{user_id}")
async def users_update(
    merchant: MerchantId, user_id: str, body: UserPatch, request: Request, who: Who, c: Console
) -> dict:
    before = await run_in_threadpool(c.accounts.user, merchant, user_id)
    if before is None:
        raise HTTPException(404, "用户不存在")
    demoting = before["role"] == "owner" and ((body.role and body.role != "owner") or body.disabled)
    if demoting and await run_in_threadpool(c.accounts.owners, merchant) <= 1:
        raise HTTPException(409, "至少要保留一位店主")
    try:
        after = await run_in_threadpool(
            lambda: c.accounts.update_user(
                merchant, user_id, role=body.role, disabled=body.disabled, password=body.password
            )
        )
    except AuthError as e:
        raise HTTPException(422, str(e)) from None
    await run_in_threadpool(
        _audit,
        c,
        merchant,
        who,
        "user.update",
        before["username"],
        {k: before[k] for k in ("role", "disabled")},
        {k: after[k] for k in ("role", "disabled")} | {"password_changed": body.password is not None},
        request,
    )
    return after


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    # "agent": only for the agent as an OpenAI-compatible model (/v1/chat/completions), nothing else
    role: Literal["operator", "viewer", "agent"] = "operator"


@private_router.get(API + "/tokens")
async def tokens_list(merchant: MerchantId, c: Console) -> list[dict]:
    return await run_in_threadpool(c.accounts.tokens, merchant)


@private_router.post(API + "/tokens", status_code=201)
async def tokens_create(merchant: MerchantId, body: TokenIn, request: Request, who: Who, c: Console) -> dict:
    try:
        tok, raw = await run_in_threadpool(c.accounts.create_token, merchant, body.name, body.role, who.actor)
    except AuthError as e:
        raise HTTPException(422, str(e)) from None
    await run_in_threadpool(
        _audit,
        c,
        merchant,
        who,
        "token.create",
        body.name,
        None,
        {"token_id": tok["token_id"], "role": tok["role"]},
        request,
    )
    return tok | {"token": raw}


@private_router.delete(API + "/tokens/{token_id}")
async def tokens_revoke(merchant: MerchantId, token_id: str, request: Request, who: Who, c: Console) -> dict:
    tok = await run_in_threadpool(c.accounts.revoke_token, merchant, token_id)
    if tok is None:
        raise HTTPException(404, "令牌不存在或已吊销")
    await run_in_threadpool(
        _audit, c, merchant, who, "token.revoke", tok["name"], {"revoked": False}, {"revoked": True}, request
    )
    return tok


# --- viewer verification: the secret the merchant's backend signs viewer tokens with (owner only) ---
@private_router.get(API + "/viewer-secret")
async def viewer_secret_info(merchant: MerchantId, c: Console) -> dict:
    info = await run_in_threadpool(c.container.viewer_tokens.info, merchant)
    return info or {"secret_id": None}


@private_router.post(API + "/viewer-secret", status_code=201)
async def viewer_secret_rotate(merchant: MerchantId, request: Request, who: Who, c: Console) -> dict:
    """Create the viewer-token secret, or rotate it (the previous one keeps verifying for a grace
    period). The secret is in this response only."""
    before = await run_in_threadpool(c.container.viewer_tokens.info, merchant)
    info, secret = await run_in_threadpool(c.container.viewer_tokens.rotate, merchant, who.actor)
    await run_in_threadpool(
        _audit,
        c,
        merchant,
        who,
        "viewer_secret.rotate" if before else "viewer_secret.create",
        info["secret_id"],
        {"secret_id": before["secret_id"]} if before else None,
        {"secret_id": info["secret_id"]},
        request,
    )
    return info | {"secret": secret}


@private_router.get(API + "/audit")
async def audit_list(
    merchant: MerchantId,
    c: Console,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0),
    action: str | None = Query(None, max_length=64),
) -> dict:
    return await run_in_threadpool(c.audit.list, merchant, limit, offset, action)


from console.regression_api import router as regression_router  # noqa: E402 - it uses the helpers above
from console.show_routes import show_routers  # noqa: E402 - campaigns, room links, style (issue 19)

router = APIRouter()  # what the server includes
router.include_router(public_router)
router.include_router(private_router)
router.include_router(regression_router)
for _r in show_routers():
    router.include_router(_r)
routers = [router]
