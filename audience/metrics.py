"""The one event taxonomy and the rates computed from it (docs/audience.md "Events and rates").

Every number a merchant reads — the live funnel, the dashboard, A/B reports — counts the same events:

* ``exposure``  the viewer was shown the thing measured (a push, a pop-up, a product card, the room in a
  feed); the denominator of every rate;
* ``enter``     the viewer came into the room — a visit, never a click;
* ``product_click`` → ``add_to_cart`` → ``purchase`` (an order), and ``coupon_claim`` / ``coupon_use``.

Rates are per viewer, over exposed viewers:  CTR = viewers with a ``product_click`` / exposed viewers;
CVR = viewers with a ``purchase`` / exposed viewers. Each is reported with its Wilson 95% interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EXPOSURE, ENTER, PRODUCT_CLICK, ADD_TO_CART, PURCHASE = "exposure", "enter", "product_click", "add_to_cart", "purchase"
COUPON_CLAIM, COUPON_USE = "coupon_claim", "coupon_use"

FUNNEL_STEPS: tuple[str, ...] = (EXPOSURE, ENTER, PRODUCT_CLICK, ADD_TO_CART, PURCHASE)
CLICK_EVENTS: tuple[str, ...] = (PRODUCT_CLICK,)  # what a click is, for CTR (an ``enter`` is not)
CONVERSION_EVENTS: tuple[str, ...] = (PURCHASE,)  # what a conversion is, for CVR
OTHER_EVENTS: tuple[str, ...] = ("leave", "watch", "comment", "like", "share", COUPON_CLAIM, COUPON_USE)
EVENT_TYPES: tuple[str, ...] = FUNNEL_STEPS + OTHER_EVENTS

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes in n (sound at small counts and rates near 0)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` of ``n`` viewers, with the Wilson 95% interval."""

    count: int
    n: int

    @property
    def rate(self) -> float:
        return self.count / self.n if self.n else 0.0

    def dump(self) -> dict:
        lo, hi = wilson(self.count, self.n)
        return {"count": self.count, "n": self.n, "rate": round(self.rate, 6), "ci": [round(lo, 6), round(hi, 6)]}


def ctr(clicked: int, exposed: int) -> Rate:
    return Rate(clicked, exposed)


def cvr(converted: int, exposed: int) -> Rate:
    return Rate(converted, exposed)
