"""Input/output shapes of the audience API (beyond the agent-facing ones in tools.contracts)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tools.contracts import Tier

_ID = r"^[A-Za-z0-9_.:\-]{1,64}$"


class ViewerIn(BaseModel):
    """A viewer record (e.g. from the merchant's CRM). Personal fields are stored apart and never reach
    the agent; omit them if you don't need them here."""

    model_config = ConfigDict(extra="forbid")
    viewer_id: str = Field(min_length=1, max_length=128)
    age_band: str | None = Field(None, max_length=16)
    gender: Literal["female", "male", "other"] | None = None
    city_tier: int | None = Field(None, ge=1, le=5)
    member: bool = False
    member_level: str | None = Field(None, max_length=32)
    orders: int = Field(0, ge=0)  # purchase history before these events
    spent: float = Field(0.0, ge=0)  # yuan, total of those orders
    coupon_orders: int = Field(0, ge=0)  # how many of them used a coupon
    real_name: str | None = Field(None, max_length=64)
    phone: str | None = Field(None, max_length=32)
    address: str | None = Field(None, max_length=256)

    @model_validator(mode="after")
    def _check(self) -> ViewerIn:
        if self.coupon_orders > self.orders:
            raise ValueError("coupon_orders cannot exceed orders")
        return self


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sku: str = Field(min_length=1, max_length=64)
    name: str | None = Field(None, max_length=256)
    category: str | None = Field(None, max_length=64)
    price: float | None = Field(None, ge=0)


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign_id: str | None = Field(None, pattern=_ID)  # generated when omitted
    title: str = Field(min_length=1, max_length=128)
    kind: Literal["amount", "discount"]
    amount: float | None = Field(None, gt=0, le=100_000)  # yuan off (kind=amount)
    discount: float | None = Field(None, gt=0, lt=1)  # 0.9 = 10% off (kind=discount)
    max_off: float | None = Field(None, gt=0, le=100_000)  # cap per coupon (kind=discount)
    threshold: float = Field(0.0, ge=0)  # minimum order value
    budget_count: int = Field(ge=1, le=100_000_000)  # total coupons
    budget_money: float | None = Field(None, gt=0)  # cap on the sum of face values (yuan)
    per_viewer_limit: int = Field(1, ge=1, le=1000)
    eligible_tiers: list[Tier] = Field(default_factory=list)  # empty = every tier
    eligible_tags: list[str] = Field(default_factory=list)  # empty = no interest needed; else any of them
    skus: list[str] = Field(default_factory=list)  # empty = store-wide
    members_only: bool = False
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    stackable: bool = False  # may be combined with other coupons on one order
    status: Literal["active", "paused", "ended"] = "active"

    @model_validator(mode="after")
    def _check(self) -> CampaignIn:
        if self.kind == "amount" and self.amount is None:
            raise ValueError("kind 'amount' needs 'amount' (yuan off)")
        if self.kind == "discount" and self.discount is None:
            raise ValueError("kind 'discount' needs 'discount' (e.g. 0.9 for 10% off)")
        if self.kind == "amount" and self.discount is not None:
            raise ValueError("kind 'amount' takes no 'discount'")
        if self.kind == "discount" and self.amount is not None:
            raise ValueError("kind 'discount' takes no 'amount'")
        if self.kind == "discount" and self.budget_money is not None and self.max_off is None:
            raise ValueError("a money cap on a discount campaign needs 'max_off' (the most one coupon can take off)")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.budget_money is not None and self.face_value() > self.budget_money:
            raise ValueError("budget_money is smaller than one coupon's face value")
        return self

    def face_value(self) -> float:
        return (self.amount or 0.0) if self.kind == "amount" else (self.max_off or 0.0)


class CampaignEdit(BaseModel):
    """What may change on a running campaign: its budget, limits, eligibility and dates. What a coupon is
    worth and where it applies (kind, amount, discount, threshold, skus) stay fixed once created — coupons
    already issued carry them; a different offer is a new campaign."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, min_length=1, max_length=128)
    budget_count: int | None = Field(None, ge=1, le=100_000_000)
    budget_money: float | None = Field(None, gt=0)
    per_viewer_limit: int | None = Field(None, ge=1, le=1000)
    eligible_tiers: list[Tier] | None = None
    eligible_tags: list[str] | None = None
    members_only: bool | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    stackable: bool | None = None


class Campaign(BaseModel):
    campaign_id: str
    title: str
    kind: Literal["amount", "discount"]
    amount: float | None = None
    discount: float | None = None
    max_off: float | None = None
    threshold: float = 0.0
    budget_count: int
    budget_money: float | None = None
    per_viewer_limit: int = 1
    eligible_tiers: list[str] = Field(default_factory=list)
    eligible_tags: list[str] = Field(default_factory=list)
    skus: list[str] = Field(default_factory=list)
    members_only: bool = False
    valid_from: str | None = None
    valid_until: str | None = None
    stackable: bool = False
    status: str = "active"
    issued_count: int = 0
    issued_value: float = 0.0
    remaining: int = 0


class IssueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    viewer_id: str = Field(min_length=1, max_length=128)
    campaign_id: str = Field(min_length=1, max_length=64)
    idempotency_key: str = Field(min_length=1, max_length=128)


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    viewer_id: str = Field(min_length=1, max_length=128)
    coupon_ids: list[str] = Field(min_length=1, max_length=10)
    order_id: str = Field(min_length=1, max_length=128)
    order_value: float = Field(ge=0)
    skus: list[str] | None = None  # the order's skus (needed for product-specific coupons)


class RedeemResult(BaseModel):
    ok: bool
    code: Literal[
        "redeemed",
        "already_redeemed",
        "not_found",
        "not_owner",
        "expired",
        "below_threshold",
        "not_stackable",
        "not_applicable",
        "conflict",
        "error",
    ]
    message: str
    discount: float = 0.0
    coupon_ids: list[str] = Field(default_factory=list)


class ItemError(BaseModel):
    code: str
    message: str


class ItemResult(BaseModel):
    index: int
    event_id: str | None = None
    status: Literal["accepted", "duplicate", "rejected"]
    error: ItemError | None = None


class IngestResult(BaseModel):
    merchant: str
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    results: list[ItemResult] = Field(default_factory=list)
