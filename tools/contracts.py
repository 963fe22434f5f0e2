"""What the agent's tools need from the stores behind them (profiles, coupons).

The agent layer depends only on these protocols and pydantic shapes; `audience/` provides the
SQL-backed implementations. Data flows one way: agent → tools → stores.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field

Tier = Literal["路过", "围观", "铁粉"]
Level = Literal["low", "medium", "high"]


class InterestTag(BaseModel):
    tag: str  # e.g. "口红兴趣"
    weight: float = Field(ge=0)


class ProfileView(BaseModel):
    """The privacy-filtered profile the agent may see. No phone, address, real name, or raw events."""

    viewer_id: str
    tier: Tier = "路过"
    interest_tags: list[InterestTag] = Field(default_factory=list)
    price_sensitivity: Level = "medium"
    spending_power: Level = "medium"
    member: bool = False
    products_in_focus: list[str] = Field(default_factory=list)  # skus viewed repeatedly / carted
    decision_signals: list[str] = Field(default_factory=list)  # e.g. "cart_not_paid:SK-001"
    active_hours: list[int] = Field(default_factory=list)


class CouponOffer(BaseModel):
    campaign_id: str
    title: str
    kind: Literal["amount", "discount"]
    amount: float | None = None  # yuan off (kind=amount)
    discount: float | None = None  # e.g. 0.9 = 10% off (kind=discount)
    threshold: float = 0.0  # minimum order value
    skus: list[str] = Field(default_factory=list)  # empty = store-wide
    valid_until: str | None = None


class CouponResult(BaseModel):
    ok: bool
    code: Literal[
        "issued",
        "already_issued",
        "not_eligible",
        "budget_exhausted",
        "limit_reached",
        "unknown_campaign",
        "expired",
        "login_required",
        "error",
    ]
    message: str  # polite, viewer-facing Chinese sentence
    coupon_id: str | None = None
    offer: CouponOffer | None = None


class ProfileStore(Protocol):
    def lookup(self, merchant: str, viewer_id: str) -> ProfileView | None: ...


class CouponLedger(Protocol):
    def eligible_offers(self, merchant: str, viewer_id: str, sku: str | None = None) -> list[CouponOffer]: ...

    def issue(self, merchant: str, viewer_id: str, campaign_id: str, idempotency_key: str) -> CouponResult: ...
