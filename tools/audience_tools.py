"""lookup_profile and issue_coupon. Both act for the asking viewer only (from the context), and only
for a verified one: an anonymous viewer has no profile and gets "登录后可领券" instead of a coupon."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tools.contracts import CouponLedger, CouponOffer, CouponResult, ProfileStore, ProfileView
from tools.registry import Tool, ToolContext


class LookupProfileArgs(BaseModel):
    """Look up the asking viewer's own (privacy-filtered) profile. Takes no viewer id."""


class IssueCouponArgs(BaseModel):
    """Issue the asking viewer a coupon from a campaign they are eligible for."""

    campaign_id: str | None = Field(default=None, max_length=64, description="omit to pick the best eligible")
    sku: str | None = Field(default=None, max_length=64, description="product the viewer is interested in")


def _offer_value(o: CouponOffer) -> float:
    if o.kind == "amount":
        return o.amount or 0.0
    return (1 - (o.discount or 1.0)) * 100  # compare a 9折 with ¥10 off on a ¥100 basket


LOGIN_REQUIRED = {
    "zh": "登录后可领券哦～登录后再跟我说一声就能领。",
    "en": "Please log in to claim a coupon — then just ask me again.",
}


def login_required(lang: str = "zh") -> dict[str, Any]:
    """What an anonymous viewer gets instead of a coupon (in the room's language)."""
    return CouponResult(
        ok=False, code="login_required", message=LOGIN_REQUIRED.get(lang, LOGIN_REQUIRED["zh"])
    ).model_dump()


def audience_tools(profiles: ProfileStore, ledger: CouponLedger) -> list[Tool]:
    def lookup_profile(ctx: ToolContext, args: LookupProfileArgs) -> dict[str, Any]:
        if not ctx.is_verified:  # anonymous: nobody's profile (a typed-in id is not who is asking)
            return {"known": False, "verified": False}
        view = profiles.lookup(ctx.merchant, ctx.viewer_id)
        if view is None:
            return {"known": False}
        # Re-validate through the public shape: whatever the store returns, only these fields leave.
        return {"known": True, **ProfileView.model_validate(view.model_dump()).model_dump()}

    def issue_coupon(ctx: ToolContext, args: IssueCouponArgs) -> dict[str, Any]:
        if not ctx.is_verified:  # coupons only into a verified viewer's own account
            return login_required(ctx.lang)
        offers = ledger.eligible_offers(ctx.merchant, ctx.viewer_id, args.sku)
        if args.campaign_id:
            chosen = next((o for o in offers if o.campaign_id == args.campaign_id), None)
            if chosen is None:  # the model asked for a campaign this viewer can't have
                return CouponResult(
                    ok=False, code="not_eligible", message="这张券你暂时领不了哦，我帮你看看其他可用的优惠～"
                ).model_dump()
        elif offers:
            chosen = max(offers, key=_offer_value)
        else:
            return CouponResult(
                ok=False, code="not_eligible", message="本场暂时没有你可以领取的优惠券哦～"
            ).model_dump()
        key = f"agent:{ctx.room_id}:{ctx.viewer_id}:{chosen.campaign_id}"
        return ledger.issue(ctx.merchant, ctx.viewer_id, chosen.campaign_id, key).model_dump()

    return [
        Tool(
            "lookup_profile",
            "Look up the asking viewer's own profile (tier, interests, price sensitivity).",
            LookupProfileArgs,
            lookup_profile,
        ),
        Tool(
            "issue_coupon",
            "Issue the asking viewer an eligible coupon (budget and limits are checked).",
            IssueCouponArgs,
            issue_coupon,
        ),
    ]
