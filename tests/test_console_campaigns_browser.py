"""The show-running console pages in a real headless Chromium (same setup as tests/test_console_browser.py):
the first run (no owner yet: the login page points to /console/setup, a wrong one-time code is refused,
the right one creates the owner and logs them in), the rooms page (the viewer page's absolute link and
its QR code), and the campaigns page (create, edit, pause, resume, and the budget burn-down chart after
coupons are issued and one is used). Screenshots go to test-artifacts/console/ (show-*.png)."""

from __future__ import annotations

import pytest

from tests.test_console_browser import ARGS, ARTIFACTS, CHROMIUM, ECHARTS, HAVE_PLAYWRIGHT

M = "demo"
pytestmark = [
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright (PyPI) not installed"),
    pytest.mark.skipif(not CHROMIUM or not __import__("pathlib").Path(CHROMIUM).exists(), reason="no Chromium"),
    pytest.mark.skipif(not ECHARTS.exists(), reason="echarts not vendored: run scripts/install_console_deps.sh"),
]


@pytest.fixture()
def site(tmp_path, demo_root, use_embedder):
    from tests.support.console import ServerThread, console_app, make_container

    c = make_container(tmp_path, demo_root, use_embedder)
    app = console_app(c)
    with ServerThread(app) as srv:
        yield srv.url, app, c


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"show-{name}.png"), full_page=True)


def test_first_run_rooms_and_campaigns(site):
    from playwright.sync_api import expect, sync_playwright

    from console.first_run import pending_code

    url, app, c = site
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
            page.set_default_timeout(20_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # --- first run: no owner yet -----------------------------------------------------------
            page.goto(f"{url}/console/login")
            shot(page, "01-login-first-run")
            page.click("#setup-link")
            expect(page).to_have_url(f"{url}/console/setup")
            code = pending_code(app)
            page.fill("#setup-code", "0000-0000-0000-0000")
            page.fill("#setup-username", "boss")
            page.fill("#setup-password", "a-long-password-1")
            page.fill("#setup-password2", "a-long-password-1")
            page.click("#setup-submit")
            expect(page.locator("#setup-error")).to_contain_text("设置码不对")
            shot(page, "02-setup-wrong-code")
            page.fill("#setup-code", code)
            page.fill("#setup-password", "a-long-password-1")
            page.fill("#setup-password2", "a-long-password-1")
            page.click("#setup-submit")
            expect(page).to_have_url(f"{url}/console/m/{M}/rooms")
            assert pending_code(app) is None  # used once: the page now sends to the login form
            page2 = browser.new_page()
            page2.goto(f"{url}/console/setup")
            expect(page2).to_have_url(f"{url}/console/login")
            page2.close()

            # --- rooms: the viewer link and its QR code ---------------------------------------------
            page.fill("#room-id", "spring")
            page.fill("#room-title", "春季专场")
            page.click("#room-create")
            row = page.locator("#rooms tr[data-room='spring']")
            expect(row.locator(".viewer-link a")).to_have_text(f"{url}/rooms/spring")
            expect(row.locator(".viewer-link a")).to_have_attribute("href", f"{url}/rooms/spring")
            qr = row.locator("img.qr")
            expect(qr).to_be_visible()
            page.wait_for_function("document.querySelector(\"tr[data-room='spring'] img.qr\").naturalWidth > 0")
            shot(page, "03-rooms-link-qr")
            row.locator("a[href^='/console/']").click()  # the row's dashboard link (as test_console_browser does)
            expect(page).to_have_url(f"{url}/console/m/{M}/rooms/spring")

            # --- campaigns: create, edit, pause, resume, burn-down --------------------------------
            page.click("a[data-nav='campaigns']")
            expect(page).to_have_url(f"{url}/console/m/{M}/campaigns")
            page.fill("#cf-title", "直播间专享满99减10")
            page.fill("#cf-amount", "10")
            page.fill("#cf-threshold", "99")
            page.fill("#cf-budget", "20")
            page.fill("#cf-limit", "1")
            page.check("#cf-members")
            page.click("#cf-submit")
            rows = page.locator("#campaigns tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("满99减10")
            expect(rows.first).to_contain_text("仅会员")
            cid = rows.first.get_attribute("data-campaign")

            page.click(f"button[data-edit='{cid}']")
            expect(page.locator("#cf-amount")).to_be_disabled()  # the offer stays fixed
            page.fill("#cf-budget", "30")
            page.click("#cf-submit")
            expect(rows.first.locator("td").nth(4)).to_contain_text("30")
            shot(page, "04-campaign-edited")

            page.click(f"button[data-pause='{cid}']")
            expect(rows.first).to_contain_text("已暂停")
            shot(page, "05-campaign-paused")
            page.click(f"button[data-resume='{cid}']")
            expect(rows.first).to_contain_text("进行中")

            aud = c.audience  # coupons issued and one used, as the live room would
            members = ["v1", "v2", "v3", "v4"]
            aud.upsert_viewers(M, [{"viewer_id": v, "member": True} for v in members] + [{"viewer_id": "guest"}])
            assert not aud.issue(M, "guest", cid, "k-guest").ok  # members only, checked by the ledger
            issued = [v for v in members if aud.issue(M, v, cid, f"k-{v}").ok]
            assert issued == members
            coupon = aud.coupons_of(M, issued[0])[0]
            assert aud.redeem(
                M, {"viewer_id": issued[0], "coupon_ids": [coupon["coupon_id"]], "order_id": "o1", "order_value": 120}
            ).ok
            page.reload()
            expect(rows.first.locator("td.issued")).to_have_text(str(len(issued)))
            expect(rows.first.locator("td.used")).to_have_text("1")
            expect(page.locator("#burndown-title")).to_contain_text(f"已发 {len(issued)}，已用 1")
            expect(page.locator("#chart-burndown canvas")).to_have_count(1)
            assert int(page.locator("#chart-burndown").get_attribute("data-points")) > 1
            shot(page, "06-campaign-burndown")
            assert not errors, errors
        finally:
            browser.close()
