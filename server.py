"""LiveRoom HTTP/WebSocket server (FastAPI).

Transport only: it validates frames, hands ``ViewerMessage``s to the agent from the app's container
(dependency injection), and streams answers back. Protocol: docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field

from agent.bus import AnsweredEvent
from agent.guardrails import AI_LABEL
from agent.messages import AgentAnswer, AnswerDelta, ViewerMessage
from audience.access import RateLimited, Viewer, WrongMerchant, new_anonymous_key
from audience.identity import InvalidToken
from core import wire
from core.abuse import client_ip
from core.errors import LiveRoomError
from core.settings import Settings
from knowledge.store import KBError, UnknownMerchant
from liveroom import openai_compat
from liveroom.cache_metrics import CacheCollector
from liveroom.container import Container

log = logging.getLogger("liveroom.server")

MAX_FRAME_BYTES = wire.MAX_TEXT_FRAME_BYTES  # a danmaku frame is tiny; anything bigger is refused with an error frame
MAX_INFLIGHT_PER_SOCKET = 8


class Metrics:
    """The app's Prometheus metrics. Answers are counted from the container's answer bus (every channel:
    ws, http, voice, v1, host …), not by the routes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter(
            "liveroom_answers_total",
            "Answers by channel and path",
            ["channel", "path", "refused"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "liveroom_answer_first_token_seconds",
            "Time to first answer sentence",
            ["channel", "path"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16),
        )
        self.ws_errors = Counter("liveroom_ws_errors_total", "Error frames sent", ["code"], registry=self.registry)

    def on_answer(self, ev: AnsweredEvent) -> None:
        """Answer-bus subscriber."""
        self.answers.labels(ev.channel, ev.path, str(ev.refused).lower()).inc()
        self.latency.labels(ev.channel, ev.path).observe((ev.first_token_ms or ev.latency_ms) / 1000)

    def observe(self, ans: AgentAnswer) -> None:
        """No-op: answers are counted by ``on_answer`` from the answer bus (a route still calling this
        would otherwise count its answers twice)."""


async def _liveroom_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LiveRoomError)
    headers = {}
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        headers["Retry-After"] = str(retry)
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="liveroom"'
    return JSONResponse({"error": exc.to_dict(), "detail": exc.message}, status_code=exc.http_status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 without echoing the input back (a 60 MB body must not come back as a 60 MB error)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(x)[:64] for x in e.get("loc", ())][:8], "msg": str(e.get("msg", ""))[:200], "type": e.get("type")}
        for e in exc.errors()[:10]
    ]
    return JSONResponse(
        {"error": {"code": "invalid_request", "message": "request does not match the schema"}, "detail": errors},
        status_code=422,
    )


async def _too_deep(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "bad_request", "message": "JSON nested too deep"}, "detail": "JSON nested too deep"},
        status_code=400,
    )


def install_error_handler(app: FastAPI) -> None:
    """The one place a deliberate error becomes an HTTP answer: its stable code and status."""
    app.add_exception_handler(LiveRoomError, _liveroom_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RecursionError, _too_deep)


def create_app(container: Container | None = None, start_llm: bool | None = None) -> FastAPI:
    settings = container.settings if container else Settings()
    autostart = settings.llm_autostart if start_llm is None else start_llm

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        c = container or Container(settings)
        app.state.container = c
        app.state.metrics = Metrics()
        unsubscribe = c.answer_bus.subscribe(app.state.metrics.on_answer)
        app.state.metrics.registry.register(CacheCollector(c))
        app.state.llm_task = None
        await asyncio.to_thread(_preload, c)
        from console.service import get_console

        await asyncio.to_thread(get_console, app)  # its live answer log hears answers from the first one
        if container is None:  # the served app (make run): the console URL, and the first-run setup code
            from console.first_run import announce

            await asyncio.to_thread(announce, app)
        # What start-up loaded (KB, lexicon, models: ~750k objects) is never garbage: out of the collector's
        # reach, a full collection no longer stops the event loop for ~0.4 s (every viewer's answer waits).
        gc.freeze()
        if autostart:
            # The fast path answers from the first second; the LLM path joins when the model is up.
            app.state.llm_task = asyncio.create_task(_start_llm(c), name="llm-start")
        try:
            yield
        finally:
            unsubscribe()
            if getattr(app.state, "console", None) is not None:
                app.state.console.close()  # stops listening to the container's answer bus
                app.state.console = None
            if app.state.llm_task:
                app.state.llm_task.cancel()
            await c.aclose()

    app = FastAPI(
        title="LiveRoom",
        version="0.1.0",
        lifespan=lifespan,
        description="AI agent for e-commerce live rooms: grounded answers, tools, guardrails.",
    )
    _routes(app)
    install_error_handler(app)

    for router in _optional_routers():
        app.include_router(router)
    from console.guard import install_guard

    install_guard(app)  # authentication + tenant isolation for every route, in one place (docs/console.md)
    app.add_middleware(_WorkerHeader)
    return app


