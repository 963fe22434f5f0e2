"""First run: while the default merchant has no owner, the server prints the console's setup URL and a
one-time setup code at start-up (``make run``); ``/console/setup`` — reachable only from this machine
(loopback) — takes that code and the owner's chosen username and password, creates the owner and logs
them in. The code is used once (then, and once an owner exists, the page sends to the login form).

The code (console/first_run.py) lives on the app's state (one per server start), never on disk; it is compared in constant time,
and failed attempts share the login form's rate limiter.
"""

from __future__ import annotations

import hmac
import uuid

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.api import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Console, _ip, _secure
from console.auth import AuthError
from console.first_run import SETUP_PATH, _merchant, pending_code
from console.pages import env

router = APIRouter(tags=["console"])  # public routes (console/guard.py PUBLIC): checked here
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
MIN_PASSWORD = 10


def _local(request: Request) -> bool:
    return bool(request.client) and request.client.host in LOOPBACK


def _page(request: Request, c, csrf: str, error: str | None = None, username: str = "", status: int = 200):
    html = env.get_template("setup.html").render(
        csrf=csrf, error=error, username=username, merchant=_merchant(request.app), min_password=MIN_PASSWORD
    )
    resp = HTMLResponse(html, status_code=status)
    resp.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_secure(request, c), path=SETUP_PATH
    )
    return resp


@router.get(SETUP_PATH, response_class=HTMLResponse, include_in_schema=False)
async def setup_form(request: Request, c: Console) -> Response:
    if not _local(request):
        raise HTTPException(404)
    if await run_in_threadpool(pending_code, request.app) is None:
        return RedirectResponse("/console/login", status_code=303)
    return _page(request, c, uuid.uuid4().hex + uuid.uuid4().hex)


@router.post(SETUP_PATH, include_in_schema=False)
async def setup_submit(
    request: Request,
    c: Console,
    code: str = Form("", max_length=64),
    username: str = Form("", max_length=64),
    password: str = Form("", max_length=256),
    password2: str = Form("", max_length=256),
    csrf: str = Form("", max_length=128),
) -> Response:
    if not _local(request):
        raise HTTPException(404)
    want = await run_in_threadpool(pending_code, request.app)
    if want is None:
        return RedirectResponse("/console/login", status_code=303)
    fresh = uuid.uuid4().hex + uuid.uuid4().hex
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf or not hmac.compare_digest(cookie.encode(), csrf.encode()):
        return _page(request, c, fresh, "页面已过期，请重试", username, 403)
    wait = c.limiter.check(_ip(request), "setup")
    if wait:
        return _page(request, c, fresh, f"尝试过于频繁，请 {int(wait) + 1} 秒后再试", username, 429)
    if not hmac.compare_digest(code.strip().upper().encode(), want.encode()):
        c.limiter.failed("setup", _ip(request))
        return _page(request, c, fresh, "设置码不对：请看启动服务器的终端里打印的一次性设置码", username, 401)
    if len(password) < MIN_PASSWORD or password != password2:
        msg = f"密码至少 {MIN_PASSWORD} 位，两次输入需一致"
        return _page(request, c, fresh, msg, username, 422)
    merchant = _merchant(request.app)
    try:
        user = await run_in_threadpool(c.accounts.create_user, merchant, username.strip(), password, "owner")
    except AuthError as e:
        return _page(request, c, fresh, e.message, username, 422)
    request.app.state.setup_code, request.app.state.setup_used = None, True  # one time only
    sid, _ = await run_in_threadpool(c.accounts.create_session, user, _ip(request))
    await run_in_threadpool(
        c.audit.record, merchant, f"user:{user['username']}", "setup.owner", user["username"], None, None, _ip(request)
    )
    resp = RedirectResponse(f"/console/m/{merchant}/rooms", status_code=303)
    resp.set_cookie(
        SESSION_COOKIE, sid, httponly=True, samesite="lax", secure=_secure(request, c), path="/", max_age=12 * 3600
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path=SETUP_PATH)
    return resp
