"""HTTP/WebSocket API of the host layer (a FastAPI router the server includes).

    WS   /ws/rooms/{room_id}/host?merchant=M        host console: suggestions, alerts, text track, replies,
                                                    hot clusters (≤1/s), funnel minutes; send ack/context/danmaku
    GET  /api/rooms/{room_id}/funnel?merchant=M&minutes=60   per-minute funnel + totals + recent alerts
    GET  /api/rooms/{room_id}/clusters?merchant=M&limit=10   hot question clusters + recent suggestions
    POST /api/rooms/{room_id}/danmaku               {"merchant", "messages": [{"viewer_id", "text", "ts"?}]}
    POST /api/rooms/{room_id}/room-events           {"merchant", "events": [...]} (funnel; forwarded to the audience)
    POST /api/rooms/{room_id}/context               {"merchant", "sku"}: the product on screen now
    POST /api/rundowns/validate?merchant=M          YAML body → {"ok", "issues": [{path, line, message}]}

Rooms live in a ``HostHub`` on ``app.state.host_hub`` (created on first use from the app's container).
Frames on the console socket are JSON objects with a ``type``: ``ready``, ``suggestion``, ``alert``,
``line``, ``reply``, ``clusters``, ``funnel``, ``pong``, ``error``. Protocol details: docs/host.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from audience.config import MERCHANT_RE
from core import wire
from core.errors import BadRequest
from host.frames import RoomEvent
from host.room import HostHub, HostRoom

log = logging.getLogger("liveroom.host")
router = APIRouter(tags=["host"])

MAX_FRAME_BYTES = wire.MAX_TEXT_FRAME_BYTES
MAX_BATCH = 1000
_ROOM = r"^[A-Za-z0-9_.:\-]{1,64}$"
Merchant = Annotated[str | None, Query(pattern=MERCHANT_RE.pattern, description="merchant id (default: the app's)")]


def get_hub(app: Any) -> HostHub:
    hub = getattr(app.state, "host_hub", None)
    if hub is None:
        hub = HostHub.from_container(app.state.container)
        app.state.host_hub = hub
    return hub


def _room(app: Any, merchant: str | None, room_id: str) -> HostRoom:
    import re

    if not re.match(_ROOM, room_id):
        raise HTTPException(422, "room id: use 1-64 letters, digits, '_', '.', ':' or '-'")
    c = app.state.container
    m = merchant or c.settings.default_merchant
    if not MERCHANT_RE.match(m):
        raise HTTPException(422, f"invalid merchant id {m!r}")
    if c.kb.active_version(m) is None:
        raise HTTPException(404, f"merchant {m!r} has no knowledge base")
    return get_hub(app).room(m, room_id)  # type: ignore[return-value]


class DanmakuIn(BaseModel):
    viewer_id: str = Field(min_length=1, max_length=128)
    text: str = Field(max_length=2000)
    ts: float | None = Field(None, gt=0)
    context_sku: str | None = Field(None, max_length=64)


# the console socket's frames, decoded by core.wire (ack/context are checked by hand below)
_HOST_FRAMES: dict[str, type[BaseModel] | None] = {"ping": None, "ack": None, "context": None, "danmaku": DanmakuIn}


class DanmakuBatch(BaseModel):
    merchant: str | None = Field(None, pattern=MERCHANT_RE.pattern)
    messages: list[DanmakuIn] = Field(min_length=1, max_length=MAX_BATCH)


class RoomEventIn(BaseModel):
    type: Literal[
        "exposure",
        "enter",
        "leave",
        "watch",
        "product_click",
        "add_to_cart",
        "purchase",
        "comment",
        "like",
        "share",
        "coupon_claim",
        "coupon_use",
    ]
    viewer_id: str = Field(min_length=1, max_length=128)
    ts: float | None = Field(None, gt=0)
    event_id: str | None = Field(None, max_length=128)
    sku: str | None = Field(None, max_length=64)
    amount: float | None = Field(None, ge=0, le=10_000_000)
    seconds: float | None = Field(None, ge=0, le=86_400)
    campaign_id: str | None = Field(None, max_length=64)
    coupon_used: bool = False


class RoomEventBatch(BaseModel):
    merchant: str | None = Field(None, pattern=MERCHANT_RE.pattern)
    events: list[RoomEventIn] = Field(min_length=1, max_length=MAX_BATCH)
    forward: bool = Field(True, description="also store them in the audience layer (profiles), when they have ids")


class ContextIn(BaseModel):
    merchant: str | None = Field(None, pattern=MERCHANT_RE.pattern)
    sku: str | None = Field(None, max_length=64)


@router.get("/api/rooms/{room_id}/funnel")
async def funnel(
    room_id: str, request: Request, merchant: Merchant = None, minutes: Annotated[int, Query(ge=1, le=1560)] = 60
) -> dict[str, Any]:
    """Per-minute funnel (oldest first; minutes without events are zeros), totals and recent alerts."""
    room = _room(request.app, merchant, room_id)
    now = room.clock.now()
    return {
        "merchant": room.merchant,
        "room_id": room_id,
        "now": now,
        "minutes": [m.model_dump() for m in room.funnel.series(minutes, now)],
        "totals": room.funnel.totals().model_dump(),
        "alerts": [a.model_dump() for a in room.alerts.raised[-20:]],
    }


@router.get("/api/rooms/{room_id}/clusters")
async def clusters(
    room_id: str, request: Request, merchant: Merchant = None, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    room = _room(request.app, merchant, room_id)
    return {
        "merchant": room.merchant,
        "room_id": room_id,
        "clusters": [c.model_dump() for c in room.suggestions.hot_clusters(limit)],
        "suggestions": [s.model_dump() for s in room.suggestions.recent(limit)],
    }


@router.post("/api/rooms/{room_id}/danmaku")
async def post_danmaku(room_id: str, batch: DanmakuBatch, request: Request) -> dict[str, Any]:
    room = _room(request.app, batch.merchant, room_id)
    room.start()
    kinds: dict[str, int] = {}
    for m in batch.messages:
        t = room.ingest(m.viewer_id, m.text, ts=m.ts, context_sku=m.context_sku)
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    return {"accepted": len(batch.messages), "kinds": kinds}


@router.post("/api/rooms/{room_id}/room-events")
async def post_events(room_id: str, batch: RoomEventBatch, request: Request) -> dict[str, Any]:
    room = _room(request.app, batch.merchant, room_id)
    now = room.clock.now()
    skew = room.audience.rules(room.merchant).events.max_future_seconds if room.audience is not None else 300.0
    late = [i for i, e in enumerate(batch.events) if e.ts is not None and e.ts > now + skew]
    if late:  # nothing recorded: a clock or unit mistake would otherwise skew the funnel
        raise BadRequest(
            f"events {late[:5]} have timestamps more than {skew:g}s in the future (now {now:.0f}); "
            "check the sender's clock or units (epoch seconds)",
            code="bad_timestamp",
        )
    fwd = []
    for e in batch.events:
        ev = RoomEvent(
            type=e.type,
            viewer_id=e.viewer_id,
            ts=e.ts or now,
            sku=e.sku,
            amount=e.amount,
            seconds=e.seconds,
            campaign_id=e.campaign_id,
            coupon_used=e.coupon_used,
            event_id=e.event_id,
        )
        room.ingest_event(ev)
        if batch.forward and e.event_id:
            fwd.append(e.model_dump(exclude_none=True) | {"ts": ev.ts})
    stored = None
    if fwd and room.audience is not None:
        res = await run_in_threadpool(room.audience.ingest, room.merchant, fwd)
        stored = {"accepted": res.accepted, "duplicates": res.duplicates, "rejected": res.rejected}
    return {"recorded": len(batch.events), "audience": stored}


@router.post("/api/rooms/{room_id}/context")
async def set_context(room_id: str, body: ContextIn, request: Request) -> dict[str, Any]:
    room = _room(request.app, body.merchant, room_id)
    snap = room.snapshot()
    if body.sku and (snap is None or snap.product(body.sku) is None):
        raise HTTPException(404, f"no product {body.sku!r} in the knowledge base")
    room.context_sku = body.sku
    return {"room_id": room_id, "context_sku": body.sku}


@router.post("/api/rundowns/validate")
async def validate_rundown(
    request: Request,
    merchant: Merchant = None,
    body: str = Body(..., media_type="application/yaml", max_length=200_000),
) -> dict:
    """Check a rundown: its shape, and (for ``merchant``) that its skus and campaigns exist."""
    from host.rundown import RundownError, check_references, parse_rundown

    try:
        rd = parse_rundown(body, "rundown.yaml")
    except RundownError as e:
        return {"ok": False, "issues": e.as_dicts()}
    c = request.app.state.container
    m = merchant or c.settings.default_merchant
    issues = []
    if c.kb.active_version(m) is not None:
        snap = c.kb.snapshot(m)
        campaigns = None
        try:
            campaigns = {x.campaign_id: x for x in await run_in_threadpool(c.audience.list_campaigns, m)}
        except Exception:  # no audience database: campaigns are checked when the show starts
            log.info("campaign check skipped", exc_info=True)
        issues = check_references(rd, set(snap.products), campaigns)
    return {
        "ok": not issues,
        "issues": [{"path": i.path, "line": i.line, "message": i.message} for i in issues],
        "segments": len(rd.segments),
        "skus": rd.skus(),
        "campaigns": rd.campaigns(),
    }


# --- the host console socket ----------------------------------------------------------------------


@router.websocket("/ws/rooms/{room_id}/host")
async def host_socket(ws: WebSocket, room_id: str) -> None:
    merchant = ws.query_params.get("merchant")
    await ws.accept()
    send_lock = asyncio.Lock()

    async def send(obj: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_text(json.dumps(obj, ensure_ascii=False, default=str))

    async def error(code: str, message: str) -> None:
        await send(wire.error_frame(code, message))

    try:
        room = _room(ws.app, merchant, room_id)
    except HTTPException as e:
        await error("bad_room", str(e.detail))
        await ws.close(code=1008)
        return
    room.start()
    sub = room.bus.subscribe(["suggestion", "alert", "line", "reply"], maxsize=500)
    await send({"type": "ready", **room.snapshot_state(), "max_frame_bytes": MAX_FRAME_BYTES})

    async def pump() -> None:
        while True:
            topic, item = await sub.get()
            await send({"type": topic, **item.model_dump()})

    async def periodic() -> None:
        last_clusters, last_minute = None, None
        while True:
            await asyncio.sleep(1.0)
            views = [c.model_dump() for c in room.suggestions.hot_clusters(10)]
            sig = [(c["cluster_id"], c["viewers"], c["hot"]) for c in views]
            if sig != last_clusters:
                last_clusters = sig
                await send({"type": "clusters", "clusters": views})
            mins = room.funnel.series(2, room.clock.now())
            if mins and mins[0].minute != last_minute:  # a minute closed
                last_minute = mins[0].minute
                await send({"type": "funnel", "minute": mins[0].model_dump(), "online": room.funnel.online})

    tasks = [asyncio.create_task(pump()), asyncio.create_task(periodic())]
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            try:
                kind, payload = wire.decode_text(frame.get("text"), _HOST_FRAMES, max_bytes=MAX_FRAME_BYTES)
            except wire.WireError as e:
                await error(e.code, e.message)
                continue
            data = payload if isinstance(payload, dict) else {}
            if kind == "ping":
                await send({"type": "pong", "t": time.time()})
            elif kind == "ack":  # the human host talked about it: the cluster is answered
                cid = data.get("cluster_id")
                if not isinstance(cid, str):
                    await error(wire.INVALID, "ack needs a 'cluster_id'")
                    continue
                room.clusterer.mark_answered(cid, room.clock.now())
                await send({"type": "acked", "cluster_id": cid})
            elif kind == "context":
                sku = data.get("sku")
                snap = room.snapshot()
                if sku is not None and (not isinstance(sku, str) or snap is None or snap.product(sku) is None):
                    await error("unknown_sku", f"no product {sku!r}")
                    continue
                room.context_sku = sku
                await send({"type": "context", "sku": sku})
            elif kind == "danmaku":
                m = payload
                t = room.ingest(m.viewer_id, m.text, ts=m.ts, context_sku=m.context_sku)
                await send({"type": "danmaku.ok", "kind": t.kind, "topics": sorted(t.topics)})
    except WebSocketDisconnect:
        pass
    finally:
        sub.close()
        for t in tasks:
            t.cancel()