class _WorkerHeader:
    """``X-LiveRoom-Worker: <pid>`` on every HTTP response: with several workers, which one answered
    (for operators reading logs, and the multi-worker benchmark's checks)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.header = (b"x-liveroom-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_worker(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        await self.app(scope, receive, send_with_worker)


async def _start_llm(c: Container) -> None:
    try:
        await c.start_llm()
        await c.agent.warm_up(c.settings.default_merchant)
        log.info("LLM ready")
    except asyncio.CancelledError:
        raise
    except Exception:  # the app keeps serving on the fast path
        log.exception("LLM backend failed to start; serving fast-path answers only")


def _preload(c: Container) -> None:
    """Load every merchant's active KB and warm the encoder so the first viewer doesn't pay for it."""
    for m in c.kb.merchants():
        c.agent.prepare_sync(m)  # the KB, its catalog lexicon, the word segmenter and the intent model
    c.embedder.encode(["预热"])


def _optional_routers() -> list:
    from audience.api import router as audience_router
    from connectors.api import router as connectors_router
    from console.api import router as console_router
    from copywriting.api import router as copy_router
    from host.api import router as host_router
    from voice.api import router as voice_router

    return [audience_router, host_router, voice_router, copy_router, connectors_router, console_router]


def get_container(request: Request) -> Container:
    return request.app.state.container


ANON_COOKIE = "lr_viewer"  # an anonymous viewer's session: a random key the server chose
_ANON_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class AskRequest(BaseModel):
    merchant: str | None = Field(
        default=None, max_length=64, description="optional: must be the room's merchant (403 otherwise)"
    )
    viewer_token: str | None = Field(
        default=None, max_length=2048, description="signed viewer token (docs/integration.md); none = anonymous"
    )
    viewer_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="ignored: the viewer is who the token says"
    )
    text: str = Field(default="", max_length=5000)
    image_id: str | None = Field(default=None, max_length=64)
    lang: Literal["zh", "en"] | None = None
    context_sku: str | None = Field(default=None, max_length=64)


class WsAsk(AskRequest):
    type: Literal["ask"]
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], max_length=64)


def _message(c: Container, room_id: str, req: AskRequest, channel: str, viewer: Viewer) -> ViewerMessage:
    return ViewerMessage(
        merchant=viewer.merchant,
        room_id=room_id,
        viewer_id=viewer.viewer_id,
        verified=viewer.verified,
        text=req.text,
        image_id=req.image_id,
        lang=req.lang,
        context_sku=req.context_sku,
        channel=channel,
    )


def public_tool_calls(ans: AgentAnswer, viewer: Viewer) -> list[dict[str, Any]]:
    """What a viewer may see of the tools behind an answer: which ran, not what they returned — the
    profile lookup's fields never leave; a coupon's details only go to its verified owner."""
    out: list[dict[str, Any]] = []
    for tc in ans.tool_calls:
        call: dict[str, Any] = {"name": tc.name, "ok": tc.ok, "by": tc.by}
        if tc.name == "issue_coupon" and isinstance(tc.result, dict):
            r = tc.result
            keep = ("ok", "code", "message", "coupon_id", "offer") if viewer.verified else ("ok", "code", "message")
            call["result"] = {k: r.get(k) for k in keep}
        out.append(call)
    return out


def public_answer(ans: AgentAnswer, viewer: Viewer) -> dict[str, Any]:
    """An answer as it may leave on a public channel (HTTP ask, the room socket, /v1)."""
    d = ans.model_dump(exclude={"tool_calls"})
    d["tool_calls"] = public_tool_calls(ans, viewer)
    d["viewer"] = viewer.public()
    return d


def _peer_ip(c: Container, peer: Any, headers: Any) -> str:
    return client_ip(peer[0] if peer else "", headers, c.settings.access.proxies())


def _anon_key(raw: str | None) -> str | None:
    return raw if raw and _ANON_KEY_RE.match(raw) else None


def _routes(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz(c: Container = Depends(get_container)) -> dict[str, Any]:
        return {"status": "ok", "llm": c.llm is not None, "merchants": c.kb.merchants(), "worker": os.getpid()}

    @app.get("/metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/api/rooms/{room_id}/ask")
    async def ask(
        room_id: str,
        req: AskRequest,
        request: Request,
        merchant: str | None = None,
        c: Container = Depends(get_container),
    ) -> JSONResponse:
        """Ask in a room. The merchant is the room's; the viewer is verified by ``viewer_token`` (body, or
        the ``X-Viewer-Token`` header) or else anonymous (a server-assigned id in the ``lr_viewer`` cookie)."""
        access = c.access
        named = req.merchant or merchant
        room = await asyncio.to_thread(access.room, room_id, named_merchant=named, origin=request.headers.get("origin"))
        access.limit("questions", ip=_peer_ip(c, request.client, request.headers), room_id=room.room_id)
        token = req.viewer_token or request.headers.get("x-viewer-token")
        anon = _anon_key(request.cookies.get(ANON_COOKIE))
        fresh = None
        if anon is None:  # the session cookie: an anonymous viewer's id, and the device for verified ones
            anon = fresh = new_anonymous_key()
        viewer = await asyncio.to_thread(access.viewer, room, token, anon, anon)
        try:
            ans = await c.agent.answer(_message(c, room.room_id, req, "http", viewer))
        except UnknownMerchant as e:
            raise HTTPException(404, str(e)) from e
        except KBError as e:
            raise HTTPException(400, str(e)) from e
        resp = JSONResponse(public_answer(ans, viewer))
        if fresh:
            resp.set_cookie(ANON_COOKIE, fresh, max_age=30 * 86400, httponly=True, samesite="lax")
        return resp

    @app.post("/api/rooms/{room_id}/images")
    async def upload_image(
        room_id: str,
        request: Request,
        merchant: str | None = None,
        token: str | None = None,
        text: str = "",
        c: Container = Depends(get_container),
    ) -> dict[str, Any]:
        """Upload a viewer's picture (raw JPEG/PNG/WebP body) to a registered, open room. Returns its
        ``image_id`` (pass it with the question) and the offline analysis."""
        from vision import MAX_UPLOAD_BYTES, ImageRejected

        access = c.access
        room = await asyncio.to_thread(
            access.room, room_id, named_merchant=merchant, origin=request.headers.get("origin")
        )
        access.limit("uploads", ip=_peer_ip(c, request.client, request.headers), room_id=room.room_id)
        viewer = await asyncio.to_thread(
            access.viewer,
            room,
            token or request.headers.get("x-viewer-token"),
            _anon_key(request.cookies.get(ANON_COOKIE)),
        )
        declared = request.headers.get("content-length") or "0"
        if not declared.isdigit() or int(declared) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"image larger than {MAX_UPLOAD_BYTES // (1 << 20)} MiB")
        body = bytearray()
        async for chunk in request.stream():  # count what arrives, whatever the header claimed
            body += chunk
            if len(body) > MAX_UPLOAD_BYTES:
                raise HTTPException(413, f"image larger than {MAX_UPLOAD_BYTES // (1 << 20)} MiB")
        try:
            a = await asyncio.to_thread(
                c.vision.ingest, room.merchant, room.room_id, bytes(body), text[:200], viewer.viewer_id
            )
        except ImageRejected as e:
            return JSONResponse(
                status_code={"unsupported_format": 415, "too_large": 413}.get(e.code, 422),
                content={"detail": e.to_dict()},
            )
        except UnknownMerchant as e:
            raise HTTPException(404, str(e)) from e
        return {
            "image_id": a.image_id,
            "best_sku": a.best_sku,
            "best_name": a.best_name,
            "not_ours": a.not_ours,
            "variant": a.variant,
            "ocr_text": a.ocr_text,
            "ephemeral": a.ephemeral,
            "matches": [m.model_dump(include={"sku", "score", "method"}) for m in a.matches[:3]],
        }

    @app.get("/api/rooms/{room_id}/products/{sku}")
    async def product_card(
        room_id: str, sku: str, request: Request, merchant: str | None = None, c: Container = Depends(get_container)
    ) -> dict[str, Any]:
        """The viewer page's product card: name, live price and stock of one product of the room's merchant
        (the one an answer cited), from the published catalog — what the merchant already shows viewers."""
        room = await asyncio.to_thread(
            c.access.room, room_id, named_merchant=merchant, origin=request.headers.get("origin")
        )
        try:
            p = c.kb.snapshot(room.merchant).product(sku)
        except KBError as e:
            raise HTTPException(404, str(e)) from e
        if p is None:
            raise HTTPException(404, "no such product in this room")
        return {
            "sku": p.sku,
            "name": p.name,
            "price": p.price,
            "list_price": p.list_price,
            "stock": p.stock,
            "variants": [v.model_dump(include={"name", "price", "stock"}) for v in p.variant_list()][:8],
        }

    @app.websocket("/ws/rooms/{room_id}")
    async def room_socket(ws: WebSocket, room_id: str) -> None:
        await _serve_socket(ws, room_id)

    _openai_routes(app)


async def _serve_socket(ws: WebSocket, room_id: str) -> None:
    c: Container = ws.app.state.container
    metrics: Metrics = ws.app.state.metrics
    access = c.access
    q = ws.query_params
    ip = _peer_ip(c, ws.client, ws.headers)
    try:
        room = await asyncio.to_thread(
            access.room, room_id, named_merchant=q.get("merchant"), origin=ws.headers.get("origin")
        )
        access.limit("sockets", ip=ip)
        # The connection's viewer: ?token= (verified), else anonymous — bound to the session cookie when
        # the browser sends one, else to this connection alone.
        device = _anon_key(ws.cookies.get(ANON_COOKIE)) or new_anonymous_key()
        conn_viewer = await asyncio.to_thread(access.viewer, room, q.get("token"), device, device)
    except LiveRoomError as e:
        await ws.accept()
        metrics.ws_errors.labels(e.code).inc()
        extra = e.detail if isinstance(e.detail, dict) else {}
        await ws.send_text(json.dumps(wire.error_frame(e.code, e.message, **extra), ensure_ascii=False))
        await ws.close(code=1013 if isinstance(e, RateLimited) else 1008)
        return
    if not access.open_sockets.acquire(ip):
        await ws.accept()
        metrics.ws_errors.labels("rate_limited").inc()
        frame = wire.error_frame("rate_limited", "too many open connections from this address", retry_after=10)
        await ws.send_text(json.dumps(frame, ensure_ascii=False))
        await ws.close(code=1013)
        return
    try:
        await _serve_room_socket(ws, c, metrics, room, conn_viewer, ip, device)
    finally:
        access.open_sockets.release(ip)


async def _serve_room_socket(
    ws: WebSocket, c: Container, metrics: Metrics, room: Any, conn_viewer: Viewer, ip: str, device: str
) -> None:
    access = c.access
    merchant = room.merchant
    await ws.accept()
    send_lock = asyncio.Lock()
    tasks: set[asyncio.Task] = set()
    flushes: set[asyncio.Task] = set()  # held deltas on their way out (not questions in flight)
    room_frames = {"ping": None, "ask": WsAsk}  # this socket's frames, decoded by core.wire

    async def send(obj: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_text(json.dumps(obj, ensure_ascii=False))

    async def error(code: str, message: str, req_id: str | None = None, **extra: Any) -> None:
        metrics.ws_errors.labels(code).inc()
        await send(wire.error_frame(code, message, id=req_id, **extra))

    async def send_held(held: list[dict[str, Any]]) -> None:
        async with send_lock:
            for obj in held:
                await ws.send_text(json.dumps(obj, ensure_ascii=False))

    async def run(req: WsAsk, viewer: Viewer, ticket: float) -> None:
        # A delta is held until the answer's stream next waits; a `done` reached first (a composed or
        # replayed answer is one delta and its done in the same step) carries the text alone — one socket
        # frame per answer instead of two, the same moment for the client.
        held: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()

        def release() -> None:
            if held:
                flush = asyncio.create_task(send_held(held[:]))  # queued on send_lock before anything later
                flushes.add(flush)
                flush.add_done_callback(flushes.discard)
                held.clear()

        try:
            if c.admission.waited_too_long(ticket):  # the loop is behind: a quick busy drains the backlog
                await error("busy", "too many questions right now; please retry", req.id, retry_after=1)
                return
            async for ev in c.agent.stream(_message(c, room.room_id, req, "ws", viewer)):
                if isinstance(ev, AnswerDelta):
                    held.append({"type": "answer.delta", "id": req.id, "index": ev.index, "text": ev.text})
                    loop.call_soon(release)  # runs only once this task yields to the loop
                else:
                    held.clear()  # the done has the whole text
                    metrics.observe(ev)
                    await send({"type": "answer.done", "id": req.id, **public_answer(ev, viewer)})
        except UnknownMerchant as e:
            await error("unknown_merchant", str(e), req.id)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client left mid-answer
        except Exception:  # one failed answer must not take the room down
            log.exception("answer failed")
            await error("internal", "answer failed; please retry", req.id)

    try:
        try:
            version = c.kb.active_version(merchant)
        except KBError as e:
            await error("bad_merchant", str(e))
            await ws.close(code=1008)
            return
        await send(
            {
                "type": "ready",
                "room_id": room.room_id,
                "merchant": merchant,
                "kb_version": version,
                "label": AI_LABEL,
                "max_frame_bytes": MAX_FRAME_BYTES,
                "viewer": conn_viewer.public(),
            }
        )
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            try:
                kind, req = wire.decode_text(frame.get("text"), room_frames, max_bytes=MAX_FRAME_BYTES)
            except wire.WireError as e:
                await error(e.code, e.message, e.req_id)
                continue
            if kind == "ping":
                await send({"type": "pong", "t": time.time()})
                continue
            if req.merchant and req.merchant != merchant:
                await error("wrong_merchant", "this room belongs to another merchant", req.id)
                continue
            try:
                access.limit("questions", ip=ip, room_id=room.room_id)
                viewer = (
                    await asyncio.to_thread(access.viewer, room, req.viewer_token, None, device)
                    if req.viewer_token
                    else conn_viewer
                )
            except RateLimited as e:
                await error(e.code, e.message, req.id, retry_after=e.retry_after)
                continue
            except InvalidToken as e:
                await error(e.code, e.message, req.id, reason=e.reason)
                continue
            if len(tasks) >= MAX_INFLIGHT_PER_SOCKET:
                await error("busy", "too many questions in flight on this connection", req.id)
                continue
            if (ticket := c.admission.enter()) is None:
                await error("busy", "too many questions right now; please retry", req.id, retry_after=1)
                continue
            t = asyncio.create_task(run(req, viewer, ticket))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            t.add_done_callback(lambda _: c.admission.leave())  # also when cancelled before it ran
    except WebSocketDisconnect:
        pass
    finally:
        for t in [*tasks, *flushes]:
            t.cancel()


# --- the agent as an OpenAI-compatible model --------------------------------------------------
class ChatMessage(BaseModel):
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model: str = "liveroom"
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    user: str | None = Field(default=None, max_length=64)  # the integration's own id for the end user
    viewer_token: str | None = Field(default=None, max_length=2048)  # a signed viewer token (verified)
    stream_options: dict[str, Any] | None = None  # {"include_usage": true}: a last chunk with usage


def _openai_routes(app: FastAPI) -> None:
    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return openai_compat.model_list()

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request, c: Container = Depends(get_container)):
        """The agent as an OpenAI-compatible model. Needs a merchant API token of role ``agent``
        (``Authorization: Bearer lrk_…``), which fixes the merchant. The end user is anonymous unless the
        request carries their viewer token (``viewer_token`` or ``X-Viewer-Token``)."""
        principal = request.scope.get("state", {}).get("principal")
        if principal is None or not principal.merchant:  # the guard lets nothing else through
            raise HTTPException(401, "an API token of role agent is required")
        if req.model not in openai_compat.MODELS:
            return openai_compat.unknown_model(req.model)
        merchant = principal.merchant
        named = request.headers.get("x-liveroom-merchant")
        if named and named != merchant:
            raise WrongMerchant("this API token belongs to another merchant")
        room_id = request.headers.get("x-liveroom-room") or "openai"
        if room_id != "openai":
            await asyncio.to_thread(c.access.room, room_id, named_merchant=merchant)
        # Only the last user message is the viewer's question; client-sent system messages are ignored
        # (the agent's own instructions cannot be replaced through this endpoint).
        user_msgs = [m for m in req.messages if m.role == "user"]
        if not user_msgs:
            raise HTTPException(400, "messages must contain a user message")
        content = user_msgs[-1].content
        text = (
            content
            if isinstance(content, str)
            else " ".join(
                str(p.get("text", "")) for p in content or [] if isinstance(p, dict) and p.get("type") == "text"
            )
        )
        try:
            if c.kb.active_version(merchant) is None:
                raise HTTPException(404, f"merchant {merchant!r} has no knowledge base")
        except KBError as e:
            raise HTTPException(404, str(e)) from e
        token = req.viewer_token or request.headers.get("x-viewer-token")
        anon_key = f"v1:{principal.token_id}:{req.user}" if req.user else new_anonymous_key()
        viewer = await asyncio.to_thread(c.access.integration_viewer, merchant, room_id, token, anon_key)
        msg = ViewerMessage(
            merchant=merchant,
            room_id=room_id,
            viewer_id=viewer.viewer_id,
            verified=viewer.verified,
            text=text[:5000],
            channel="v1",
        )
        cid = "chatcmpl-" + uuid.uuid4().hex[:20]
        created = int(time.time())
        if not req.stream:
            try:
                ans = await c.agent.answer(msg)
            except UnknownMerchant as e:
                raise HTTPException(404, str(e)) from e
            pub = public_answer(ans, viewer)
            reply = f"{ans.answer}【{AI_LABEL}】"
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": req.model,
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}
                    ],
                    "usage": openai_compat.usage(msg.text, reply),
                    "liveroom": {k: pub[k] for k in ("citations", "refused", "path", "tool_calls", "viewer")},
                }
            )

        include_usage = bool((req.stream_options or {}).get("include_usage"))

        async def events() -> AsyncIterator[str]:
            def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
                body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model}
                choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
                return "data: " + json.dumps(body | {"choices": choices} | extra, ensure_ascii=False) + "\n\n"

            said: list[str] = []
            yield chunk({"role": "assistant"})
            async for ev in c.agent.stream(msg):
                if isinstance(ev, AnswerDelta):
                    said.append(ev.text)
                    yield chunk({"content": ev.text})
            said.append(f"【{AI_LABEL}】")
            yield chunk({"content": said[-1]})
            yield chunk({}, "stop")
            if include_usage:  # OpenAI's shape: one more chunk, empty choices, the usage
                yield chunk(None, usage=openai_compat.usage(msg.text, "".join(said)))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
