"""The campaigns page and its API under ``/console/api/m/{merchant}/campaigns``: coupon campaigns created,
edited, paused and resumed over the audience layer's ledger (audience/coupons.py — which checks budgets,
per-viewer limits and eligibility itself on every issue), with issued / used and a burn-down. Included by
console/api.py's ``router``; the guard scopes and authorizes it like every ``{merchant}`` route
(writes need an operator)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from audience.coupons import CampaignExists
from audience.schemas import CampaignEdit, CampaignIn
from console.api import API, Console, MerchantId, Who, _audit, principal_of
from console.pages import render_page
from core.errors import BadRequest

router = APIRouter(tags=["console"], dependencies=[Depends(principal_of)])
C = API + "/campaigns"


@router.get("/console/m/{merchant}/campaigns", response_class=HTMLResponse, include_in_schema=False)
async def page_campaigns(request: Request, merchant: MerchantId, who: Who, c: Console) -> HTMLResponse:
    return HTMLResponse(render_page("campaigns", request, merchant, who, c))


def _with_used(c, merchant: str) -> list[dict[str, Any]]:
    aud = c.container.audience
    out = []
    for camp in aud.list_campaigns(merchant):
        tl = aud.campaign_timeline(merchant, camp.campaign_id, buckets=1) or {"used": 0}
        out.append({**camp.model_dump(), "used": tl["used"]})
    return out


@router.get(C)
async def campaigns_list(merchant: MerchantId, c: Console) -> list[dict]:
    return await run_in_threadpool(_with_used, c, merchant)


@router.post(C, status_code=201)
async def campaigns_create(merchant: MerchantId, spec: CampaignIn, request: Request, who: Who, c: Console) -> dict:
    try:
        camp = await run_in_threadpool(c.container.audience.create_campaign, merchant, spec)
    except CampaignExists as e:
        raise HTTPException(409, str(e)) from None
    out = camp.model_dump()
    await run_in_threadpool(_audit, c, merchant, who, "campaign.create", camp.campaign_id, None, out, request)
    return out


def _camp_or_404(c, merchant: str, cid: str) -> dict:
    camp = c.container.audience.get_campaign(merchant, cid)
    if camp is None:
        raise HTTPException(404, "优惠券活动不存在")
    return camp.model_dump()


@router.patch(C + "/{campaign_id}")
async def campaigns_edit(
    merchant: MerchantId, campaign_id: str, body: CampaignEdit, request: Request, who: Who, c: Console
) -> dict:
    """Budget, per-viewer limit, eligibility, dates, title; never below what was already issued."""
    before = await run_in_threadpool(_camp_or_404, c, merchant, campaign_id)
    try:
        camp = await run_in_threadpool(c.container.audience.edit_campaign, merchant, campaign_id, body)
    except BadRequest as e:
        raise HTTPException(422, e.message) from None
    if camp is None:
        raise HTTPException(404, "优惠券活动不存在")
    out = camp.model_dump()
    await run_in_threadpool(_audit, c, merchant, who, "campaign.edit", campaign_id, before, out, request)
    return out


class StatusIn(BaseModel):
    status: Literal["active", "paused", "ended"]


@router.post(C + "/{campaign_id}/status")
async def campaigns_status(
    merchant: MerchantId, campaign_id: str, body: StatusIn, request: Request, who: Who, c: Console
) -> dict:
    """Pause (no coupon is issued while paused), resume, or end a campaign."""
    before = await run_in_threadpool(_camp_or_404, c, merchant, campaign_id)
    camp = await run_in_threadpool(c.container.audience.set_campaign_status, merchant, campaign_id, body.status)
    out = camp.model_dump() if camp else before
    await run_in_threadpool(_audit, c, merchant, who, f"campaign.{body.status}", campaign_id, before, out, request)
    return out


@router.get(C + "/{campaign_id}/burndown")
async def campaigns_burndown(
    merchant: MerchantId, campaign_id: str, c: Console, buckets: int = Query(48, ge=1, le=500)
) -> dict:
    tl = await run_in_threadpool(c.container.audience.campaign_timeline, merchant, campaign_id, buckets)
    if tl is None:
        raise HTTPException(404, "优惠券活动不存在")
    return tl
