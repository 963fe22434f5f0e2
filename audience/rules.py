"""Per-merchant profile rules: every threshold the profile engine uses, with documented defaults.

A merchant's stored rules are a partial JSON document deep-merged over these defaults, so a
merchant overrides only what it cares about (``{"interest": {"half_life_minutes": 5}}``).
See docs/audience.md for what each knob does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from audience.metrics import EVENT_TYPES

DEFAULT_KEYWORDS: dict[str, list[str]] = {
    "礼盒": ["礼盒", "礼包"],
    "口红": ["口红", "唇膏", "唇釉", "唇泥"],
    "眼影": ["眼影"],
    "眉笔": ["眉笔", "眉粉"],
    "睫毛膏": ["睫毛膏"],
    "粉底": ["粉底", "气垫", "BB霜"],
    "散粉": ["散粉", "蜜粉"],
    "腮红": ["腮红"],
    "卸妆": ["卸妆"],
    "洁面": ["洁面", "洗面奶"],
    "防晒": ["防晒"],
    "面膜": ["面膜"],
    "精华": ["精华"],
    "面霜": ["面霜", "乳霜"],
    "爽肤水": ["爽肤水", "化妆水", "精粹水"],
    "乳液": ["乳液"],
    "连衣裙": ["连衣裙"],
    "半身裙": ["半身裙"],
    "裤装": ["裤"],
    "针织衫": ["针织", "毛衣", "开衫"],
    "外套": ["外套", "大衣", "风衣", "西装", "夹克"],
    "衬衫": ["衬衫"],
    "T恤": ["T恤"],
    "坚果": ["坚果", "巴旦木", "腰果", "核桃", "夏威夷果"],
    "肉脯": ["牛肉干", "肉脯", "猪肉脯"],
    "糕点": ["蛋黄酥", "糕", "饼干", "面包"],
    "果干": ["果干", "芒果干", "葡萄干"],
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_event_keys(v: dict[str, float]) -> dict[str, float]:
    bad = sorted(set(v) - set(EVENT_TYPES) - {"watch_minute"})
    if bad:
        raise ValueError(f"unknown event types {bad}; expected keys among {list(EVENT_TYPES)} or 'watch_minute'")
    return v


class InterestRules(_Strict):
    """Interest tags: decayed sums of per-event points, keyed by the product's category."""

    half_life_minutes: float = Field(10.0, gt=0)
    # Points per event type for the category of the event's sku; `watch_minute` is per minute of
    # watching while that sku is on screen (heartbeats carry the sku being presented).
    points: dict[str, float] = Field(
        default_factory=lambda: {
            "watch_minute": 1.0,
            "product_click": 1.5,
            "add_to_cart": 4.0,
            "purchase": 6.0,
            "comment": 0.5,
            "like": 0.3,
            "share": 1.5,
            "coupon_claim": 1.0,
            "coupon_use": 1.0,
        }
    )
    # Finer interest categories from product names: the first group with a keyword in the product's name
    # wins (暖光 丝绒雾面口红 #03 → 口红); products matching none use their catalog category (彩妆).
    keywords: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_KEYWORDS))
    # Category → tag name; a category not listed becomes "<category>兴趣" (口红 → 口红兴趣).
    tag_names: dict[str, str] = Field(default_factory=dict)
    min_weight: float = Field(0.5, ge=0)  # tags lighter than this (after decay) are not shown
    max_tags: int = Field(5, ge=1, le=50)  # tags shown to the agent
    keep_tags: int = Field(24, ge=1, le=200)  # tags kept in the stored state per viewer

    _v = field_validator("points")(_check_event_keys)

    def tag_for(self, category: str) -> str:
        return self.tag_names.get(category) or f"{category}兴趣"

    def interest_category(self, name: str | None, category: str | None) -> str | None:
        if name:
            for group, words in self.keywords.items():
                if any(w in name for w in words):
                    return group
        return category


