"""The console pages a merchant runs a show from (campaigns, room links and QR codes, answer style,
first run), gathered so console/api.py includes them in one line."""

from __future__ import annotations

from fastapi import APIRouter


def show_routers() -> list[APIRouter]:
    from console.campaigns_api import router as campaigns
    from console.rooms_api import router as rooms
    from console.setup import router as setup
    from console.style_api import router as style

    return [campaigns, rooms, style, setup]
