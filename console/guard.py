"""Authentication, authorization and tenant isolation for every route of the app — in one place.

``Guard`` is an ASGI middleware installed app-wide (``app.add_middleware(Guard)`` in server.py). For
each request it finds the route that will handle it and applies that route's policy:

- **public** (``PUBLIC``): the live room's viewer side and static assets — no credentials;
- **ops** (``OPS``): operational data spanning merchants — the platform admin token only;
- **merchant-scoped**: any route with a ``{merchant}`` path parameter (the caller must belong to that
  merchant) and/or a ``{room_id}`` parameter (the room must be registered to the caller's merchant);
- **principal-scoped** (``PRINCIPAL_ROUTES``): routes whose merchant comes from the caller itself, or
  from the body (``POST /api/events``: the batch's ``merchant`` must be the caller's);
- anything else is **denied** (fail closed) until it is classified here; a test walks the route table
  so a new route cannot slip through unclassified.

Callers authenticate with a console session cookie (then unsafe methods need the session's CSRF
token in ``X-CSRF-Token`` and a same-origin ``Origin``) or ``Authorization: Bearer <API token>``.
Roles: viewer (read), operator (write), owner (users and tokens). Successful writes outside the
console's own routes (which audit with before/after themselves) are written to the audit log here.
The guard also sets security headers and limits request bodies. It reads no answers: the dashboard's
answer log subscribes to the agent's answer bus (console/service.py, agent/bus.py).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import cookie_parser
from starlette.routing import compile_path

from console.auth import Principal
from console.service import get_console

log = logging.getLogger("liveroom.console.guard")

SESSION_COOKIE = "lr_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
MAX_BODY = 4 * 1024 * 1024
AUDIT_BODY = 64 * 1024

# (method, route path) → why it needs no credentials. "WS" is a WebSocket route.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe for load balancers",
    ("GET", "/metrics"): "Prometheus scrape: aggregate counters only, no merchant data",
    ("POST", "/api/rooms/{room_id}/ask"): "viewer side of a live room: anyone in the room may ask",
    ("POST", "/api/rooms/{room_id}/images"): "viewer side of a live room: a viewer's picture (size-capped)",
    ("GET", "/api/rooms/{room_id}/products/{sku}"): "viewer page's product card: name, live price, stock",
    ("WS", "/ws/rooms/{room_id}"): "viewer side of a live room: the danmaku channel",
    ("WS", "/ws/rooms/{room_id}/voice"): "viewer side of a live room: the voice channel",
    ("GET", "/rooms/{room_id}"): "the public live-room page (text chat + microphone)",
    ("GET", "/static/voice/{name}"): "scripts of the public live-room page",
    ("GET", "/v1/models"): "OpenAI-compatible model list (static)",
    ("GET", "/openapi.json"): "API description (no data)",
    ("GET", "/docs"): "API documentation page",
    ("GET", "/docs/oauth2-redirect"): "API documentation page",
    ("GET", "/redoc"): "API documentation page",
    ("GET", "/console/login"): "the console's login page",
    ("POST", "/console/login"): "the console's login form (rate-limited, CSRF double-submit)",
    ("GET", "/console/static/{path:path}"): "the console's scripts, styles and fonts",
    # first run (console/setup.py): loopback only, a one-time code printed at start-up, while there is no owner
    ("GET", "/console/setup"): "first-run owner setup page (loopback only, checked by the handler)",
    ("POST", "/console/setup"): "first-run owner setup (loopback only, one-time code, rate-limited, CSRF)",
    # live-platform connectors (connectors/api.py): each request proves itself with its signature
    ("POST", "/connectors/douyin/{connector_id}/push"): "Douyin live data push: x-signature checked by the handler",
    ("POST", "/connectors/webhook/{connector_id}"): "signed webhook: HMAC-SHA256 checked by the handler",
    # the OBS overlay: the room-scoped overlay token (?token=) is checked by the handler
    ("GET", "/overlay/{room_id}"): "the OBS overlay page (overlay token checked by the handler)",
    ("GET", "/overlay/static/{name}"): "the overlay page's script and styles",
    ("WS", "/ws/overlay/{room_id}"): "the OBS overlay's feed (overlay token checked by the handler)",
}

# Integration channels that need a merchant API token of role "agent" (which also fixes the merchant).
AGENT_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/v1/chat/completions"): "the agent as an OpenAI-compatible model, for a merchant's integration",
}

# Body limits of the public (and agent-key) routes, by route: what a viewer may send. The public routes
# check who is asking themselves (audience/access.py); the guard only bounds what they have to read.
PUBLIC_BODY_LIMITS: dict[tuple[str, str], str] = {
    ("POST", "/api/rooms/{room_id}/ask"): "max_ask_body",
    ("POST", "/v1/chat/completions"): "max_v1_body",
    ("POST", "/console/login"): "max_ask_body",
    ("POST", "/console/setup"): "max_ask_body",
    ("POST", "/connectors/douyin/{connector_id}/push"): "max_v1_body",  # a push batches messages
    ("POST", "/connectors/webhook/{connector_id}"): "max_v1_body",
}
STREAMED_PUBLIC = {("POST", "/api/rooms/{room_id}/images")}  # reads (and caps) its own raw body

# Cross-merchant operational data: the platform admin token (LIVEROOM_CONSOLE_ADMIN_TOKEN) only.
OPS: dict[tuple[str, str], str] = {
    ("GET", "/api/voice/turns"): "recent voice turn traces of every merchant",
    ("GET", "/api/voice/status"): "voice runtime status",
}

# Routes without a merchant/room in the path: their merchant is the caller's own (any ``merchant`` in
# the query or JSON body must be the caller's — see below).
PRINCIPAL_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/events"): "request",  # the batch's "merchant" (or ?merchant= for a bare list)
    ("POST", "/api/rundowns/validate"): "request",
    # copywriting (copywriting/api.py): ?merchant= or the body's "merchant"
    ("POST", "/api/copy"): "request",
    ("POST", "/api/campaigns/{campaign_id}/generate"): "request",
    ("GET", "/api/campaigns/{campaign_id}"): "request",
    ("GET", "/api/campaigns/{campaign_id}/groups"): "request",
    ("GET", "/api/campaigns/{campaign_id}/results"): "request",
    ("POST", "/api/experiments"): "request",
    ("GET", "/api/experiments/{experiment_id}"): "request",
    ("GET", "/api/experiments/{experiment_id}/assignment/{viewer_id}"): "request",
    ("POST", "/api/experiments/{experiment_id}/events"): "request",
    ("GET", "/api/experiments/{experiment_id}/report"): "request",
    ("POST", "/api/experiments/{experiment_id}/stop"): "request",
    ("POST", "/api/compliance/check"): "request",
    # the console's own
    ("GET", "/console"): "self",
    ("GET", "/console/api/me"): "self",
    ("POST", "/console/logout"): "self",
}

# Principal routes whose body is not JSON (and whose handler takes the merchant from ?merchant= only):
# route → the media types passed on uninspected. Any other non-JSON body on a write is refused (415).
RAW_BODY_ROUTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/api/rundowns/validate"): ("application/yaml", "application/x-yaml", "text/yaml", "text/plain"),
}

# Outside the console, handlers take the merchant from ``?merchant=`` or a JSON body's "merchant" (host,
# copywriting, the events batch) and default to LIVEROOM_DEFAULT_MERCHANT when it is missing. So for every
# authenticated route without {merchant} in its path: a ``merchant`` given in the query or a JSON object
# body must be the caller's, and a missing one is filled in with the caller's (never the default's).

SCOPE_PARAMS = ("merchant", "room_id")

# Writes that are audited elsewhere (high-volume, with their own ledger) — everything else is audited.
AUDIT_SKIP = {
    ("POST", "/api/events"),
    ("POST", "/api/merchants/{merchant}/coupons/issue"),
    ("POST", "/api/merchants/{merchant}/coupons/redeem"),
}

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _before_rules(c, p: dict) -> Any:
    return c.audience.rule_overrides(p["merchant"])


def _before_campaign(c, p: dict) -> Any:
    camp = c.audience.get_campaign(p["merchant"], p["campaign_id"])
    return camp.model_dump() if camp else None


# State captured before an audited write, for the log's "before" column.
BEFORE: dict[tuple[str, str], Callable[[Any, dict], Any]] = {
    ("PUT", "/api/merchants/{merchant}/audience-rules"): _before_rules,
    ("POST", "/api/merchants/{merchant}/campaigns/{campaign_id}/status"): _before_campaign,
}


# POSTs that only compute something (retrieval test, template check, previews): read-only users may run them.
READ_ONLY_POSTS = re.compile(
    r"^/console/api/m/[^/]+/(kb/search|kb/products/[^/]+/preview|prompts/[^/]+/(validate|preview)|style/(check|preview))$"
)


def required_role(method: str, path: str) -> str:
    if path.startswith("/console/api/") and re.search(r"/(users|tokens|viewer-secret)(/|$)", path):
        return "owner"
    if path.startswith("/console/api/") and "/audit" in path:
        return "operator"
    if method == "POST" and READ_ONLY_POSTS.match(path):
        return "viewer"
    return "operator" if method in UNSAFE else "viewer"


@dataclass(frozen=True)
class RouteEntry:
    kind: str  # "http" | "websocket"
    path: str  # the full path template, e.g. "/api/merchants/{merchant}/campaigns"
    methods: frozenset[str]  # HTTP methods ("HEAD" folded into "GET"); {"WS"} for WebSocket routes
    regex: Any
    convertors: dict


def _flat_routes(app) -> list:
    try:  # FastAPI ≥ 0.13x includes routers lazily; this flattens them with their effective paths
        from fastapi.routing import iter_route_contexts

        return list(iter_route_contexts(app.router.routes))
    except ImportError:  # pragma: no cover - older FastAPI: the routes are already flat
        return list(app.router.routes)


def route_table(app) -> list[RouteEntry]:
    """Every route of the app, flattened (cached per app until its routes change)."""
    version = getattr(app.router, "_get_routes_version", lambda: None)()
    key = (version, len(app.router.routes))
    cached = getattr(app.state, "_guard_routes", None)
    if cached and cached[0] == key:
        return cached[1]
    out = []
    for rc in _flat_routes(app):
        path = getattr(rc, "path", None)
        if not path:
            continue
        cls = type(getattr(rc, "original_route", rc)).__name__
        if cls == "Mount":
            path = path.rstrip("/") + "/{path:path}"
            kind, methods = "http", frozenset({"GET"})
        elif cls in ("APIWebSocketRoute", "WebSocketRoute"):
            kind, methods = "websocket", frozenset({"WS"})
        else:
            kind = "http"
            methods = frozenset("GET" if m == "HEAD" else m for m in (getattr(rc, "methods", None) or {"GET"}))
        regex, _fmt, conv = compile_path(path)
        out.append(RouteEntry(kind, path, methods, regex, conv))
    app.state._guard_routes = (key, out)
    return out


def match_route(app, scope) -> tuple[RouteEntry | None, dict]:
    """The route that will handle this request and its path parameters (None if nothing matches).
    Same order as the router: the first route whose path and method match; else the first whose
    path matches (the app answers 405)."""
    kind = scope["type"]
    method = "WS" if kind == "websocket" else ("GET" if scope["method"] == "HEAD" else scope["method"])
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    partial = None
    for r in route_table(app):
        if r.kind != kind:
            continue
        m = r.regex.match(path)
        if not m:
            continue
        params = {k: r.convertors[k].convert(v) for k, v in m.groupdict().items()}
        if method in r.methods:
            return r, params
        if partial is None:
            partial = (r, params)
    return partial if partial else (None, {})


def classify(method: str, path: str, params: dict) -> str:
    """public | ops | agent | scoped | principal | unclassified"""
    key = (method, path)
    if key in PUBLIC:
        return "public"
    if key in OPS:
        return "ops"
    if key in AGENT_ROUTES:
        return "agent"
    if any(p in params or "{" + p + "}" in path for p in SCOPE_PARAMS):
        return "scoped"
    if key in PRINCIPAL_ROUTES:
        return "principal"
    return "unclassified"


class _TooLarge(Exception):
    pass


class Guard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        fastapi_app = scope.get("app")
        route, params = match_route(fastapi_app, scope) if fastapi_app is not None else (None, {})
        is_ws = scope["type"] == "websocket"
        method = "WS" if is_ws else ("GET" if scope["method"] == "HEAD" else scope["method"])
        path = scope.get("path", "")
        send = self._with_headers(send, path) if not is_ws else send
        if route is None or method not in route.methods:  # 404 / 405 from the app itself
            await self.app(scope, receive, send)
            return
        rpath = route.path
        kind = classify(method, rpath, params)
        if kind == "public":
            if not is_ws and method in UNSAFE:
                bounded = await self._bounded_body(fastapi_app, scope, receive, send, method, rpath)
                if bounded is None:
                    return
                receive = bounded
            await self.app(scope, receive, send)
            return
        console = get_console(fastapi_app)
        principal = await asyncio.to_thread(self._authenticate, console, scope)
        page = not is_ws and method == "GET" and path.startswith("/console") and not path.startswith("/console/api")

        async def deny(status: int, detail: str) -> None:
            await self._deny(scope, receive, send, status, detail, page)

        if kind == "ops":
            if principal is None or principal.kind != "admin":
                await deny(401 if principal is None else 403, "需要平台管理员令牌")
                return
            await self.app(scope, receive, send)
            return
        if principal is None:
            if page:
                await self._redirect(
                    send,
                    "/console/login?next="
                    + quote(
                        path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""),
                        safe="/?=&",
                    ),
                )
                return
            await deny(401, "需要登录或 API 令牌")
            return
        if principal.kind == "admin":
            await deny(403, "平台管理员令牌只能访问运维接口")
            return
        if kind == "agent":
            if principal.kind != "token" or principal.role != "agent":
                await deny(403, "需要 agent 权限的商家 API 令牌")
                return
            scope.setdefault("state", {})["principal"] = principal
            bounded = await self._bounded_body(fastapi_app, scope, receive, send, method, rpath)
            if bounded is not None:
                await self.app(scope, bounded, send)
            return
        if principal.role not in ("viewer", "operator", "owner"):  # an "agent" token: /v1 only
            await deny(403, "该令牌只能用于 /v1/chat/completions")
            return
        if kind == "unclassified":
            log.error("route %s %s is not classified in console.guard: denied", method, rpath)
            await deny(403, "该接口尚未配置访问策略")
            return
        # --- tenant isolation ---
        m = params.get("merchant")
        if m is not None and m != principal.merchant:
            await deny(403, "无权访问其他商家的数据")
            return
        room = params.get("room_id")
        if room is not None:
            owner = await asyncio.to_thread(console.room_merchant, room)
            if owner is None and console.config.auto_claim_rooms and principal.merchant:
                try:
                    await asyncio.to_thread(console.create_room, principal.merchant, room, room, principal.actor)
                    await asyncio.to_thread(
                        console.audit.record,
                        principal.merchant,
                        principal.actor,
                        "room.claim",
                        room,
                        None,
                        {"auto": True},
                        _client_ip(scope),
                    )
                except ValueError:
                    pass
                owner = await asyncio.to_thread(console.room_merchant, room)
            if owner is None:
                await deny(404, "直播间不存在")
                return
            if owner != principal.merchant:
                await deny(403, "无权访问其他商家的直播间")
                return
        # --- role ---
        if not principal.can(required_role(method, path)):
            await deny(403, "当前角色没有此操作的权限")
            return
        # --- CSRF (cookie sessions only; bearer tokens are not sent by browsers on their own) ---
        headers = _headers(scope)
        if principal.kind == "session" and (method in UNSAFE or is_ws):
            origin = headers.get("origin")
            if origin and not _same_origin(origin, scope, headers):
                await deny(403, "跨站请求被拒绝")
                return
            sent = headers.get(CSRF_HEADER, "").encode("latin-1")
            if not is_ws and not hmac.compare_digest(sent, (principal.csrf or "x").encode()):
                await deny(403, "CSRF 校验失败，请刷新页面后重试")
                return
        scope.setdefault("state", {})["principal"] = principal
        if is_ws:
            if "merchant" in params or await self._query_merchant(scope, principal, deny):
                await self.app(scope, receive, send)
            return
        # --- body limits, body-scoped merchant, audit of writes ---
        limit = MAX_BODY
        if rpath.endswith("/kb/uploads"):
            from console.kb import MAX_UPLOAD_BODY

            limit = MAX_UPLOAD_BODY
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await deny(413, f"请求体过大（上限 {limit // (1024 * 1024)} MB）")
            return
        if "merchant" not in params and not rpath.startswith("/console"):
            if method in UNSAFE:
                # The body's merchant is checked whatever the Content-Type says: media types compare
                # case-insensitively, and a body that is not JSON under a non-JSON type is refused (415)
                # rather than passed to a handler that might parse it anyway.
                try:
                    body = await _read_body(receive, limit, None if limit <= MAX_BODY else 120.0)
                except _TooLarge:
                    await deny(413, f"请求体过大（上限 {limit // (1024 * 1024)} MB）")
                    return
                except _TooSlow:
                    await deny(408, "请求体发送超时")
                    return
                media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
                raw_ok = media in RAW_BODY_ROUTES.get((method, rpath), ())
                try:
                    data = _NOTHING if raw_ok else _json_body(body)
                except _Unparsable:
                    ctype = headers.get("content-type", "")
                    if ctype and not is_json_media_type(ctype):
                        await deny(415, "请求体必须是 JSON（Content-Type: application/json）")
                    else:
                        await deny(400, "请求体不是有效的 JSON")
                    return
                bm = _body_merchant_of(data)
                if bm is not None and bm != principal.merchant:
                    await deny(403, "无权向其他商家写入数据")
                    return
                if bm is None:
                    new = _with_body_merchant_of(data, body, principal.merchant)
                    if new is not body:
                        body = new
                        scope["headers"] = [
                            (k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"
                        ]
                        scope["headers"].append((b"content-length", str(len(body)).encode()))
                receive = _replay(body, receive)
            if not await self._query_merchant(scope, principal, deny):
                return
        audit = method in UNSAFE and not rpath.startswith("/console") and (method, rpath) not in AUDIT_SKIP
        captured = bytearray()
        status_box: list[int] = []
        counted = 0

        async def recv():
            nonlocal counted
            msg = await receive()
            if msg["type"] == "http.request":
                chunk = msg.get("body", b"")
                counted += len(chunk)
                if counted > limit:
                    raise _TooLarge()
                if audit and len(captured) < AUDIT_BODY:
                    captured.extend(chunk[: AUDIT_BODY - len(captured)])
            return msg

        async def snd(msg):
            if msg["type"] == "http.response.start":
                status_box.append(msg["status"])
            await send(msg)

        before = None
        if audit and (method, rpath) in BEFORE:
            try:
                before = await asyncio.to_thread(BEFORE[(method, rpath)], console.container, params)
            except Exception:  # noqa: BLE001 - the write itself reports its errors
                before = None
        try:
            await self.app(scope, recv, snd)
        except _TooLarge:
            if not status_box:
                await deny(413, f"请求体过大（上限 {limit // (1024 * 1024)} MB）")
            return
        if audit and status_box and status_box[0] < 400 and principal.merchant:
            after = _json_or_text(bytes(captured))
            try:
                await asyncio.to_thread(
                    console.audit.record,
                    principal.merchant,
                    principal.actor,
                    f"{method} {rpath}",
                    path,
                    before,
                    after,
                    _client_ip(scope),
                )
            except Exception:  # noqa: BLE001
                log.exception("audit write failed")

    async def _bounded_body(self, fastapi_app, scope, receive, send, method: str, rpath: str):
        """Read a public route's body up to its limit (413 over it) and hand it on; None if refused."""
        if (method, rpath) in STREAMED_PUBLIC:
            from vision import MAX_UPLOAD_BYTES

            length = _headers(scope).get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_UPLOAD_BYTES):
                await self._deny(scope, receive, send, 413, "请求体过大", False)
                return None
            return receive
        field = PUBLIC_BODY_LIMITS.get((method, rpath), "max_ask_body")
        access = getattr(getattr(getattr(fastapi_app, "state", None), "container", None), "settings", None)
        limit = getattr(access.access, field) if access is not None else 16 * 1024
        length = _headers(scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._deny(scope, receive, send, 413, f"请求体过大（上限 {limit // 1024} KB）", False)
            return None
        try:
            body = await _read_body(receive, limit)
        except _TooLarge:
            await self._deny(scope, receive, send, 413, f"请求体过大（上限 {limit // 1024} KB）", False)
            return None
        except _TooSlow:
            await self._deny(scope, receive, send, 408, "请求体发送超时", False)
            return None
        return _replay(body, receive)

    async def _query_merchant(self, scope, principal: Principal, deny) -> bool:
        """``?merchant=`` must be the caller's; when absent it is set to the caller's."""
        from urllib.parse import parse_qsl, urlencode

        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in pairs if k == "merchant"]
        if any(v != principal.merchant for v in given):
            await deny(403, "无权访问其他商家的数据")
            return False
        if not given:
            pairs.append(("merchant", principal.merchant or ""))
            scope["query_string"] = urlencode(pairs).encode("latin-1")
        return True

    # --- authentication ------------------------------------------------------------------------
    def _authenticate(self, console, scope) -> Principal | None:
        headers = _headers(scope)
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            raw = auth[7:].strip()
            admin = console.config.admin_token.get_secret_value()
            if admin and len(admin) >= 24 and hmac.compare_digest(raw.encode(), admin.encode()):
                return Principal("admin", None, "owner", "admin")
            return console.accounts.token_principal(raw)
        sid = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
        return console.accounts.session_principal(sid) if sid else None

    # --- responses -----------------------------------------------------------------------------
    def _with_headers(self, send, path: str):
        console_path = path.startswith("/console")

        async def wrapped(msg):
            if msg["type"] == "http.response.start":
                hs = list(msg.get("headers", []))
                names = {k.lower() for k, _ in hs}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
                if console_path:
                    extra += [(b"x-frame-options", b"DENY"), (b"content-security-policy", CSP.encode())]
                    if not path.startswith("/console/static"):
                        extra.append((b"cache-control", b"no-store"))
                hs += [(k, v) for k, v in extra if k not in names]
                msg = {**msg, "headers": hs}
            await send(msg)

        return wrapped

    async def _deny(self, scope, receive, send, status: int, detail: str, page: bool) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:100]})
            return
        if page:
            from console.pages import error_page

            body = error_page(status, detail).encode()
            ctype = b"text/html; charset=utf-8"
        else:
            body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
            ctype = b"application/json"
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="liveroom"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _redirect(self, send, location: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


# --- helpers ---------------------------------------------------------------------------------------
def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _client_ip(scope) -> str:
    c = scope.get("client")
    return c[0] if c else ""


def _same_origin(origin: str, scope, headers: dict[str, str]) -> bool:
    try:
        o = urlsplit(origin)
    except ValueError:
        return False
    host = headers.get("host", "")
    return bool(o.netloc) and o.netloc.lower() == host.lower()


BODY_READ_TIMEOUT_S = 15.0  # a client trickling its body byte by byte is cut off (408)


class _TooSlow(Exception):
    pass


async def _read_body(receive, limit: int, timeout_s: float | None = None) -> bytes:
    chunks, size = [], 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (BODY_READ_TIMEOUT_S if timeout_s is None else timeout_s)
    while True:
        try:
            msg = await asyncio.wait_for(receive(), max(0.001, deadline - loop.time()))
        except TimeoutError:
            raise _TooSlow() from None
        if msg["type"] != "http.request":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        chunks.append(chunk)
        if not msg.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def recv():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return recv


class _Unparsable(Exception):
    pass


_NOTHING = object()


def is_json_media_type(ctype: str) -> bool:
    """``application/json`` or ``application/*+json``, compared case-insensitively, parameters ignored
    (``Application/JSON; charset=UTF-8`` is JSON — the way FastAPI itself reads it)."""
    media = ctype.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _json_body(body: bytes) -> Any:
    """The parsed body (``_NOTHING`` for an empty one); ``_Unparsable`` if it is not JSON (including
    JSON nested too deep to parse)."""
    if not body.strip():
        return _NOTHING
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _Unparsable() from None


def _body_merchant_of(data: Any) -> str | None:
    if isinstance(data, dict) and "merchant" in data and data["merchant"] is not None:
        return str(data["merchant"])
    return None


def _with_body_merchant_of(data: Any, body: bytes, merchant: str | None) -> bytes:
    if not isinstance(data, dict):
        return body
    data["merchant"] = merchant
    return json.dumps(data, ensure_ascii=False).encode()  # a new object: the caller swaps the body


def _json_or_text(b: bytes) -> Any:
    if not b:
        return None
    try:
        return json.loads(b)
    except (ValueError, UnicodeDecodeError):
        return b.decode("utf-8", "replace")


def install_guard(app) -> None:
    """Add the guard to ``app`` once (idempotent)."""
    if not any(getattr(m, "cls", None) is Guard for m in app.user_middleware):
        app.add_middleware(Guard)
