"""HTTP API for copy, campaigns, A/B experiments and the compliance checker (a router the server includes).

    POST /api/copy                                    one copy → {"text", "angle", "citations", "compliance", …}
    POST /api/campaigns/{id}/generate                 batch-generate a campaign (background; ?wait=true inline)
    GET  /api/campaigns/{id}?merchant=                status and stats
    GET  /api/campaigns/{id}/groups?merchant=         the generated variants and how many viewers share each
    GET  /api/campaigns/{id}/results?merchant=&offset=&limit=   per-viewer copy and send time
    POST /api/experiments                             create an A/B experiment
    GET  /api/experiments/{id}?merchant=
    GET  /api/experiments/{id}/assignment/{viewer_id}?merchant=  the viewer's (sticky) arm
    POST /api/experiments/{id}/events                 {"merchant", "events": [{"event_id", "viewer_id", "kind", …}]}
    GET  /api/experiments/{id}/report?merchant=       CTR / CVR per arm, intervals, tests, stop decision
    POST /api/experiments/{id}/stop?merchant=
    POST /api/compliance/check                        {"text", "merchant"?, "sku"?} → violations by rule

Services come from ``request.app.state.container`` (``copywriting.service.service_for``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from copywriting.ab import ExperimentSpec, UnknownExperiment
from copywriting.batch import CampaignSpec
from copywriting.schema import ID_PATTERN, CopyRequest
from copywriting.service import CopyService, service_for

router = APIRouter(tags=["copywriting"])
Id = Annotated[str, Path(pattern=ID_PATTERN)]


def get_copy(request: Request) -> CopyService:
    return service_for(request.app.state.container)


Svc = Annotated[CopyService, Depends(get_copy)]


def _merchant(svc: CopyService, m: str | None) -> str:
    return m or svc.settings.default_merchant


def _known_product(svc: CopyService, merchant: str, sku: str | None) -> None:
    from knowledge.store import KBError

    try:
        snap = svc.container.kb.snapshot(merchant)
    except KBError as e:
        raise HTTPException(404, str(e)) from None
    if sku is not None and snap.product(sku) is None:
        raise HTTPException(404, f"unknown product {sku!r} for merchant {merchant!r}")


@router.post("/api/copy")
async def post_copy(req: CopyRequest, svc: Svc) -> dict:
    """One copy for a product (or the product of a show's rundown that fits the target) and a viewer
    (``viewer_id``) or a segment (``segment``)."""
    merchant = _merchant(svc, req.merchant)
    await run_in_threadpool(_known_product, svc, merchant, req.sku)
    try:
        piece = await svc.copy(req.model_copy(update={"merchant": merchant}))
    except KeyError as e:
        raise HTTPException(404, str(e.args[0])) from None
    return piece.public()


@router.post("/api/campaigns/{campaign_id}/generate", status_code=202)
async def post_generate(
    campaign_id: Id,
    svc: Svc,
    body: dict[str, Any] | None = Body(None),
    wait: bool = Query(False, description="run inline and return the stats"),
    merchant: str | None = Query(None, pattern=ID_PATTERN),
) -> dict:
    """Body: a campaign spec without its id (the path gives it); empty to re-run (resume) a stored one."""
    body = dict(body or {})
    m = body.get("merchant") or _merchant(svc, merchant)
    if set(body) - {"merchant"}:
        try:
            spec = CampaignSpec.model_validate({**body, "campaign_id": campaign_id, "merchant": m})
        except ValidationError as e:
            raise HTTPException(422, e.errors(include_url=False, include_context=False)) from None
    else:
        stored = await run_in_threadpool(svc.store.get_campaign, m, campaign_id)
        if stored is None:
            raise HTTPException(404, f"unknown campaign {campaign_id!r}: send its spec in the body")
        spec = CampaignSpec.model_validate(stored["spec"])
    try:
        if wait:
            stats = await svc.run_campaign(spec)
            return {"campaign_id": campaign_id, "merchant": m, "status": "done", "stats": stats}
        await run_in_threadpool(svc.store.put_campaign, spec.merchant, spec.campaign_id, spec.model_dump(mode="json"))
        started = svc.start_campaign(spec)
    except ValueError as e:
        raise HTTPException(409 if "exists" in str(e) else 422, str(e)) from None
    return {
        "campaign_id": campaign_id,
        "merchant": m,
        "status": "running" if started else "already_running",
        "status_url": f"/api/campaigns/{campaign_id}?merchant={m}",
    }


@router.get("/api/campaigns/{campaign_id}")
def get_campaign(campaign_id: Id, svc: Svc, merchant: str | None = Query(None, pattern=ID_PATTERN)) -> dict:
    m = _merchant(svc, merchant)
    c = svc.store.get_campaign(m, campaign_id)
    if c is None:
        raise HTTPException(404, f"unknown campaign {campaign_id!r}")
    c["delivered"] = svc.store.count_deliveries(m, campaign_id)
    return c


@router.get("/api/campaigns/{campaign_id}/groups")
def get_groups(campaign_id: Id, svc: Svc, merchant: str | None = Query(None, pattern=ID_PATTERN)) -> list[dict]:
    return svc.store.groups(_merchant(svc, merchant), campaign_id)


@router.get("/api/campaigns/{campaign_id}/results")
def get_results(
    campaign_id: Id,
    svc: Svc,
    merchant: str | None = Query(None, pattern=ID_PATTERN),
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=5000),
) -> dict:
    m = _merchant(svc, merchant)
    return {"campaign_id": campaign_id, "offset": offset, "results": svc.store.results(m, campaign_id, offset, limit)}


@router.post("/api/experiments", status_code=201)
def post_experiment(spec: ExperimentSpec, svc: Svc) -> dict:
    try:
        spec, state = svc.experiments.create(spec)
    except ValueError as e:
        raise HTTPException(409, str(e)) from None
    return {"experiment": spec.model_dump(mode="json"), "state": state, "tag": spec.tag}


def _exp_call(fn, *a):
    try:
        return fn(*a)
    except UnknownExperiment as e:
        raise HTTPException(404, str(e.args[0])) from None


@router.get("/api/experiments/{experiment_id}")
def get_experiment(experiment_id: Id, svc: Svc, merchant: str | None = Query(None, pattern=ID_PATTERN)) -> dict:
    m = _merchant(svc, merchant)
    spec = _exp_call(svc.experiments.get, m, experiment_id)
    return {
        "experiment": spec.model_dump(mode="json"),
        "status": svc.experiments.status(m, experiment_id),
        "tag": spec.tag,
    }


@router.get("/api/experiments/{experiment_id}/assignment/{viewer_id}")
def get_assignment(
    experiment_id: Id, viewer_id: str, svc: Svc, merchant: str | None = Query(None, pattern=ID_PATTERN)
) -> dict:
    m = _merchant(svc, merchant)
    spec = _exp_call(svc.experiments.get, m, experiment_id)
    arm = svc.experiments.assign(m, experiment_id, [viewer_id], spec)[viewer_id]
    return {
        "experiment_id": experiment_id,
        "viewer_id": viewer_id,
        "variant": arm,
        "spec": spec.variant(arm).model_dump(mode="json"),
    }


class EventsIn(BaseModel):
    merchant: str | None = Field(None, pattern=ID_PATTERN)
    events: list[dict[str, Any]] = Field(max_length=5000)


@router.post("/api/experiments/{experiment_id}/events")
def post_exp_events(experiment_id: Id, body: EventsIn, svc: Svc) -> dict:
    """Exposures (push sent, pop-up shown), clicks and conversions. Clicks and conversions also come
    from the behaviour events (``POST /api/events``) of exposed viewers; see the report."""
    return _exp_call(svc.experiments.record, _merchant(svc, body.merchant), experiment_id, body.events)


@router.get("/api/experiments/{experiment_id}/report")
def get_report(experiment_id: Id, svc: Svc, merchant: str | None = Query(None, pattern=ID_PATTERN)) -> dict:
    return _exp_call(svc.experiments.report, _merchant(svc, merchant), experiment_id)


@router.post("/api/experiments/{experiment_id}/stop")
def post_stop(experiment_id: Id, svc: Svc, merchant: str | None = Query(None, pattern=ID_PATTERN)) -> dict:
    m = _merchant(svc, merchant)
    _exp_call(svc.experiments.get, m, experiment_id)
    svc.experiments.stop(m, experiment_id)
    return {"experiment_id": experiment_id, "status": "stopped"}


class CheckIn(BaseModel):
    text: str = Field(min_length=1, max_length=5000)
    merchant: str | None = Field(None, pattern=ID_PATTERN)
    sku: str | None = Field(None, max_length=64)  # check price and stock claims against this product


@router.post("/api/compliance/check")
def post_check(body: CheckIn, svc: Svc) -> dict:
    from agent import compliance

    m = _merchant(svc, body.merchant)
    prices, stock = None, None
    if body.sku:
        _known_product(svc, m, body.sku)
        p = svc.container.kb.snapshot(m).product(body.sku)
        prices, stock = compliance.PriceFacts.from_product(p), p.stock
    vs = compliance.check(body.text, svc.rules_for(m), real_stock=stock, prices=prices)
    return {"ok": not vs, "violations": [v.model_dump() for v in vs]}
