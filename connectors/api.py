"""HTTP/WebSocket routes of the connectors (a FastAPI router the server includes).

Platform ingress (public in the guard: each request proves itself with its signature):

    POST /connectors/douyin/{connector_id}/push     Douyin live data push (x-signature, x-timestamp, …)
    POST /connectors/webhook/{connector_id}         signed webhook (X-LiveRoom-Timestamp / -Signature)

The merchant's side (console session or API token; the guard scopes {merchant} and {room_id}):

    GET  /api/merchants/{merchant}/connectors                          connectors with their health
    POST /api/merchants/{merchant}/connectors                          create (the secret is shown once)
    POST /api/merchants/{merchant}/connectors/{connector_id}/rotate    new secret (shown once)
    GET  /api/merchants/{merchant}/connectors/{connector_id}/dead-letters
    POST /api/merchants/{merchant}/connectors/{connector_id}/dead-letters/{dl_id}/replay
    POST /api/merchants/{merchant}/connectors/{connector_id}/tasks/{action}   Douyin push task start|stop|status
    POST /api/merchants/{merchant}/connectors/{connector_id}/requery   Douyin: re-query lost gifts / fan-club
    POST /api/merchants/{merchant}/rooms/{room_id}/live                {"live": true}: quiet connectors alert
    POST /api/merchants/{merchant}/rooms/{room_id}/overlay-token       {"token", "url"} for OBS
    POST /api/merchants/{merchant}/rooms/{room_id}/overlay/say         {"text"}: the virtual host says a line
    GET|POST /api/merchants/{merchant}/rooms/{room_id}/show            the virtual host's show: start|pause|resume|stop

The OBS overlay (public in the guard; the room-scoped overlay token authorises it):

    GET  /overlay/{room_id}?token=…     the transparent page (…&view=prompter: the human host's teleprompter)
    GET  /overlay/static/{name}
    WS   /ws/overlay/{room_id}?token=…  its feed (connectors/overlay.py)
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from connectors import douyin, overlay, webhook
from connectors.deadletter import DeadLetters
from connectors.events import MalformedEvent
from connectors.hub import ConnectorHub, DryRunSink
from connectors.store import CONNECTOR_ID_RE, ConnectorConfig, ConnectorKind, ConnectorStore, UnknownConnector
from core import wire
from core.errors import LiveRoomError

log = logging.getLogger("liveroom.connectors")
router = APIRouter(tags=["connectors"])
WEB = Path(__file__).resolve().parent.parent / "web"
_STATIC = {"overlay.js": "text/javascript", "overlay.css": "text/css"}
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'",
}


class ConnectorService:
    """The app's connectors: configurations, the hub, dead letters, the overlay feeds, the watchdog."""

    def __init__(self, app: Any):
        from host.api import get_hub

        c = app.state.container
        self.app, self.container = app, c
        root = c.settings.data_dir / "connectors"
        self.store = ConnectorStore(root)
        self.dead = DeadLetters(root / "dead")
        self.feeds = overlay.OverlayFeeds()
        self.host = get_hub(app)
        self.dry_run = DryRunSink()
        # several workers: a retry landing on another worker is still a duplicate (Redis)
        shared_seen = getattr(c, "connector_dedup", None)
        self.hub = ConnectorHub(c.agent, self._host_room, self.dead, sinks=[self.dry_run], shared_seen=shared_seen)
        for cfg in self.store.list():
            self.hub.register(cfg)
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._unsubscribe = c.answer_bus.subscribe(self._on_answer)
        self.hub.event_hooks.append(self._on_event)
        from connectors.onair import OnAir

        self.onair = OnAir(self.feeds)
        self.watchdog = self.loop.create_task(self._watch(), name="connectors-watchdog")

    def _host_room(self, merchant: str, room_id: str) -> Any:
        room = self.host.room(merchant, room_id)
        room.start()
        return room

    # --- overlay feeds ---------------------------------------------------------------------------
    def _publish(self, room_id: str, topic: str, item: dict[str, Any]) -> None:
        if threading.get_ident() == self._loop_thread:
            self.feeds.publish(room_id, topic, item)
        else:  # an answer finished in a worker thread
            self.loop.call_soon_threadsafe(self.feeds.publish, room_id, topic, item)

    def _on_answer(self, ev: Any) -> None:
        if ev.channel == "console":
            return  # the console's previews are not on air
        from agent.guardrails import AI_LABEL

        self._publish(
            ev.room_id,
            "answer",
            {
                "question": ev.question[:200],
                "answer": ev.answer,
                "label": AI_LABEL,
                "channel": ev.channel,
                "at": ev.at,
                "refused": ev.refused,
            },
        )

    def _on_event(self, ev: Any) -> None:
        if ev.kind in ("gift", "follow", "fan_club"):
            self._publish(ev.room_id, "event", {"kind": ev.kind, "nickname": ev.nickname[:16], "count": ev.count})

    # --- connectors -------------------------------------------------------------------------------
    def get(self, connector_id: str, kind: str | None = None, merchant: str | None = None) -> ConnectorConfig:
        rt = self.hub.runtime(connector_id)
        if rt is None or (kind and rt.cfg.kind != kind) or (merchant and rt.cfg.merchant != merchant):
            raise UnknownConnector(f"no connector {connector_id!r}")
        return rt.cfg

    def create(self, cfg: ConnectorConfig) -> str:
        cfg, secret = self.store.create(cfg)
        self.hub.register(cfg)
        return secret

    def rotate(self, connector_id: str) -> str:
        secret = self.store.rotate(connector_id)
        self.hub.register(self.store.get(connector_id))
        return secret

    async def _watch(self) -> None:
        """Every few seconds: a connector whose state changed raises an alert in its room (the console's
        dashboard and the host console show it); nothing goes quiet unnoticed while the show is live."""
        last: dict[str, str] = {}
        while True:
            await asyncio.sleep(2.0)
            try:
                for rt in list(self.hub.connectors.values()):
                    st = rt.health.state()
                    prev = last.get(rt.cfg.connector_id, "connected")
                    last[rt.cfg.connector_id] = st
                    if st != prev and st in ("lagging", "failing"):
                        room = self.host.room(rt.cfg.merchant, rt.cfg.room_id)
                        what = "没有收到弹幕" if st == "lagging" else f"连接异常：{rt.health.last_error[:60]}"
                        room.alerts.alert(
                            "connector_" + st,
                            f"平台连接 {rt.cfg.connector_id}（{rt.cfg.platform or rt.cfg.kind}）{what}",
                            severity="warning",
                            key=f"connector:{rt.cfg.connector_id}:{st}",
                            connector_id=rt.cfg.connector_id,
                        )
            except Exception:
                log.exception("connector watchdog failed")

    def close(self) -> None:
        self._unsubscribe()
        self.watchdog.cancel()


