"""Copy that fits (issue 19): a coupon is offered only when the product's price reaches its threshold,
and viewers with different profiles get visibly different copy — measured by ``python -m evals.copy``."""

from __future__ import annotations

import asyncio

from copywriting.generator import best_offer
from evals import copy as ev
from tools.contracts import CouponOffer

BIG = CouponOffer(campaign_id="ALL199-20", title="满199减20", kind="amount", amount=20, threshold=199)
SMALL = CouponOffer(campaign_id="C99-10", title="满99减10", kind="amount", amount=10, threshold=99)


def test_a_threshold_the_price_does_not_reach_is_no_offer():
    assert best_offer([BIG], 89.0) is None  # the 89-yuan lipstick
    assert best_offer([BIG, SMALL], 129.0) == SMALL
    assert best_offer([BIG, SMALL], 259.0) == BIG


def test_without_coupon_keeps_the_angle_content():
    assert ev.without_coupon("精华直播价129元\n日常价199元，可用满99减10券，开播提醒你来看。") == (
        "精华直播价129元，日常价199元，开播提醒你来看"
    )


def test_persona_study_threshold_fit_and_angles_differ():
    personas = ev.load_personas()
    res = asyncio.run(ev.persona_study(personas, ev.demo_catalog()))
    assert res["with_coupon"] > 0
    assert res["threshold_fit"] == 1.0, res["misfits"]
    assert res["wanted_pairs_differ"] == 1.0, res["same_text_examples"]
    assert res["angle_pairs_differ"] > 0.5 and res["text_pairs_differ"] > 0.5
