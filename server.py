"""LiveRoom HTTP/WebSocket server (FastAPI).

Transport only: it validates frames, hands ``ViewerMessage``s to the agent from the app's container
(dependency injection), and streams answers back. Protocol: docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field

from agent.bus import AnsweredEvent
from agent.guardrails import AI_LABEL
from agent.messages import AgentAnswer, AnswerDelta, ViewerMessage
from core import wire
from core.errors import LiveRoomError
from core.settings import Settings
from knowledge.store import KBError, UnknownMerchant
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
    return JSONResponse({"error": exc.to_dict(), "detail": exc.message}, status_code=exc.http_status)


def install_error_handler(app: FastAPI) -> None:
    """The one place a deliberate error becomes an HTTP answer: its stable code and status."""
    app.add_exception_handler(LiveRoomError, _liveroom_error)


def create_app(container: Container | None = None, start_llm: bool | None = None) -> FastAPI:
    settings = container.settings if container else Settings()
    autostart = settings.llm_autostart if start_llm is None else start_llm

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        c = container or Container(settings)
        app.state.container = c
        app.state.metrics = Metrics()
        unsubscribe = c.answer_bus.subscribe(app.state.metrics.on_answer)
        app.state.llm_task = None
        await asyncio.to_thread(_preload, c)
        from console.service import get_console

        await asyncio.to_thread(get_console, app)  # its live answer log hears answers from the first one
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
    return app


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
        c.kb.snapshot(m)
    c.embedder.encode(["预热"])


def _optional_routers() -> list:
    from audience.api import router as audience_router
    from console.api import router as console_router
    from copywriting.api import router as copy_router
    from host.api import router as host_router
    from voice.api import router as voice_router

    return [audience_router, host_router, voice_router, copy_router, console_router]


def get_container(request: Request) -> Container:
    return request.app.state.container


class AskRequest(BaseModel):
    merchant: str | None = Field(default=None, description="defaults to LIVEROOM_DEFAULT_MERCHANT")
    viewer_id: str = Field(default="anonymous", min_length=1, max_length=64)
    text: str = Field(default="", max_length=5000)
    image_id: str | None = Field(default=None, max_length=64)
    lang: Literal["zh", "en"] | None = None
    context_sku: str | None = Field(default=None, max_length=64)


class WsAsk(AskRequest):
    type: Literal["ask"]
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], max_length=64)


def _message(c: Container, room_id: str, req: AskRequest, channel: str) -> ViewerMessage:
    return ViewerMessage(
        merchant=req.merchant or c.settings.default_merchant,
        room_id=room_id,
        viewer_id=req.viewer_id,
        text=req.text,
        image_id=req.image_id,
        lang=req.lang,
        context_sku=req.context_sku,
        channel=channel,
    )


def _routes(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz(c: Container = Depends(get_container)) -> dict[str, Any]:
        return {"status": "ok", "llm": c.llm is not None, "merchants": c.kb.merchants()}

    @app.get("/metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/api/rooms/{room_id}/ask", response_model=AgentAnswer)
    async def ask(
        room_id: str, req: AskRequest, request: Request, c: Container = Depends(get_container)
    ) -> AgentAnswer:
        try:
            ans = await c.agent.answer(_message(c, room_id, req, "http"))
        except UnknownMerchant as e:
            raise HTTPException(404, str(e)) from e
        except KBError as e:
            raise HTTPException(400, str(e)) from e
        return ans

    @app.post("/api/rooms/{room_id}/images")
    async def upload_image(
        room_id: str,
        request: Request,
        merchant: str | None = None,
        viewer_id: str = "anonymous",
        text: str = "",
        c: Container = Depends(get_container),
    ) -> dict[str, Any]:
        """Upload a viewer's picture (raw JPEG/PNG/WebP body). Returns its ``image_id`` (pass it with
        the question) and the offline analysis."""
        from vision import MAX_UPLOAD_BYTES, ImageRejected

        declared = int(request.headers.get("content-length") or 0)
        if declared > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"image larger than {MAX_UPLOAD_BYTES // (1 << 20)} MiB")
        body = bytearray()
        async for chunk in request.stream():  # count what arrives, whatever the header claimed
            body += chunk
            if len(body) > MAX_UPLOAD_BYTES:
                raise HTTPException(413, f"image larger than {MAX_UPLOAD_BYTES // (1 << 20)} MiB")
        try:
            a = await asyncio.to_thread(
                c.vision.ingest, merchant or c.settings.default_merchant, room_id, bytes(body), text[:200], viewer_id
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

    @app.websocket("/ws/rooms/{room_id}")
    async def room_socket(ws: WebSocket, room_id: str) -> None:
        await _serve_socket(ws, room_id)

    _openai_routes(app)


async def _serve_socket(ws: WebSocket, room_id: str) -> None:
    c: Container = ws.app.state.container
    metrics: Metrics = ws.app.state.metrics
    merchant = ws.query_params.get("merchant") or c.settings.default_merchant
    await ws.accept()
    send_lock = asyncio.Lock()
    tasks: set[asyncio.Task] = set()
    room_frames = {"ping": None, "ask": WsAsk}  # this socket's frames, decoded by core.wire

    async def send(obj: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_text(json.dumps(obj, ensure_ascii=False))

    async def error(code: str, message: str, req_id: str | None = None) -> None:
        metrics.ws_errors.labels(code).inc()
        await send(wire.error_frame(code, message, id=req_id))

    async def run(req: WsAsk) -> None:
        try:
            msg = _message(c, room_id, req, "text").model_copy(update={"merchant": req.merchant or merchant})
            async for ev in c.agent.stream(msg):
                if isinstance(ev, AnswerDelta):
                    await send({"type": "answer.delta", "id": req.id, "index": ev.index, "text": ev.text})
                else:
                    metrics.observe(ev)
                    await send({"type": "answer.done", "id": req.id, **ev.model_dump()})
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
                "room_id": room_id,
                "merchant": merchant,
                "kb_version": version,
                "label": AI_LABEL,
                "max_frame_bytes": MAX_FRAME_BYTES,
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
            if len(tasks) >= MAX_INFLIGHT_PER_SOCKET:
                await error("busy", "too many questions in flight on this connection", req.id)
                continue
            t = asyncio.create_task(run(req))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
    except WebSocketDisconnect:
        pass
    finally:
        for t in tasks:
            t.cancel()


# --- the agent as an OpenAI-compatible model --------------------------------------------------
class ChatMessage(BaseModel):
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model: str = "liveroom"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = Field(default=None, max_length=64)


def _openai_routes(app: FastAPI) -> None:
    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "liveroom", "object": "model", "owned_by": "liveroom"}]}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request, c: Container = Depends(get_container)):
        # Only the last user message is the viewer's question; client-sent system messages are ignored
        # (the agent's own instructions cannot be replaced through this endpoint).
        user_msgs = [m for m in req.messages if m.role == "user"]
        if not user_msgs:
            raise HTTPException(400, "messages must contain a user message")
        content = user_msgs[-1].content
        text = (
            content
            if isinstance(content, str)
            else " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")
        )
        merchant = request.headers.get("x-liveroom-merchant") or c.settings.default_merchant
        msg = ViewerMessage(
            merchant=merchant, room_id="openai", viewer_id=req.user or "openai-client", text=text[:5000], channel="v1"
        )
        cid = "chatcmpl-" + uuid.uuid4().hex[:20]
        created = int(time.time())
        if not req.stream:
            try:
                ans = await c.agent.answer(msg)
            except UnknownMerchant as e:
                raise HTTPException(404, str(e)) from e
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": "liveroom",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": f"{ans.answer}【{AI_LABEL}】"},
                        }
                    ],
                    "liveroom": ans.model_dump(include={"citations", "refused", "path", "tool_calls"}),
                }
            )

        async def events() -> AsyncIterator[str]:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
                return (
                    "data: "
                    + json.dumps(
                        {
                            "id": cid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": "liveroom",
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        },
                        ensure_ascii=False,
                    )
                    + "\n\n"
                )

            yield chunk({"role": "assistant"})
            async for ev in c.agent.stream(msg):
                if isinstance(ev, AnswerDelta):
                    yield chunk({"content": ev.text})
            yield chunk({"content": f"【{AI_LABEL}】"})
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