def get_service(app: Any) -> ConnectorService:
    svc = getattr(app.state, "connectors", None)
    if svc is None:
        svc = app.state.connectors = ConnectorService(app)
    return svc


def _error(e: LiveRoomError, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": e.to_dict(), **extra}, status_code=e.http_status)


# --- platform ingress -------------------------------------------------------------------------------


@router.post("/connectors/douyin/{connector_id}/push", include_in_schema=True)
async def douyin_push(connector_id: str, request: Request) -> JSONResponse:
    """The Douyin live data push. Every request's signature and timestamp are checked before its body is
    read; a forged or stale one is refused (401) and logged; an unreadable one is dead-lettered (400)."""
    svc = get_service(request.app)
    try:
        cfg = svc.get(connector_id, "douyin")
    except UnknownConnector as e:
        return _error(e)
    rt = svc.hub.runtime(connector_id)
    assert rt is not None
    body = await request.body()
    headers = {k: v for k, v in request.headers.items() if k.startswith("x-")}
    try:
        signed = douyin.verify_push(request.headers, body, cfg.secret, window_s=cfg.window_s)
    except douyin.BadSignature as e:
        rt.health.rejected += 1
        rt.health.on_failure(f"rejected push: {e.message}")
        log.warning(
            "douyin push to %s rejected: %s (from %s)",
            connector_id,
            e.message,
            request.client.host if request.client else "?",
        )
        return _error(e)
    if cfg.platform_room and signed["x-roomid"] != cfg.platform_room:
        rt.health.on_failure(f"push for room {signed['x-roomid']}, configured {cfg.platform_room}")
        return _error(LiveRoomError("this connector is for another Douyin room", code="wrong_room", http_status=409))
    try:
        events = douyin.parse_push(signed["x-msg-type"], body, roomid=signed["x-roomid"])
    except MalformedEvent as e:
        dl = svc.hub.dead_letter(connector_id, e.message, body, headers)
        return _error(e, dl_id=dl["dl_id"])
    counts = svc.hub.submit(connector_id, events)
    return JSONResponse({"ok": True, **counts})


@router.post("/connectors/webhook/{connector_id}")
async def webhook_in(connector_id: str, request: Request) -> JSONResponse:
    """Signed webhook (connectors/webhook.py): idempotent by msg_id; replays outside the window refused."""
    svc = get_service(request.app)
    try:
        cfg = svc.get(connector_id, "webhook")
    except UnknownConnector as e:
        return _error(e)
    rt = svc.hub.runtime(connector_id)
    assert rt is not None
    body = await request.body()
    try:
        webhook.verify(request.headers, body, cfg.secret, window_s=cfg.window_s)
    except webhook.BadWebhookSignature as e:
        rt.health.rejected += 1
        rt.health.on_failure(f"rejected request: {e.message}")
        log.warning(
            "webhook %s rejected: %s (from %s)", connector_id, e.message, request.client.host if request.client else "?"
        )
        return _error(e)
    try:
        events = webhook.parse_body(body, cfg.platform or "webhook", signed_identity=cfg.trust_identity)
    except MalformedEvent as e:
        headers = {k: v for k, v in request.headers.items() if k.startswith("x-")}
        dl = svc.hub.dead_letter(connector_id, e.message, body, headers)
        return _error(e, dl_id=dl["dl_id"])
    counts = svc.hub.submit(connector_id, events)
    return JSONResponse({"ok": True, **counts})


# --- the merchant's side -----------------------------------------------------------------------------


class ConnectorIn(BaseModel):
    connector_id: str = Field(pattern=CONNECTOR_ID_RE)
    room_id: str = Field(min_length=1, max_length=64)
    kind: ConnectorKind
    platform: str = Field(default="", pattern=r"^[a-z0-9_]{0,32}$")
    platform_room: str = Field(default="", max_length=128)
    app_id: str = Field(default="", max_length=64)
    secret: str = Field(default="", max_length=256, description="Douyin: the app's push secret; webhook: generated")
    access_token: str = Field(default="", max_length=512)
    api_base: str = Field(default="", max_length=256)
    trust_identity: bool = False
    window_s: float = Field(default=300.0, ge=10, le=3600)


@router.get("/api/merchants/{merchant}/connectors")
async def list_connectors(merchant: str, request: Request) -> dict[str, Any]:
    svc = get_service(request.app)
    return {"merchant": merchant, "connectors": svc.hub.health(merchant)}


@router.post("/api/merchants/{merchant}/connectors")
async def create_connector(merchant: str, body: ConnectorIn, request: Request) -> dict[str, Any]:
    svc = get_service(request.app)
    c = request.app.state.container
    room = await asyncio.to_thread(c.rooms.of, merchant, body.room_id)
    if room is None:
        raise HTTPException(404, "直播间不存在")
    cfg = ConnectorConfig(
        merchant=merchant,
        platform=body.platform or (body.kind if body.kind != "webhook" else "webhook"),
        **body.model_dump(exclude={"platform"}),
    )
    secret = await asyncio.to_thread(svc.create, cfg)
    return {"connector": svc.get(cfg.connector_id).public(), "secret": secret}


@router.post("/api/merchants/{merchant}/connectors/{connector_id}/rotate")
async def rotate_secret(merchant: str, connector_id: str, request: Request) -> dict[str, Any]:
    svc = get_service(request.app)
    svc.get(connector_id, merchant=merchant)
    return {"connector_id": connector_id, "secret": await asyncio.to_thread(svc.rotate, connector_id)}


@router.get("/api/merchants/{merchant}/connectors/{connector_id}/dead-letters")
async def dead_letters(merchant: str, connector_id: str, request: Request, limit: int = 100) -> dict[str, Any]:
    svc = get_service(request.app)
    svc.get(connector_id, merchant=merchant)
    items = await asyncio.to_thread(svc.dead.list, connector_id, max(1, min(limit, 500)))
    return {"connector_id": connector_id, "dead_letters": items}


class ReplayIn(BaseModel):
    raw: str | None = Field(default=None, max_length=256 * 1024, description="a corrected body to replay instead")


@router.post("/api/merchants/{merchant}/connectors/{connector_id}/dead-letters/{dl_id}/replay")
async def replay_dead_letter(
    merchant: str, connector_id: str, dl_id: str, request: Request, body: ReplayIn | None = None
) -> JSONResponse:
    """Parse a dead letter again with the connector's parser (its signature was checked when it arrived),
    or a corrected ``raw`` from the merchant (then no identity counts as signed). If it reads, its events
    enter the room (dedup still applies) and the dead letter is marked replayed; if not, it stays."""
    svc = get_service(request.app)
    cfg = svc.get(connector_id, merchant=merchant)
    entry = await asyncio.to_thread(svc.dead.get, connector_id, dl_id)
    if entry is None:
        raise HTTPException(404, "no such dead letter")
    edited = body is not None and body.raw is not None
    raw = (body.raw if edited else entry["raw"]).encode()  # type: ignore[union-attr]
    try:
        if cfg.kind == "douyin":
            h = entry.get("headers", {})
            events = douyin.parse_push(h.get("x-msg-type", ""), raw, roomid=h.get("x-roomid", ""))
            if edited:
                events = [e.model_copy(update={"signed_identity": False}) for e in events]
        elif cfg.kind == "webhook":
            trusted = cfg.trust_identity and not edited
            events = webhook.parse_body(raw, cfg.platform or "webhook", signed_identity=trusted)
        else:
            from connectors.replay import parse_line

            events = [parse_line(raw.decode(), time.time())[1]]
    except MalformedEvent as e:
        return _error(e, dl_id=dl_id)
    counts = svc.hub.submit(connector_id, events)
    await asyncio.to_thread(svc.dead.mark_replayed, connector_id, dl_id)
    return JSONResponse({"ok": True, "dl_id": dl_id, **counts})


def _tasks(cfg: ConnectorConfig) -> douyin.DouyinTasks:
    if not cfg.access_token or not cfg.app_id or not cfg.platform_room:
        raise HTTPException(409, "this Douyin connector needs app_id, platform_room and access_token")
    return douyin.DouyinTasks(cfg.app_id, cfg.access_token, cfg.api_base or douyin.API_BASE)


@router.post("/api/merchants/{merchant}/connectors/{connector_id}/tasks/{action}")
async def douyin_task(merchant: str, connector_id: str, action: str, request: Request) -> dict[str, Any]:
    """Start / stop / query the Douyin push tasks of this connector's room (every message type)."""
    svc = get_service(request.app)
    cfg = svc.get(connector_id, "douyin", merchant)
    if action not in ("start", "stop", "status"):
        raise HTTPException(404, "action: start | stop | status")
    api = _tasks(cfg)
    out: dict[str, Any] = {}
    try:
        for mt in douyin.MSG_KINDS:
            if action == "start":
                out[mt] = await api.start(cfg.platform_room, mt)
            elif action == "stop":
                await api.stop(cfg.platform_room, mt)
                out[mt] = "stopped"
            else:
                out[mt] = {1: "none", 2: "not_started", 3: "running"}.get(await api.status(cfg.platform_room, mt))
    finally:
        await api.aclose()
    rt = svc.hub.runtime(connector_id)
    if rt is not None and action in ("start", "stop"):
        rt.health.stopped = action == "stop"
    return {"connector_id": connector_id, "action": action, "tasks": out}


@router.post("/api/merchants/{merchant}/connectors/{connector_id}/requery")
async def douyin_requery(merchant: str, connector_id: str, request: Request) -> dict[str, Any]:
    """Re-query the gifts and fan-club messages whose push failed; the hub drops those already received."""
    svc = get_service(request.app)
    cfg = svc.get(connector_id, "douyin", merchant)
    api = _tasks(cfg)
    try:
        events = []
        for mt in ("live_gift", "live_fansclub"):
            events += await api.failed(cfg.platform_room, mt)
    finally:
        await api.aclose()
    counts = svc.hub.submit(connector_id, events) if events else {"accepted": 0, "duplicates": 0, "dropped": 0}
    return {"connector_id": connector_id, "found": len(events), **counts}


class LiveIn(BaseModel):
    live: bool


@router.post("/api/merchants/{merchant}/rooms/{room_id}/live")
async def set_live(merchant: str, room_id: str, body: LiveIn, request: Request) -> dict[str, Any]:
    get_service(request.app).hub.set_live(merchant, room_id, body.live)
    return {"room_id": room_id, "live": body.live}


class TokenIn(BaseModel):
    ttl_s: float = Field(default=overlay.DEFAULT_TTL_S, ge=60, le=365 * 86_400)


@router.post("/api/merchants/{merchant}/rooms/{room_id}/overlay-token")
async def overlay_token(merchant: str, room_id: str, request: Request, body: TokenIn | None = None) -> dict[str, Any]:
    """A token for the room's OBS overlay (a browser source URL); it opens this room's overlay only."""
    svc = get_service(request.app)
    key = await asyncio.to_thread(svc.store.overlay_key)
    tok = overlay.mint(key, merchant, room_id, (body or TokenIn()).ttl_s)
    return {"room_id": room_id, "token": tok, "url": f"/overlay/{room_id}?token={tok}"}


class SayIn(BaseModel):
    text: str = Field(min_length=1, max_length=300)
    voice: bool = True


@router.post("/api/merchants/{merchant}/rooms/{room_id}/overlay/say")
async def overlay_say(merchant: str, room_id: str, body: SayIn, request: Request) -> dict[str, Any]:
    """The virtual host says one line on air: the caption on the overlay and (espeak-ng) its voice,
    through the room's text track and speech sink, compliance-checked like the host's own lines."""
    from host.answers import guard
    from host.frames import SpokenLine
    from host.speech import EspeakSink, SpeechError

    svc = get_service(request.app)
    room = svc._host_room(merchant, room_id)
    text = guard(body.text, None, ())
    if not text:
        raise HTTPException(422, "the line did not pass the compliance check")
    out = overlay.OverlayAudioOut(svc.feeds, room_id)
    seconds = 0.0
    if body.voice:
        try:
            seconds = await EspeakSink(out=out).speak(text)  # type: ignore[arg-type]
        except SpeechError as e:
            log.warning("overlay voice unavailable: %s", e)
    line = SpokenLine(
        seq=int(time.time() * 1000), text=text, kind="script", at=room.clock.now(), source="system", voiced=seconds > 0
    )
    room.bus.publish("line", line)
    return {"text": text, "audio_s": round(seconds, 2), "audio_bytes": out.bytes}


class ShowIn(BaseModel):
    action: str = Field(pattern="^(start|pause|resume|stop)$")
    rundown_yaml: str | None = Field(default=None, max_length=200_000, description="default: the room's rundown")
    voice: bool = True


@router.get("/api/merchants/{merchant}/rooms/{room_id}/show")
async def show_status(merchant: str, room_id: str, request: Request) -> dict[str, Any]:
    show = get_service(request.app).onair.get(room_id)
    return {"room_id": room_id, **(show.status() if show else {"state": "stopped"})}


@router.post("/api/merchants/{merchant}/rooms/{room_id}/show")
async def show_control(merchant: str, room_id: str, body: ShowIn, request: Request) -> dict[str, Any]:
    """Start / pause / resume / stop the virtual host's show in this room: its captions and voice go to the
    room's overlay (OBS) in real time; hot questions from any channel interrupt it between sentences."""
    svc = get_service(request.app)
    c = request.app.state.container
    if body.action == "start":
        rec = await asyncio.to_thread(c.rooms.of, merchant, room_id)
        room = svc._host_room(merchant, room_id)
        show = svc.onair.start(room, body.rundown_yaml, (rec.rundown if rec else "") or "", voice=body.voice)
        svc.hub.set_live(merchant, room_id, True)
    elif body.action == "pause":
        show = svc.onair.pause(room_id)
    elif body.action == "resume":
        show = svc.onair.resume(room_id)
    else:
        show = await svc.onair.stop(room_id)
        svc.hub.set_live(merchant, room_id, False)
    return {"room_id": room_id, **show.status()}


# --- the overlay ----------------------------------------------------------------------------------------


async def _overlay_key(request_or_ws: Any) -> bytes:
    svc = get_service(request_or_ws.app)  # on the event loop (the service's tasks live there)
    return await asyncio.to_thread(svc.store.overlay_key)


@router.get("/overlay/{room_id}", response_class=HTMLResponse, include_in_schema=False)
async def overlay_page(room_id: str, request: Request, token: str | None = None) -> HTMLResponse:
    try:
        overlay.verify(await _overlay_key(request), token, room_id)
    except overlay.BadOverlayToken as e:
        return HTMLResponse(f"<!doctype html><meta charset=utf-8><p>{e.message}</p>", status_code=401)
    page = (WEB / "overlay.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers=_PAGE_HEADERS)


@router.get("/overlay/static/{name}", include_in_schema=False)
async def overlay_static(name: str) -> FileResponse:
    if name not in _STATIC:
        raise HTTPException(404)
    return FileResponse(WEB / name, media_type=_STATIC[name], headers={"Cache-Control": "no-store"})


@router.websocket("/ws/overlay/{room_id}")
async def overlay_socket(ws: WebSocket, room_id: str) -> None:
    await ws.accept()
    try:
        merchant = overlay.verify(await _overlay_key(ws), ws.query_params.get("token"), room_id)
    except overlay.BadOverlayToken as e:
        await ws.send_text(json.dumps(wire.error_frame(e.code, e.message), ensure_ascii=False))
        await ws.close(code=1008)
        return
    from agent.guardrails import AI_LABEL

    svc = get_service(ws.app)
    room = svc._host_room(merchant, room_id)
    feed = svc.feeds.bus(room_id).subscribe(["answer", "event", "audio"], maxsize=500)
    lines = room.bus.subscribe(["line", "suggestion"], maxsize=100)
    lock = asyncio.Lock()

    async def send(obj: dict[str, Any]) -> None:
        async with lock:
            await ws.send_text(json.dumps(obj, ensure_ascii=False, default=str))

    async def pump_feed() -> None:
        while True:
            topic, item = await feed.get()
            if topic == "audio":
                async with lock:
                    await ws.send_text(json.dumps({"type": "audio", "rate": item["rate"], "bytes": len(item["pcm"])}))
                    await ws.send_bytes(item["pcm"])
            else:
                await send({"type": topic, **item})

    async def pump_lines() -> None:
        while True:
            topic, item = await lines.get()
            if topic == "line":
                await send({"type": "caption", "text": item.text, "kind": item.kind, "at": item.at})
            else:  # a talking point for the human host (the teleprompter view)
                await send({"type": "suggestion", "label": item.label, "message": item.message, "say": item.say})

    async def hot() -> None:
        last = None
        while True:
            views = [
                {"label": c.label, "viewers": c.viewers} for c in room.suggestions.hot_clusters(5) if c.viewers > 1
            ]
            if views != last:
                last = views
                await send({"type": "hot", "questions": views})
            await asyncio.sleep(1.0)

    await send({"type": "ready", "room_id": room_id, "label": AI_LABEL, "recent": svc.feeds.answers.get(room_id, [])})
    tasks = [asyncio.create_task(f()) for f in (pump_feed, pump_lines, hot)]
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            if frame.get("text") and '"ping"' in frame["text"]:
                await send({"type": "pong", "t": time.time()})
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        feed.close()
        lines.close()
        for t in tasks:
            t.cancel()
