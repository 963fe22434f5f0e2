"""Batch generation for a campaign: copy per segment, or per viewer for thousands of viewers.

Viewers are grouped by everything their copy depends on — A/B arm, segment, product, angle, recall
reason, coupon, fan/member benefit — so similar viewers share one generated variant: 5,000 viewers
need a few dozen model calls, not 5,000. Each group's copy and its viewers' deliveries (with send
times) are stored in one transaction, so an interrupted run resumes where it stopped: stored groups
and delivered viewers are skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from copywriting import angles, timing
from copywriting.ab import Experiments, ExperimentSpec
from copywriting.facts import gather
from copywriting.generator import (
    DEFAULT,
    CopyWriter,
    Resolved,
    best_offer,
    campaign_offer,
    campaign_open,
    segment_offers,
)
from copywriting.schema import ID_PATTERN, Channel, CopyRequest, Phase, Recall, Segment, Show
from copywriting.store import CopyStore
from tools.contracts import CouponOffer, ProfileView

log = logging.getLogger("liveroom.copy.batch")
Progress = Callable[[str, int, int], None]


class CampaignSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign_id: str = Field(pattern=ID_PATTERN)
    merchant: str = Field("demo", pattern=ID_PATTERN)
    skus: list[str] = Field(default_factory=list)  # the products (default: the show's, in rundown order)
    show: Show | None = None
    phase: Phase = "pre"
    channel: Channel = "push"
    recall: Recall | None = None  # post-show: one reason for all (default: per viewer, from their signals)
    segments: list[Segment] = Field(default_factory=list)  # first match wins; none given = everyone
    viewers: list[str] | None = None  # explicit viewer ids (default: every viewer of the merchant)
    per_viewer: bool = True  # personalise per viewer (grouped) rather than one copy per segment
    experiment_id: str | None = Field(None, pattern=ID_PATTERN)
    use_llm: bool = True
    max_llm_groups: int | None = Field(None, ge=0)  # the largest groups get the model; the rest templates
    quiet_start: int = Field(22, ge=0, le=23)
    quiet_end: int = Field(8, ge=0, le=23)
    lead_minutes: int = Field(30, ge=0, le=24 * 60)

    @model_validator(mode="after")
    def _check(self) -> CampaignSpec:
        if not self.skus and not (self.show and self.show.segments):
            raise ValueError("give skus or a show rundown with segments")
        if self.viewers is not None and len(self.viewers) > 200_000:
            raise ValueError("at most 200,000 viewers per campaign")
        return self

    def products(self) -> list[str]:
        return self.skus or (self.show.skus() if self.show else [])


@dataclass
class Group:
    key: str
    sku: str
    segment: str
    variant: str
    req: CopyRequest
    resolved: Resolved
    members: list[tuple[str, ProfileView | None]] = field(default_factory=list)


def _key(*parts: str) -> str:
    k = "|".join(parts)
    if len(k) <= 180:
        return k
    return k[:160] + "#" + hashlib.sha1(k.encode()).hexdigest()[:16]


def viewer_offer(
    camps: list[Any], profile: ProfileView | None, sku: str, strategy: str = "auto", price: float | None = None
) -> CouponOffer | None:
    """The best coupon a viewer may get for this sku (eligibility as the ledger checks it; the per-viewer
    claim limit is not: a coupon already held is still worth mentioning)."""
    if strategy == "none" or profile is None:
        return None
    offers = []
    for c in camps:
        if strategy != "auto" and c.campaign_id != strategy:
            continue
        if c.eligible_tiers and profile.tier not in c.eligible_tiers:
            continue
        if c.eligible_tags and not {t.tag for t in profile.interest_tags} & set(c.eligible_tags):
            continue
        if c.members_only and not profile.member:
            continue
        if c.skus and sku not in c.skus:
            continue
        offers.append(campaign_offer(c))
    return best_offer(offers, price)


class CampaignRunner:
    def __init__(
        self,
        writer: CopyWriter,
        store: CopyStore,
        experiments: Experiments | None = None,
        audience: Any = None,
        tz: str = "Asia/Shanghai",
    ):
        self.writer, self.store, self.experiments, self.audience, self.tz = writer, store, experiments, audience, tz

    # --- inputs ------------------------------------------------------------------------------
    def viewer_ids(self, spec: CampaignSpec) -> list[str]:
        if spec.viewers is not None:
            return list(dict.fromkeys(spec.viewers))
        if self.audience is None:
            raise ValueError("no viewer list and no audience database: give 'viewers'")
        from sqlalchemy import select

        from audience import models as am

        with self.audience.engine.connect() as conn:
            return list(
                conn.execute(
                    select(am.viewers.c.viewer_id)
                    .where(am.viewers.c.merchant == spec.merchant)
                    .order_by(am.viewers.c.viewer_id)
                ).scalars()
            )

    def load_profiles(self, merchant: str, ids: list[str]) -> dict[str, ProfileView]:
        if not ids:
            return {}
        if self.audience is not None and hasattr(self.audience, "profiles"):
            out: dict[str, ProfileView] = {}
            for i in range(0, len(ids), 1000):
                out.update(self.audience.profiles(merchant, ids[i : i + 1000]))
            return out
        store = self.writer.profiles
        if store is None:
            return {}
        return {v: p for v in ids if (p := store.lookup(merchant, v)) is not None}

    def _campaigns(self, merchant: str) -> list[Any]:
        if self.audience is None or not hasattr(self.audience, "list_campaigns"):
            return []
        return [c for c in self.audience.list_campaigns(merchant) if campaign_open(c)]

    # --- grouping ------------------------------------------------------------------------------
    def plan_groups(
        self,
        spec: CampaignSpec,
        ids: list[str],
        profiles: dict[str, ProfileView],
        arms: dict[str, str],
        exp: ExperimentSpec | None,
    ) -> dict[str, Group]:
        catalog = self.writer.catalog_for(spec.merchant)
        skus = [s for s in spec.products() if catalog.product(s) is not None]
        if not skus:
            raise ValueError(f"none of the campaign's products {spec.products()} is in the knowledge base")
        tag_of = angles.interest_tags_of(catalog, skus, self.audience, spec.merchant)
        camps = self._campaigns(spec.merchant)
        facts = catalog.facts()
        mats: dict[tuple, Any] = {}
        seg_offers: dict[tuple, CouponOffer | None] = {}
        groups: dict[str, Group] = {}

        def material(sku: str, offer: CouponOffer | None, tier: str, member: bool):
            k = (sku, offer.campaign_id if offer else "", tier == "铁粉", member)
            if k not in mats:
                mats[k] = gather(
                    catalog, sku, coupon=offer, tier=tier, member=member, show=spec.show, tz=self.tz, facts=facts
                )
            return mats[k]

        for vid in ids:
            p = profiles.get(vid)
            seg = None
            if spec.segments:
                seg = next((s for s in spec.segments if p is not None and s.matches(p)), None)
                if seg is None:
                    continue
            arm = arms.get(vid, "")
            var = exp.variant(arm) if exp and arm else None
            strategy = var.coupon if var else "auto"
            forced = var.angle if var else None
            use_llm = spec.use_llm if var is None or var.use_llm is None else var.use_llm
            if spec.per_viewer:
                who = p
                sku = angles.pick_product(p, skus, tag_of)
                offer = viewer_offer(camps, p, sku, strategy, catalog.product(sku).price)
            else:
                who = seg.representative() if seg else None
                sku = angles.pick_product(who, skus, tag_of) if seg and seg.tags else skus[0]
                sk = (seg.name if seg else "", sku, strategy)
                if sk not in seg_offers:
                    offers = segment_offers(self.audience, spec.merchant, seg, sku) if seg else []
                    if strategy != "auto":
                        offers = [o for o in offers if o.campaign_id == strategy] if strategy != "none" else []
                    seg_offers[sk] = best_offer(offers, catalog.product(sku).price)
                offer = seg_offers[sk]
            m = material(sku, offer, who.tier if who else "路过", bool(who and who.member))
            choice = angles.choose(who, sku, m, forced)
            recall = (spec.recall or angles.infer_recall(who, sku)) if spec.phase == "post" else None
            benefit = ("fan" if who and who.tier == "铁粉" else "member") if choice.angle == "member" else ""
            key = _key(
                arm,
                seg.name if seg else "",
                sku,
                choice.angle,
                recall or "",
                m.coupon.campaign_id if m.coupon and choice.angle in ("price", "focus") else "",
                benefit,
                "llm" if use_llm else "tpl",
            )
            g = groups.get(key)
            if g is None:
                req = CopyRequest(
                    merchant=spec.merchant,
                    sku=sku,
                    phase=spec.phase,
                    channel=spec.channel,
                    recall=recall,
                    angle=forced,
                    coupon=strategy,
                    show=spec.show,
                    use_llm=use_llm,
                )
                g = groups[key] = Group(
                    key, sku, seg.name if seg else "", arm, req, Resolved(m, choice.angle, choice.reason, recall, who)
                )
            g.members.append((vid, p))
        return groups

    # --- timing --------------------------------------------------------------------------------
    def send_time(
        self,
        spec: CampaignSpec,
        exp: ExperimentSpec | None,
        arm: str,
        sku: str,
        profile: ProfileView | None,
        now: datetime,
    ) -> tuple[float | None, str]:
        if spec.show is None:
            return None, "no show rundown: send time not planned"
        var = exp.variant(arm) if exp and arm else None
        lead = var.push.lead_minutes if var else spec.lead_minutes
        pol = timing.TimingPolicy(quiet_start=spec.quiet_start, quiet_end=spec.quiet_end, lead_minutes=lead, tz=self.tz)
        if var and var.push.strategy == "fixed" and spec.phase == "pre":
            target = spec.show.start - timedelta(minutes=lead)
            if pol.quiet(target):
                return None, "fixed time falls in quiet hours"
            return target.timestamp(), f"fixed: {lead} min before the show"
        sp = timing.plan(spec.phase, spec.channel, spec.show, sku, profile.active_hours if profile else None, pol, now)
        return (sp.at.timestamp() if sp.at else None), sp.reason

    def _save_group(self, spec: CampaignSpec, exp: ExperimentSpec | None, g: Group, piece: dict, now: datetime) -> None:
        rows = []
        for vid, p in g.members:
            at, why = self.send_time(spec, exp, g.variant, g.sku, p, now)
            rows.append({"viewer_id": vid, "variant": g.variant, "send_at": at, "send_reason": why[:200]})
        self.store.save_group(
            spec.merchant,
            spec.campaign_id,
            g.key,
            {"variant": g.variant, "segment": g.segment, "sku": g.sku},
            piece,
            rows,
        )

    # --- the run -------------------------------------------------------------------------------
    async def run(
        self, spec: CampaignSpec, progress: Progress | None = None, now: datetime | None = None, llm: Any = DEFAULT
    ) -> dict:
        """Generate (or resume) a campaign. ``llm``: the client (default: the writer's; None: templates)."""
        t0 = time.perf_counter()
        llm = self.writer.llm if llm is DEFAULT else llm
        self.store.put_campaign(spec.merchant, spec.campaign_id, spec.model_dump(mode="json"))
        self.store.set_campaign(spec.merchant, spec.campaign_id, "running")
        try:
            stats = await self._run(spec, progress, now, t0, llm)
        except Exception as e:
            self.store.set_campaign(spec.merchant, spec.campaign_id, "failed", {"error": str(e)[:500]})
            raise
        self.store.set_campaign(spec.merchant, spec.campaign_id, "done", stats)
        return stats

    async def _run(
        self, spec: CampaignSpec, progress: Progress | None, now: datetime | None, t0: float, llm: Any
    ) -> dict:
        from core.timeutil import zone

        now = now or datetime.now(zone(self.tz))
        # database and grouping work runs in threads: a campaign must not stall the server's event loop
        ids = await asyncio.to_thread(self.viewer_ids, spec)
        delivered = await asyncio.to_thread(self.store.delivered, spec.merchant, spec.campaign_id)
        todo = [v for v in ids if v not in delivered]
        if progress:
            progress("profiles", 0, len(todo))
        profiles = await asyncio.to_thread(self.load_profiles, spec.merchant, todo)
        if progress:
            progress("profiles", len(todo), len(todo))
        exp = None
        arms: dict[str, str] = {}
        if spec.experiment_id:
            if self.experiments is None:
                raise ValueError("experiments are not available")
            exp = await asyncio.to_thread(self.experiments.get, spec.merchant, spec.experiment_id)
            arms = await asyncio.to_thread(self.experiments.assign, spec.merchant, spec.experiment_id, todo, exp)
        groups = await asyncio.to_thread(self.plan_groups, spec, todo, profiles, arms, exp)
        done = await asyncio.to_thread(self.store.done_groups, spec.merchant, spec.campaign_id)
        calls_before = self.writer.llm_calls
        order = sorted(groups.values(), key=lambda g: (-len(g.members), g.key))
        llm_groups = 0
        sources = {"llm": 0, "template": 0}
        fallbacks = 0
        copies = 0
        total = sum(len(g.members) for g in order)
        if progress:
            progress("copies", 0, total)
        for g in order:
            piece = done.get(g.key)
            if piece is None:
                req = g.req
                if req.use_llm and spec.max_llm_groups is not None and llm_groups >= spec.max_llm_groups:
                    req = req.model_copy(update={"use_llm": False})
                if req.use_llm and llm is not None:
                    llm_groups += 1
                pc = await self.writer.write(req, resolved=g.resolved, llm=llm)
                if req.use_llm and llm is not None and pc.source == "template":
                    fallbacks += 1
                piece = pc.model_dump(mode="json")
            sources[piece["source"]] = sources.get(piece["source"], 0) + len(g.members)
            await asyncio.to_thread(self._save_group, spec, exp, g, piece, now)
            rows = g.members
            copies += len(rows)
            if progress:
                progress("copies", copies, total)
        elapsed = time.perf_counter() - t0
        return {
            "viewers": len(ids),
            "resumed_skipped": len(delivered),
            "copies": copies,
            "skipped_no_segment": len(todo) - total,
            "groups": len(groups),
            "groups_reused": sum(1 for g in groups if g in done),
            "llm_calls": self.writer.llm_calls - calls_before,
            "llm_groups": llm_groups,
            "template_fallbacks": fallbacks,
            "copies_by_source": sources,
            "elapsed_s": round(elapsed, 2),
            "copies_per_s": round(copies / elapsed, 1) if elapsed else None,
        }
