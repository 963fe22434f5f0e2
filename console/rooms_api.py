"""A room's viewer link and its QR code for the rooms page: the public viewer page (``/rooms/{room_id}``)
as an absolute URL (``LIVEROOM_CONSOLE_PUBLIC_URL``, else the address the console was opened at), and
that URL as an SVG QR code drawn server-side (segno). Included by console/api.py's ``router``."""

from __future__ import annotations

import io

import segno
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from console.api import API, Console, MerchantId, principal_of, viewer_url

router = APIRouter(tags=["console"], dependencies=[Depends(principal_of)])


@router.get(API + "/rooms/{room_id}/link")
async def room_link(merchant: MerchantId, room_id: str, request: Request, c: Console) -> dict:
    room = await run_in_threadpool(c.room, merchant, room_id)
    if room is None:
        raise HTTPException(404, "直播间不存在")
    return {"room_id": room_id, "status": room["status"], "url": viewer_url(request, c.config.public_url, room_id)}


@router.get(API + "/rooms/{room_id}/qr.svg", response_class=Response)
async def room_qr(merchant: MerchantId, room_id: str, request: Request, c: Console) -> Response:
    if await run_in_threadpool(c.room, merchant, room_id) is None:
        raise HTTPException(404, "直播间不存在")
    buf = io.BytesIO()
    segno.make(viewer_url(request, c.config.public_url, room_id), error="m").save(
        buf, kind="svg", scale=4, border=2, xmldecl=False, svgns=True
    )
    return Response(buf.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=300"})
