"""Incremental, time-decayed viewer profiles.

A viewer's state is a handful of exponentially decayed sums kept at one reference time ``t`` (the
newest event folded in). Folding in an event is O(1) in the history length:

* event at ``e >= t``: decay every sum by ``exp(-λ (e - t))``, move ``t`` to ``e``, add the points;
* event at ``e < t`` (out of order): add the points already decayed by ``exp(-λ (t - e))``.

Both give exactly the sum Σ pointsᵢ·exp(-λ (t - eᵢ)), so the state does not depend on the order
events arrive in, and a replayed event is never folded twice (ingest is idempotent by event id).
Reading decays the sums from ``t`` to *now*; nothing is recomputed from the event history.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC

from audience.events import ParsedEvent
from audience.rules import AudienceRules
from core.timeutil import zone
from tools.contracts import InterestTag, ProfileView

LN2 = math.log(2)
_INTERACTIONS = frozenset({"product_click", "comment", "like", "share"})
_EPS = 1e-3


@dataclass(slots=True)
class ViewerFacts:
    """The non-event facts a profile needs (from aud_viewers; no personal data)."""

    member: bool = False
    hist_orders: int = 0
    hist_spent_fen: int = 0
    hist_coupon_orders: int = 0


class Decay:
    """Decay rates (per second) for one rules object."""

    __slots__ = ("tag", "eng", "view", "cart_window", "tz", "offset_cache")

    def __init__(self, rules: AudienceRules):
        self.tag = LN2 / (rules.interest.half_life_minutes * 60)
        self.eng = LN2 / (rules.tier.half_life_days * 86400)
        self.view = LN2 / (rules.focus.view_half_life_minutes * 60)
        self.cart_window = rules.focus.cart_window_hours * 3600
        self.tz = zone(rules.timezone)
        self.offset_cache: dict[int, float] = {}

    def hour(self, t: float) -> int:
        """Local hour of day; the UTC offset is cached per UTC hour (DST-safe, no datetime per event)."""
        key = int(t // 3600)
        off = self.offset_cache.get(key)
        if off is None:
            from datetime import datetime

            off = datetime.fromtimestamp(key * 3600, UTC).astimezone(self.tz).utcoffset().total_seconds()
            if len(self.offset_cache) > 4096:
                self.offset_cache.clear()
            self.offset_cache[key] = off
        return int(((t + off) // 3600) % 24)


@dataclass(slots=True)
class ProfileState:
    t: float = 0.0  # reference time of the decayed sums
    tags: dict[str, float] = field(default_factory=dict)  # interest tag → points at t
    eng: float = 0.0  # engagement score at t (tier)
    views: dict[str, float] = field(default_factory=dict)  # sku → decayed product views at t
    cart: dict[str, float] = field(default_factory=dict)  # sku → newest add-to-cart time
    paid: dict[str, float] = field(default_factory=dict)  # sku → newest purchase time
    hours: list[float] = field(default_factory=lambda: [0.0] * 24)  # activity by local hour of day
    watch_s: float = 0.0
    orders: int = 0
    spent_fen: int = 0
    coupon_orders: int = 0
    claims: int = 0
    uses: int = 0
    interactions: int = 0
    visits: int = 0

    # --- (de)serialization ---------------------------------------------------------------
    @classmethod
    def loads(cls, s: str | None) -> ProfileState:
        if not s:
            return cls()
        d = json.loads(s)
        st = cls(
            t=d.get("t", 0.0),
            tags=d.get("tags", {}),
            eng=d.get("eng", 0.0),
            views=d.get("views", {}),
            cart=d.get("cart", {}),
            paid=d.get("paid", {}),
            hours=d.get("hours") or [0.0] * 24,
        )
        n = d.get("n", {})
        st.watch_s, st.orders, st.spent_fen = n.get("watch_s", 0.0), n.get("orders", 0), n.get("spent_fen", 0)
        st.coupon_orders, st.claims, st.uses = n.get("coupon_orders", 0), n.get("claims", 0), n.get("uses", 0)
        st.interactions, st.visits = n.get("interactions", 0), n.get("visits", 0)
        return st

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "t": self.t,
                "tags": self.tags,
                "eng": self.eng,
                "views": self.views,
                "cart": self.cart,
                "paid": self.paid,
                "hours": self.hours,
                "n": {
                    "watch_s": self.watch_s,
                    "orders": self.orders,
                    "spent_fen": self.spent_fen,
                    "coupon_orders": self.coupon_orders,
                    "claims": self.claims,
                    "uses": self.uses,
                    "interactions": self.interactions,
                    "visits": self.visits,
                },
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    # --- folding events in ---------------------------------------------------------------
    def apply(self, ev: ParsedEvent, category: str | None, rules: AudienceRules, d: Decay) -> None:
        e = ev.ts
        if e >= self.t:
            if self.t > 0 and e > self.t:
                self._decay_to(e, d)
            self.t = e
            f_tag = f_eng = f_view = 1.0
        else:  # late event: add its points as already decayed to t
            age = self.t - e
            f_tag, f_eng, f_view = math.exp(-d.tag * age), math.exp(-d.eng * age), math.exp(-d.view * age)

        typ = ev.type
        if typ == "watch":
            minutes = (ev.seconds or 0.0) / 60.0
            self.watch_s += ev.seconds or 0.0
            ip = rules.interest.points.get("watch_minute", 0.0) * minutes
            tp = rules.tier.points.get("watch_minute", 0.0) * minutes
            activity = minutes
        else:
            ip = rules.interest.points.get(typ, 0.0)
            tp = rules.tier.points.get(typ, 0.0)
            activity = 0.0 if typ in ("leave", "exposure") else 1.0  # being shown is not activity
        if category and ip:
            tag = rules.interest.tag_for(category)
            self.tags[tag] = self.tags.get(tag, 0.0) + ip * f_tag
        if tp:
            self.eng += tp * f_eng
        sku = ev.sku
        if sku:
            vp = rules.focus.view_points.get(typ)
            if vp:
                self.views[sku] = self.views.get(sku, 0.0) + vp * f_view
            if typ == "add_to_cart":
                if e > self.cart.get(sku, 0.0):
                    self.cart[sku] = e
            elif typ == "purchase":
                if e > self.paid.get(sku, 0.0):
                    self.paid[sku] = e
        if typ == "purchase":
            self.orders += 1
            self.spent_fen += ev.amount_fen or 0
            if ev.coupon_used:
                self.coupon_orders += 1
        elif typ == "coupon_claim":
            self.claims += 1
        elif typ == "coupon_use":
            self.uses += 1
        elif typ == "enter":
            self.visits += 1
        elif typ in _INTERACTIONS:
            self.interactions += 1
        if activity:
            self.hours[d.hour(e)] += activity

    def _decay_to(self, e: float, d: Decay) -> None:
        dt = e - self.t
        if self.tags:
            f = math.exp(-d.tag * dt)
            for k in self.tags:
                self.tags[k] *= f
        if self.eng:
            self.eng *= math.exp(-d.eng * dt)
        if self.views:
            f = math.exp(-d.view * dt)
            for k in self.views:
                self.views[k] *= f

    def prune(self, rules: AudienceRules, d: Decay) -> None:
        """Bound the state: drop negligible sums and carts/purchases outside the decision window."""
        keep = rules.interest.keep_tags
        if self.tags:
            tags = {k: v for k, v in self.tags.items() if v >= _EPS}
            if len(tags) > keep:
                tags = dict(sorted(tags.items(), key=lambda kv: -kv[1])[:keep])
            self.tags = tags
        if self.views:
            views = {k: v for k, v in self.views.items() if v >= _EPS}
            if len(views) > 32:
                views = dict(sorted(views.items(), key=lambda kv: -kv[1])[:32])
            self.views = views
        horizon = self.t - d.cart_window
        if self.cart:
            self.cart = {k: v for k, v in self.cart.items() if v >= horizon}
        if self.paid:
            self.paid = {k: v for k, v in self.paid.items() if v >= horizon}

    # --- reading -----------------------------------------------------------------------------
    def tier(self, facts: ViewerFacts, rules: AudienceRules, d: Decay, now: float) -> str:
        tr = rules.tier
        eng = self.eng * math.exp(-d.eng * max(0.0, now - self.t)) if self.t else 0.0
        score = eng + tr.order_points * facts.hist_orders + (tr.member_bonus if facts.member else 0.0)
        if score >= tr.fan_min or facts.hist_orders + self.orders >= tr.fan_min_orders:
            return "铁粉"
        if score >= tr.browser_min:
            return "围观"
        return "路过"

    def view(self, viewer_id: str, facts: ViewerFacts, rules: AudienceRules, d: Decay, now: float) -> ProfileView:
        age = max(0.0, now - self.t) if self.t else 0.0
        ir, fr, pr = rules.interest, rules.focus, rules.price
        f = math.exp(-d.tag * age)
        tags = sorted(((k, v * f) for k, v in self.tags.items()), key=lambda kv: (-kv[1], kv[0]))
        interest = [InterestTag(tag=k, weight=round(w, 3)) for k, w in tags if w >= ir.min_weight][: ir.max_tags]

        carts = sorted(
            ((s, ct) for s, ct in self.cart.items() if ct > self.paid.get(s, 0.0) and now - ct <= d.cart_window),
            key=lambda x: -x[1],
        )
        fv = math.exp(-d.view * age)
        repeats = sorted(
            ((s, v * fv) for s, v in self.views.items() if v * fv >= fr.repeat_view_min), key=lambda x: (-x[1], x[0])
        )
        focus: list[str] = []
        for s, _ in carts + repeats:
            if s not in focus:
                focus.append(s)
        signals = [f"cart_not_paid:{s}" for s, _ in carts] + [f"repeat_view:{s}" for s, _ in repeats]

        orders = facts.hist_orders + self.orders
        spent = facts.hist_spent_fen + self.spent_fen
        if orders:
            aov = spent / 100.0 / orders
            power = "low" if aov < pr.low_spend_below else "high" if aov >= pr.high_spend_from else "medium"
        else:
            power = "medium"
        if orders >= pr.min_orders:
            share = (facts.hist_coupon_orders + self.coupon_orders) / orders
            sens = (
                "high"
                if share >= pr.sensitive_coupon_share
                else "low"
                if share <= pr.insensitive_coupon_share
                else "medium"
            )
        else:
            sens = "high" if self.claims + self.uses >= pr.claim_heavy else "medium"

        mx = max(self.hours) if self.hours else 0.0
        hours = sorted(
            (h for h in range(24) if self.hours[h] > 0 and self.hours[h] >= 0.25 * mx), key=lambda h: -self.hours[h]
        )[: rules.active_hours_max]
        return ProfileView(
            viewer_id=viewer_id,
            tier=self.tier(facts, rules, d, now),
            interest_tags=interest,
            price_sensitivity=sens,
            spending_power=power,
            member=facts.member,
            products_in_focus=focus[: fr.max_products],
            decision_signals=signals[: 2 * fr.max_products],
            active_hours=sorted(hours),
        )
