"""Which angle a copy leads with, chosen in code from the profile (never by the model).

Priority (first that applies):
1. ``focus``   — the viewer keeps coming back to this product (viewed it repeatedly, or carted it):
                 name the product;
2. ``price``   — price-sensitive: live price vs list price, and the coupon;
3. ``member``  — a fan (铁粉) or a member: the member / fan benefit;
4. ``quality`` — quality-minded (not price-sensitive, or high spending power): materials, warranty;
5. ``general`` — everyone else: the product's main selling point.
An angle whose facts are missing falls through to the next one (no list price and no coupon → not
``price``; no material spec and no warranty → not ``quality``).
"""

from __future__ import annotations

from dataclasses import dataclass

from copywriting.facts import Material
from tools.contracts import ProfileView

CASCADE = ("focus", "price", "member", "quality", "general")


@dataclass
class AngleChoice:
    angle: str
    reason: str


def wanted(profile: ProfileView | None, sku: str) -> list[tuple[str, str]]:
    """The angles this profile asks for, in priority order, with why."""
    out: list[tuple[str, str]] = []
    if profile is None:
        return [("general", "no profile")]
    signals = set(profile.decision_signals)
    if f"cart_not_paid:{sku}" in signals:
        out.append(("focus", "carted this product without paying"))
    elif f"repeat_view:{sku}" in signals or sku in profile.products_in_focus:
        out.append(("focus", "viewed this product repeatedly"))
    if profile.price_sensitivity == "high":
        out.append(("price", "price-sensitive"))
    if profile.tier == "铁粉" or profile.member:
        out.append(("member", "fan" if profile.tier == "铁粉" else "member"))
    if profile.price_sensitivity == "low" or profile.spending_power == "high":
        out.append(("quality", "quality-minded (low price sensitivity / high spending power)"))
    out.append(("general", "default"))
    return out


def available(angle: str, m: Material) -> bool:
    if angle == "price":
        return bool(m.list_price or m.coupon)
    if angle == "member":
        return m.member_benefit is not None
    if angle == "quality":
        return bool(m.quality or m.warranty)
    if angle == "general":
        return True
    return True  # focus needs only the product name


def choose(profile: ProfileView | None, sku: str, m: Material, forced: str | None = None) -> AngleChoice:
    if forced:
        if available(forced, m):
            return AngleChoice(forced, "requested")
    for angle, why in wanted(profile, sku):
        if available(angle, m):
            return AngleChoice(angle, why)
    return AngleChoice("general", "default")


def infer_recall(profile: ProfileView | None, sku: str) -> str:
    """Post-show: why we call this viewer back (carted-not-paid is known from events; else watched)."""
    if profile and f"cart_not_paid:{sku}" in profile.decision_signals:
        return "cart_unpaid"
    return "watched_no_buy"


def focus_sku(profile: ProfileView | None, skus: list[str]) -> str | None:
    """Of a show's products, the one this viewer cares about most (carted first, then viewed)."""
    if not profile:
        return None
    for s in profile.products_in_focus:
        if s in skus:
            return s
    return None


def interest_tags_of(catalog, skus: list[str], audience=None, merchant: str = "demo") -> dict[str, str]:
    """sku → the interest tag a viewer interested in it carries (口红 → 口红兴趣), by the audience rules."""
    try:
        from audience.rules import AudienceRules

        ir = (
            audience.rules(merchant).interest
            if audience is not None and hasattr(audience, "rules")
            else AudienceRules().interest
        )
    except Exception:  # noqa: BLE001 — no audience rules: no tag matching
        return {}
    out = {}
    for s in skus:
        p = catalog.product(s)
        if p is not None:
            cat = ir.interest_category(p.name, p.category)
            if cat:
                out[s] = ir.tag_for(cat)
    return out


def pick_product(profile: ProfileView | None, skus: list[str], tag_of: dict[str, str]) -> str:
    """Of a show's products, the one to write about for this viewer: the one they carted or keep viewing,
    else the one matching their heaviest interest tag, else the show's first."""
    if len(skus) == 1 or profile is None:
        return skus[0]
    f = focus_sku(profile, skus)
    if f:
        return f
    for t in profile.interest_tags:
        for s in skus:
            if tag_of.get(s) == t.tag:
                return s
    return skus[0]
