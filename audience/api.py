"""HTTP API of the audience layer (a FastAPI router the server includes).

    POST /api/events                                          batched behaviour events, per-item results
    POST /api/merchants/{merchant}/viewers                    upsert viewer records (CRM import)
    GET  /api/merchants/{merchant}/viewers/{viewer_id}/profile   privacy-filtered profile
    GET  /api/merchants/{merchant}/viewers/{viewer_id}/offers    coupons this viewer may get (?sku=)
    POST /api/merchants/{merchant}/campaigns                  create a coupon campaign
    GET  /api/merchants/{merchant}/campaigns                  list (with issued / remaining)
    GET  /api/merchants/{merchant}/campaigns/{campaign_id}
    POST /api/merchants/{merchant}/campaigns/{campaign_id}/status   {"status": "paused"}
    POST /api/merchants/{merchant}/coupons/issue              {"viewer_id", "campaign_id", "idempotency_key"}
    POST /api/merchants/{merchant}/coupons/redeem
    GET  /api/merchants/{merchant}/campaigns/{campaign_id}/audit    ledger invariants
    GET/PUT /api/merchants/{merchant}/audience-rules          the merchant's rule overrides

The service comes from ``request.app.state.container.audience`` (see `get_audience`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError

from audience.config import MERCHANT_RE
from audience.coupons import CampaignExists
from audience.schemas import Campaign, CampaignIn, IngestResult, IssueIn, RedeemIn, RedeemResult, ViewerIn
from audience.service import AudienceService
from tools.contracts import CouponOffer, CouponResult, ProfileView

router = APIRouter(tags=["audience"])

Merchant = Annotated[str, Path(pattern=MERCHANT_RE.pattern, description="merchant id")]


def get_audience(request: Request) -> AudienceService:
    return request.app.state.container.audience


Svc = Annotated[AudienceService, Depends(get_audience)]


@router.post(
    "/api/events",
    response_model=IngestResult,
    responses={413: {"description": "batch too large"}, 422: {"description": "malformed batch"}},
)
async def post_events(request: Request, svc: Svc) -> IngestResult:
    """Body: ``{"merchant": "demo", "events": [{"event_id", "viewer_id", "type", "ts", ...}, ...]}``.

    Each item is accepted, a duplicate (same event id seen before: ignored), or rejected with an error
    code and message; valid items are kept whatever happens to the others.
    """
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > svc.max_body_bytes:
        raise HTTPException(
            413,
            f"request body of {int(length)} bytes exceeds {svc.max_body_bytes} bytes; "
            f"send at most {svc.max_batch} events per batch",
        )
    chunks, size = [], 0
    async for chunk in request.stream():  # also bounded when the client sends no Content-Length
        size += len(chunk)
        if size > svc.max_body_bytes:
            raise HTTPException(
                413, f"request body exceeds {svc.max_body_bytes} bytes; send at most {svc.max_batch} events per batch"
            )
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(422, 'body is not valid JSON: expected {"merchant": ..., "events": [...]}') from None
    if isinstance(data, list):  # a bare list, merchant in the query string
        data = {"merchant": request.query_params.get("merchant"), "events": data}
    if not isinstance(data, dict):
        raise HTTPException(422, 'expected a JSON object {"merchant": ..., "events": [...]}')
    merchant, events = data.get("merchant"), data.get("events")
    if not isinstance(merchant, str) or not MERCHANT_RE.match(merchant):
        raise HTTPException(422, "'merchant' is required: 1-64 letters, digits, '-' or '_'")
    if not isinstance(events, list):
        raise HTTPException(422, "'events' must be a list of event objects")
    if len(events) > svc.max_batch:
        raise HTTPException(
            413, f"batch of {len(events)} events exceeds the limit of {svc.max_batch}; split it into smaller batches"
        )
    return await run_in_threadpool(svc.ingest, merchant, events)


class ViewersIn(BaseModel):
    viewers: list[dict[str, Any]]


@router.post("/api/merchants/{merchant}/viewers")
def post_viewers(merchant: Merchant, body: ViewersIn, svc: Svc) -> dict:
    if len(body.viewers) > 5000:
        raise HTTPException(413, "at most 5000 viewers per request")
    errors, good = [], []
    for i, v in enumerate(body.viewers):
        try:
            good.append(ViewerIn.model_validate(v))
        except ValidationError as e:
            errors.append(
                {
                    "index": i,
                    "viewer_id": v.get("viewer_id") if isinstance(v, dict) else None,
                    "error": "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()),
                }
            )
    n = svc.upsert_viewers(merchant, good)
    return {"upserted": n, "rejected": len(errors), "errors": errors}


@router.get("/api/merchants/{merchant}/viewers/{viewer_id}/profile", response_model=ProfileView)
def get_profile(merchant: Merchant, viewer_id: str, svc: Svc) -> ProfileView:
    pv = svc.lookup(merchant, viewer_id)
    if pv is None:
        raise HTTPException(404, f"unknown viewer {viewer_id!r} for merchant {merchant!r}")
    return pv


@router.get("/api/merchants/{merchant}/viewers/{viewer_id}/offers", response_model=list[CouponOffer])
def get_offers(merchant: Merchant, viewer_id: str, svc: Svc, sku: str | None = None) -> list[CouponOffer]:
    return svc.eligible_offers(merchant, viewer_id, sku)


@router.post("/api/merchants/{merchant}/campaigns", response_model=Campaign, status_code=201)
def post_campaign(merchant: Merchant, spec: CampaignIn, svc: Svc) -> Campaign:
    try:
        return svc.create_campaign(merchant, spec)
    except CampaignExists as e:
        raise HTTPException(409, str(e)) from None


@router.get("/api/merchants/{merchant}/campaigns", response_model=list[Campaign])
def get_campaigns(merchant: Merchant, svc: Svc) -> list[Campaign]:
    return svc.list_campaigns(merchant)


@router.get("/api/merchants/{merchant}/campaigns/{campaign_id}", response_model=Campaign)
def get_campaign(merchant: Merchant, campaign_id: str, svc: Svc) -> Campaign:
    c = svc.get_campaign(merchant, campaign_id)
    if c is None:
        raise HTTPException(404, f"unknown campaign {campaign_id!r}")
    return c


class StatusIn(BaseModel):
    status: Literal["active", "paused", "ended"]


@router.post("/api/merchants/{merchant}/campaigns/{campaign_id}/status", response_model=Campaign)
def post_campaign_status(merchant: Merchant, campaign_id: str, body: StatusIn, svc: Svc) -> Campaign:
    c = svc.set_campaign_status(merchant, campaign_id, body.status)
    if c is None:
        raise HTTPException(404, f"unknown campaign {campaign_id!r}")
    return c


@router.get("/api/merchants/{merchant}/campaigns/{campaign_id}/audit")
def get_campaign_audit(merchant: Merchant, campaign_id: str, svc: Svc) -> dict:
    try:
        return svc.ledger_check(merchant, campaign_id)
    except KeyError:
        raise HTTPException(404, f"unknown campaign {campaign_id!r}") from None


@router.post("/api/merchants/{merchant}/coupons/issue", response_model=CouponResult)
def post_issue(merchant: Merchant, body: IssueIn, svc: Svc) -> CouponResult:
    """The same checks the agent's tool goes through: eligibility, budget, per-viewer limit, idempotency."""
    return svc.issue(merchant, body.viewer_id, body.campaign_id, body.idempotency_key)


@router.post("/api/merchants/{merchant}/coupons/redeem", response_model=RedeemResult)
def post_redeem(merchant: Merchant, body: RedeemIn, svc: Svc) -> RedeemResult:
    return svc.redeem(merchant, body)


@router.get("/api/merchants/{merchant}/audience-rules")
def get_rules(merchant: Merchant, svc: Svc) -> dict:
    return {"overrides": svc.rule_overrides(merchant), "effective": svc.rules(merchant).model_dump()}


@router.put("/api/merchants/{merchant}/audience-rules")
def put_rules(merchant: Merchant, svc: Svc, overrides: dict[str, Any] = Body(...)) -> dict:
    try:
        r = svc.set_rules(merchant, overrides)
    except ValidationError as e:
        raise HTTPException(422, json.loads(e.json(include_url=False))) from None
    return {"overrides": overrides, "effective": r.model_dump()}
