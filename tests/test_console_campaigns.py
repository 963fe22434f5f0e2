"""The console pages a merchant runs a show from, over HTTP: campaigns (create, edit, pause/resume, the
ledger still refusing what the budget and limits refuse, the burn-down), a room's viewer link and QR code,
the answer style (check, preview, publish, restore), and the first-run owner setup (loopback only, one
time). The same pages in Chromium: tests/test_console_campaigns_browser.py."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

M = "demo"


@pytest.fixture()
def site(tmp_path, demo_root, use_embedder):
    from console.service import get_console
    from tests.support.console import console_app, login, make_container

    c = make_container(tmp_path, demo_root, use_embedder)
    app = console_app(c)
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 5000)) as client:
        accounts = get_console(app).accounts
        accounts.create_user(M, "boss", "boss-password-1", "owner")
        accounts.create_user(M, "reader", "viewer-password-1", "viewer")
        csrf = login(client, "boss", "boss-password-1")
        client.headers.update({"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:8000"})
        yield client, c


def test_campaign_create_edit_pause_resume_burndown(site):
    client, c = site
    base = f"/console/api/m/{M}/campaigns"
    assert client.get(f"/console/m/{M}/campaigns").status_code == 200
    r = client.post(
        base,
        json={
            "campaign_id": "C-live",
            "title": "满99减10",
            "kind": "amount",
            "amount": 10,
            "threshold": 99,
            "budget_count": 3,
            "per_viewer_limit": 1,
        },
    )
    assert r.status_code == 201, r.text
    aud = c.audience
    for v in ("v1", "v2"):
        aud.ensure_viewer(M, v)
        assert aud.issue(M, v, "C-live", f"k-{v}").ok
    assert not aud.issue(M, "v1", "C-live", "k-again").ok  # per-viewer limit, still the ledger's
    row = next(x for x in client.get(base).json() if x["campaign_id"] == "C-live")
    assert (row["issued_count"], row["used"], row["remaining"]) == (2, 0, 1)

    assert client.patch(f"{base}/C-live", json={"budget_count": 1}).status_code == 422  # below the 2 issued
    r = client.patch(f"{base}/C-live", json={"budget_count": 5, "per_viewer_limit": 2, "eligible_tiers": ["铁粉"]})
    assert r.status_code == 200 and r.json()["budget_count"] == 5 and r.json()["eligible_tiers"] == ["铁粉"]
    assert client.patch(f"{base}/C-live", json={"amount": 50}).status_code == 422  # the offer stays fixed

    assert client.post(f"{base}/C-live/status", json={"status": "paused"}).json()["status"] == "paused"
    aud.ensure_viewer(M, "v3")
    assert not aud.issue(M, "v3", "C-live", "k-v3").ok  # paused: nothing is issued
    assert client.post(f"{base}/C-live/status", json={"status": "active"}).json()["status"] == "active"

    coupon = next(x for x in aud.coupons_of(M, "v2"))
    assert aud.redeem(
        M, {"viewer_id": "v2", "coupon_ids": [coupon["coupon_id"]], "order_id": "o1", "order_value": 120}
    ).ok
    bd = client.get(f"{base}/C-live/burndown?buckets=10").json()
    assert (bd["budget"], bd["issued"], bd["used"]) == (5, 2, 1)
    assert bd["points"][-1] == {**bd["points"][-1], "issued": 2, "used": 1, "remaining": 3}
    assert aud.ledger_check(M, "C-live")["ok"]


def test_read_only_user_cannot_write_campaigns(site, tmp_path):
    client, _ = site
    from tests.support.console import login

    client.cookies.clear()
    csrf = login(client, "reader", "viewer-password-1")
    client.headers["X-CSRF-Token"] = csrf
    r = client.post(
        f"/console/api/m/{M}/campaigns", json={"title": "x", "kind": "amount", "amount": 1, "budget_count": 1}
    )
    assert r.status_code == 403
    assert client.get(f"/console/api/m/{M}/campaigns").status_code == 200


def test_room_viewer_link_and_qr(site):
    client, _ = site
    assert client.post(f"/console/api/m/{M}/rooms", json={"room_id": "spring", "title": "春季专场"}).status_code == 201
    link = client.get(f"/console/api/m/{M}/rooms/spring/link").json()
    assert link["url"] == "http://127.0.0.1:8000/rooms/spring" and link["status"] == "open"
    listed = next(r for r in client.get(f"/console/api/m/{M}/rooms").json() if r["room_id"] == "spring")
    assert listed["url"] == link["url"]  # the rooms table shows the same absolute link
    qr = client.get(f"/console/api/m/{M}/rooms/spring/qr.svg")
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")
    assert qr.text.lstrip().startswith("<svg") and "<script" not in qr.text
    assert client.get(f"/console/api/m/{M}/rooms/nope/qr.svg").status_code == 404


def test_style_check_preview_publish_restore(site):
    client, c = site
    base = f"/console/api/m/{M}/style"
    bad = {"greeting": "全网最低价", "sign_off": "下单立减10元"}
    assert len(client.post(f"{base}/check", json=bad).json()["problems"]) == 2
    assert client.post(f"{base}/publish", json={"style": bad}).status_code == 422
    style = {
        "greeting": "欢迎来到暖光直播间",
        "sign_off": "喜欢就点点关注",
        "tone": "lively",
        "address": "亲",
        "banned_words": ["闭眼入"],
        "always_mention": ["关注主播不迷路"],
    }
    d = client.post(f"{base}/preview", json={"style": style, "questions": ["小蓝瓶多少钱"]}).json()
    row = d["rows"][0]
    assert row["draft"]["answer"].startswith("欢迎来到暖光直播间") and "关注主播不迷路" in row["draft"]["answer"]
    assert "欢迎来到暖光直播间" not in row["published"]["answer"]  # nothing published yet
    assert client.post(f"{base}/publish", json={"style": style, "note": "first"}).json()["version"] == 1
    got = client.get(base).json()
    assert got["version"] == 1 and got["style"]["greeting"] == "欢迎来到暖光直播间" and got["questions"]
    # the published style reaches the viewer channel's answers
    client.post(f"/console/api/m/{M}/rooms", json={"room_id": "style-room", "title": "t"})
    ans = client.post("/api/rooms/style-room/ask", json={"text": "小蓝瓶多少钱"}).json()
    assert ans["answer"].startswith("欢迎来到暖光直播间") and ans["answer"].endswith("喜欢就点点关注。")
    assert client.post(f"{base}/publish", json={"style": {}}).json()["version"] == 2
    assert client.post(f"{base}/restore/1").json()["version"] == 3
    assert client.get(base).json()["style"]["address"] == "亲"


def test_first_run_setup_is_local_and_one_time(tmp_path, demo_root, use_embedder, capsys):
    from console.first_run import announce, pending_code
    from tests.support.console import console_app, make_container

    app = console_app(make_container(tmp_path, demo_root, use_embedder))
    with TestClient(app, base_url="http://10.0.0.5:8000", client=("10.0.0.9", 4000)) as remote:
        assert remote.get("/console/setup").status_code == 404  # not from another machine
        assert remote.post("/console/setup", data={"code": "x"}).status_code == 404
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 4000)) as local:
        code = pending_code(app)
        assert code and re.fullmatch(r"[0-9A-F]{4}(-[0-9A-F]{4}){3}", code)
        announce(app)  # what `make run` prints at start-up
        printed = capsys.readouterr().out
        assert "/console/setup" in printed and code in printed
        page = local.get("/console/setup")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        form = {"username": "owner", "password": "a-long-password", "password2": "a-long-password", "csrf": csrf}
        r = local.post("/console/setup", data={**form, "code": "0000-0000-0000-0000"})
        assert r.status_code == 401
        csrf = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
        r = local.post("/console/setup", data={**form, "csrf": csrf, "code": code.lower()}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/console/m/{M}/rooms"
        assert local.get(f"/console/m/{M}/rooms").status_code == 200  # logged in as the new owner
        assert pending_code(app) is None
        announce(app)
        printed = capsys.readouterr().out
        assert "/console/" in printed and code not in printed and "setup code" not in printed
        again = local.get("/console/setup", follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"] == "/console/login"
