"""The tools act only for a verified viewer (tools/audience_tools.py): an anonymous one gets no profile
and "登录后可领券" instead of a coupon — whatever id the message carries. ``ToolContext.verified`` comes
from the message (``ViewerMessage.verified``); left unset, only server-assigned anonymous ids (``anon-…``)
count as unverified."""

from __future__ import annotations

import pytest

from core.ids import anonymous_id, check_viewer, is_anonymous
from tools.audience_tools import audience_tools
from tools.contracts import CouponOffer, CouponResult, ProfileView
from tools.registry import ToolContext, ToolRegistry


class Store:
    def __init__(self):
        self.lookups, self.issued = [], []

    def lookup(self, merchant, viewer_id):
        self.lookups.append(viewer_id)
        return ProfileView(viewer_id=viewer_id, tier="铁粉")

    def eligible_offers(self, merchant, viewer_id, sku=None):
        return [CouponOffer(campaign_id="C", title="券", kind="amount", amount=5)]

    def issue(self, merchant, viewer_id, campaign_id, key):
        self.issued.append(viewer_id)
        return CouponResult(ok=True, code="issued", message="ok", coupon_id="cp1")


@pytest.fixture()
def tools():
    s = Store()
    return s, ToolRegistry(audience_tools(s, s))


@pytest.mark.parametrize(
    "ctx",
    [
        ToolContext("demo", "vip", verified=False),
        ToolContext("demo", anonymous_id("k")),  # verified not stated: the anonymous namespace decides
        ToolContext("demo", anonymous_id("k"), verified=True),  # never for an anonymous id
        ToolContext("demo", "anonymous"),
    ],
    ids=["unverified", "anon-id", "anon-id-verified", "default-id"],
)
def test_unverified_viewers_get_no_profile_and_no_coupon(tools, ctx):
    store, reg = tools
    assert reg.run(ctx, "lookup_profile", {}) == {"known": False, "verified": False}
    res = reg.run(ctx, "issue_coupon", {})
    assert res["ok"] is False and res["code"] == "login_required" and "登录后可领券" in res["message"]
    assert store.lookups == [] and store.issued == []


def test_login_required_in_the_rooms_language(tools):
    _, reg = tools
    res = reg.run(ToolContext("demo", "vip", verified=False, lang="en"), "issue_coupon", {})
    assert res["message"].startswith("Please log in")


@pytest.mark.parametrize("ctx", [ToolContext("demo", "vip", verified=True), ToolContext("demo", "vip")])
def test_verified_viewers_get_their_profile_and_coupon(tools, ctx):
    store, reg = tools
    assert reg.run(ctx, "lookup_profile", {})["known"] is True
    assert reg.run(ctx, "issue_coupon", {})["coupon_id"] == "cp1"
    assert store.lookups == ["vip"] and store.issued == ["vip"]


def test_anonymous_ids():
    a, b = anonymous_id("key-1"), anonymous_id("key-2")
    assert a.startswith("anon-") and a != b and anonymous_id("key-1") == a and is_anonymous(a)
    assert not is_anonymous("vip")
    check_viewer("u-42:shop.x")
    for bad in ("anon-1", "", "a b", "x" * 65):
        with pytest.raises(ValueError):
            check_viewer(bad)