class TierRules(_Strict):
    """Audience tier from an engagement score (decayed points) and lifetime orders."""

    half_life_days: float = Field(30.0, gt=0)
    points: dict[str, float] = Field(
        default_factory=lambda: {
            "watch_minute": 1.0,
            "enter": 0.5,
            "product_click": 1.0,
            "add_to_cart": 3.0,
            "purchase": 25.0,
            "comment": 2.0,
            "like": 0.5,
            "share": 3.0,
            "coupon_claim": 1.0,
            "coupon_use": 1.0,
        }
    )
    member_bonus: float = Field(10.0, ge=0)  # added for members when the tier is derived
    order_points: float = Field(10.0, ge=0)  # per order in the imported purchase history (not decayed)
    browser_min: float = Field(5.0, ge=0)  # score ≥ this → 围观
    fan_min: float = Field(60.0, ge=0)  # score ≥ this → 铁粉
    fan_min_orders: int = Field(3, ge=1)  # lifetime orders (history + events) that make a 铁粉 regardless

    _v = field_validator("points")(_check_event_keys)


class FocusRules(_Strict):
    """Decision-window signals: carted-not-paid and repeated views of one product."""

    view_half_life_minutes: float = Field(30.0, gt=0)
    view_points: dict[str, float] = Field(default_factory=lambda: {"product_click": 1.0, "add_to_cart": 1.0})
    repeat_view_min: float = Field(2.5, gt=0)  # decayed views of one sku → "repeat_view:<sku>"
    cart_window_hours: float = Field(24.0, gt=0)  # a cart older than this no longer counts
    max_products: int = Field(5, ge=1, le=50)

    _v = field_validator("view_points")(_check_event_keys)


class PriceRules(_Strict):
    """Spending power from average order value; price sensitivity from coupon use."""

    low_spend_below: float = Field(100.0, ge=0)  # average order value (yuan) below → spending_power low
    high_spend_from: float = Field(300.0, ge=0)  # at or above → high
    min_orders: int = Field(2, ge=1)  # orders needed before coupon share decides sensitivity
    sensitive_coupon_share: float = Field(0.5, ge=0, le=1)  # share of orders with a coupon ≥ → high
    insensitive_coupon_share: float = Field(0.1, ge=0, le=1)  # ≤ → low
    claim_heavy: int = Field(3, ge=1)  # coupon claims with fewer than min_orders orders ≥ → high


class EventRules(_Strict):
    register_on: list[str] = Field(default_factory=lambda: ["exposure", "enter"])  # types that create an unknown viewer
    heartbeat_seconds: float = Field(30.0, gt=0)  # watch seconds of a heartbeat that does not say
    max_heartbeat_seconds: float = Field(300.0, gt=0)
    max_age_days: float = Field(30.0, gt=0)  # older timestamps are rejected (bad_timestamp)
    max_future_seconds: float = Field(300.0, ge=0)  # clock skew tolerated for timestamps ahead of now

    @field_validator("register_on")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        bad = sorted(set(v) - set(EVENT_TYPES))
        if bad:
            raise ValueError(f"unknown event types {bad}")
        return v


class AudienceRules(_Strict):
    timezone: str = "Asia/Shanghai"  # for active hours and coupon validity shown to viewers
    active_hours_max: int = Field(3, ge=1, le=24)
    interest: InterestRules = Field(default_factory=InterestRules)
    tier: TierRules = Field(default_factory=TierRules)
    focus: FocusRules = Field(default_factory=FocusRules)
    price: PriceRules = Field(default_factory=PriceRules)
    events: EventRules = Field(default_factory=EventRules)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from core.timeutil import zone

        zone(v)  # raises on an unknown zone
        return v


_TABLES = ("points", "tag_names", "view_points", "keywords")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in _TABLES:
            out[k] = deep_merge(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}  # point tables: override or add single entries
        else:
            out[k] = v
    return out


def rules_from_overrides(overrides: dict[str, Any] | None) -> AudienceRules:
    if not overrides:
        return AudienceRules()
    return AudienceRules.model_validate(deep_merge(AudienceRules().model_dump(), overrides))
