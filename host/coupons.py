"""The coupons a room may talk about, read from the coupon ledger (never invented).

A campaign is announceable when it exists, is active, is inside its validity window and has budget
left. Announcing doesn't issue anything: viewers who ask get a coupon through the ledger
(``AudienceService.issue``, via the agent's ``issue_coupon`` tool), with its eligibility, budget and
per-viewer limits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tools.contracts import CouponOffer

log = logging.getLogger("liveroom.host")


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def as_offer(c: Any) -> CouponOffer:
    return CouponOffer(
        campaign_id=c.campaign_id,
        title=c.title,
        kind=c.kind,
        amount=c.amount,
        discount=c.discount,
        threshold=c.threshold or 0.0,
        skus=list(c.skus or []),
        valid_until=c.valid_until,
    )


class RoomCoupons:
    """``ledger``: an ``AudienceService`` (``get_campaign``, ``list_campaigns``) or None (no coupons)."""

    def __init__(self, ledger: Any | None, merchant: str, clock: Callable[[], float], ttl_s: float = 5.0):
        self.ledger, self.merchant, self.clock, self.ttl_s = ledger, merchant, clock, ttl_s
        self._cache: tuple[float, list] | None = None

    def campaign(self, campaign_id: str) -> Any | None:
        if self.ledger is None:
            return None
        try:
            return self.ledger.get_campaign(self.merchant, campaign_id)
        except Exception:
            log.exception("campaign lookup failed")
            return None

    def announceable(self, campaign_id: str) -> tuple[Any | None, str]:
        """(campaign, "") when it can be announced now, else (campaign or None, why not)."""
        c = self.campaign(campaign_id)
        if c is None:
            return None, "unknown campaign" if self.ledger is not None else "no coupon ledger"
        return (c, "") if not (why := self._why_not(c)) else (c, why)

    def _why_not(self, c: Any) -> str:
        now = self.clock()
        if c.status != "active":
            return f"campaign is {c.status}"
        start, end = _ts(c.valid_from), _ts(c.valid_until)
        if start is not None and now < start:
            return "campaign has not started"
        if end is not None and now > end:
            return "campaign has ended"
        if c.remaining <= 0:
            return "budget spent"
        return ""

    def all(self) -> list:
        if self.ledger is None:
            return []
        now = self.clock()
        if self._cache and now - self._cache[0] < self.ttl_s:
            return self._cache[1]
        try:
            cs = self.ledger.list_campaigns(self.merchant)
        except Exception:
            log.exception("campaign list failed")
            cs = []
        self._cache = (now, cs)
        return cs

    def active(self, sku: str | None = None, public_only: bool = True) -> list:
        """Announceable campaigns that apply to ``sku`` (store-wide ones too); ``public_only`` keeps the
        ones every viewer may claim (no tier / tag / membership conditions)."""
        out = []
        for c in self.all():
            if self._why_not(c):
                continue
            if public_only and (c.eligible_tiers or c.eligible_tags or c.members_only):
                continue
            if sku and c.skus and sku not in c.skus:
                continue
            out.append(c)
        out.sort(key=lambda c: -(c.amount or 0))
        return out

    def offers(self, sku: str | None = None) -> list[CouponOffer]:
        return [as_offer(c) for c in self.active(sku)]

    def fan_campaigns(self) -> list:
        return [
            c for c in self.all() if not self._why_not(c) and ("铁粉" in (c.eligible_tiers or []) or c.members_only)
        ]
