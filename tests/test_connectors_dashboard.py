"""Connector health on the console's room dashboard, in a real headless Chromium: the connector's row
(state, events, refused forgeries, dead letters), the alert banner when it goes quiet while the show is
live, the dead letters listed and replayed from the page, and the OBS overlay URL minted there.
Screenshots in test-artifacts/connectors/."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.test_console_browser import ARGS, CHROMIUM, HAVE_PLAYWRIGHT

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "connectors"
M, ROOM = "demo", "dash-room"

pytestmark = [
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright (PyPI) not installed"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]


def post(url: str, secret: str, body: bytes, sig: str | None = None) -> int:
    import httpx

    from connectors.webhook import sign

    ts = str(int(time.time()))
    headers = {"X-LiveRoom-Timestamp": ts, "X-LiveRoom-Signature": sig or sign(secret, ts, body)}
    return httpx.post(f"{url}/connectors/webhook/dwh", content=body, headers=headers, timeout=30).status_code


def test_dashboard_shows_connector_health(tmp_path, demo_root, use_embedder):
    from playwright.sync_api import expect, sync_playwright

    from connectors.store import ConnectorConfig, ConnectorStore
    from console.service import get_console
    from tests.support.console import ServerThread, console_app, make_container

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    c = make_container(tmp_path, demo_root, use_embedder)
    c.rooms.ensure(M, ROOM, "平台连接看板", "test")
    _, secret = ConnectorStore(tmp_path / "connectors").create(
        ConnectorConfig(connector_id="dwh", merchant=M, room_id=ROOM, kind="webhook", platform="kuaishou")
    )
    app = console_app(c)
    with ServerThread(app) as srv, sync_playwright() as p:
        get_console(app).accounts.create_user(M, "owner1", "owner-password-1", "owner", "店主")
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
            page.set_default_timeout(20_000)
            page.goto(f"{srv.url}/console/m/{M}/rooms/{ROOM}")
            page.fill("#username", "owner1")
            page.fill("#password", "owner-password-1")
            page.click("#login-submit")
            row = page.locator("#connectors-rows tr[data-connector='dwh']")
            expect(row).to_have_attribute("data-state", "connected")

            ok = json.dumps({"events": [{"kind": "comment", "msg_id": "d-1", "user_id": "u", "text": "包邮吗"}]})
            assert post(srv.url, secret, ok.encode()) == 200
            assert post(srv.url, secret, ok.encode(), sig="sha256=00") == 401  # a forgery, refused
            assert post(srv.url, secret, b'{"events": [{"kind": "comment", "user_id": "u"}]}') == 400  # dead letter
            expect(row.locator("td").nth(4)).to_have_text("1")  # events
            expect(row.locator("td").nth(8)).to_have_text("1")  # refused
            expect(row.locator("td").nth(7)).to_have_text("1")  # dead letters
            row.locator("td").nth(7).locator("button").click()
            dead = page.locator("#connectors-dead .alert")
            expect(dead).to_have_count(1)
            expect(dead.first).to_contain_text("non-empty 'text'")
            dead.first.locator("button").click()  # replaying it unchanged fails: it stays, and says why
            expect(dead.first.locator("button")).to_contain_text("仍无法解析")

            # the show is live and the connector goes quiet: the dashboard says so
            svc = app.state.connectors
            svc.hub.runtime("dwh").health.quiet_after_s = 1.0
            live = page.request.post(
                f"{srv.url}/api/merchants/{M}/rooms/{ROOM}/live",
                data={"live": True},
                headers={"X-CSRF-Token": page.locator("meta[name='csrf-token']").get_attribute("content")},
            )
            assert live.ok, live.text()
            expect(row).to_have_attribute("data-state", "lagging", timeout=10_000)
            expect(page.locator("#connectors-alert")).to_contain_text("dwh")
            page.screenshot(path=str(ARTIFACTS / "01-dashboard-lagging.png"), full_page=True)
            # the room's alerts know too (host console, alert log)
            room = svc.host.room(M, ROOM)
            deadline = time.time() + 10
            while time.time() < deadline and not any(a.kind == "connector_lagging" for a in room.alerts.raised):
                time.sleep(0.2)
            assert any(a.kind == "connector_lagging" for a in room.alerts.raised)
            svc.hub.runtime("dwh").health.quiet_after_s = 60.0
            assert post(srv.url, secret, ok.replace("d-1", "d-2").encode()) == 200  # events again: connected
            expect(row).to_have_attribute("data-state", "connected", timeout=10_000)
            expect(page.locator("#connectors-alert")).to_be_hidden()
            outage = svc.hub.runtime("dwh").health.outages[-1]
            assert outage["state"] == "lagging" and outage["to"] is not None  # the outage is kept, with its end

            page.click("#overlay-url")
            expect(page.locator("#overlay-link")).to_contain_text(f"/overlay/{ROOM}?token=ovt1.")
            overlay_url = page.locator("#overlay-link").inner_text()
            page.screenshot(path=str(ARTIFACTS / "02-dashboard-overlay-url.png"), full_page=True)
            ov = browser.new_page()
            assert ov.goto(overlay_url).status == 200  # the minted URL opens the overlay

            # a new connector from the dashboard: its secret shown once, and it works
            page.locator("#connector-new summary").click()
            page.fill("#cn-id", "ks-new")
            page.fill("#cn-platform", "kuaishou")
            page.click("#cn-create")
            expect(page.locator("#cn-out")).to_contain_text("只显示这一次")
            new_secret = page.locator("#cn-out").get_attribute("data-secret")
            expect(page.locator("#connectors-rows tr[data-connector='ks-new']")).to_have_count(1)
            import httpx

            from connectors.webhook import sign

            body = ok.replace("d-1", "n-1").encode()
            ts = str(int(time.time()))
            r = httpx.post(
                f"{srv.url}/connectors/webhook/ks-new",
                content=body,
                headers={"X-LiveRoom-Timestamp": ts, "X-LiveRoom-Signature": sign(new_secret, ts, body)},
            )
            assert r.status_code == 200 and r.json()["accepted"] == 1
            assert new_secret not in json.dumps(page.request.get(f"{srv.url}/api/merchants/{M}/connectors").json())

            # the virtual host on air from the dashboard: start, pause, stop (the demo rundown)
            page.click("#show-controls button[data-show='start']")
            expect(page.locator("#show-state")).to_have_attribute("data-state", "running")
            ov.wait_for_function("() => window.liveroomOverlay.captions >= 1", timeout=30_000)  # on the overlay
            page.click("#show-controls button[data-show='pause']")
            expect(page.locator("#show-state")).to_have_attribute("data-state", "paused")
            page.click("#show-controls button[data-show='stop']")
            expect(page.locator("#show-state")).to_have_attribute("data-state", "stopped")
        finally:
            browser.close()
