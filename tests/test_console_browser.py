"""The console in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium; installed by
scripts/install_console_deps.sh). One end-to-end flow, unmarked: log in, upload a catalog (a bad row is
shown per row, then the fixed file previews and publishes with progress), run a retrieval test, edit a
fact and see the answer change, compare versions, edit a prompt (a broken one cannot be published),
preview it side by side, publish, restore the old version, open a room's dashboard and watch the charts
update while the simulator runs, file a thumbs-down. Hostile product names and danmaku stay text (no
dialog, no injected element). Screenshots of every page go to test-artifacts/console/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = os.environ.get("LIVEROOM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ECHARTS = ROOT / "console" / "static" / "vendor" / "echarts.min.js"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

try:
    from playwright import sync_api as _sync_api  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:  # pragma: no cover
    HAVE_PLAYWRIGHT = False

pytestmark = [
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright (PyPI) not installed"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}: run scripts/install_console_deps.sh"
    ),
    pytest.mark.skipif(not ECHARTS.exists(), reason="echarts not vendored: run scripts/install_console_deps.sh"),
]

M = "demo"
HOSTILE_NAME = "<img src=x onerror=alert(1)>晨光燕麦"
HOSTILE_DANMAKU = '<script>alert("danmaku")</script><img src=x onerror=alert(2)>小蓝瓶多少钱'
BAD_CSV = (
    "sku,商品名称,直播价,库存,卖点\n"
    f"OAT-001,{HOSTILE_NAME},12.9,100,早餐好搭档\n"
    "OAT-002,晨光 黑芝麻糊 500g,十块,50,香浓顺滑\n"
)
GOOD_CSV = BAD_CSV.replace("十块", "29.9")


@pytest.fixture(scope="module")
def site(tmp_path_factory, demo_root, use_embedder):
    from console.service import get_console
    from core.settings import ConsoleSettings
    from tests.support.console import FakeLLM, ServerThread, console_app, make_container

    tmp = tmp_path_factory.mktemp("console-browser")
    c = make_container(tmp, demo_root, use_embedder, llm=FakeLLM())
    # every publish runs the regression set first: bounded here (the changed cases + a fixed sample), unpaced,
    # so the upload's publish check ends inside the page's wait (the gate itself: test_regression_gate.py)
    c.regression.pace, c.regression.max_cases = 0.0, 120
    app = console_app(c, ConsoleSettings(simulator="*"))
    with ServerThread(app) as srv:
        get_console(app).accounts.create_user(M, "owner1", "owner-password-1", "owner", "店主小王")
        yield srv.url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def csv_file(text: str) -> dict:
    return {"name": "早餐.csv", "mimeType": "text/csv", "buffer": text.encode()}


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def chart_series(page, el_id: str) -> list[list[float]]:
    return page.evaluate(f"""() => echarts.getInstanceByDom(document.getElementById('{el_id}'))
        .getOption().series.map(s => s.data)""")


def test_console_end_to_end(site, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page.set_default_timeout(20_000)
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))

    # --- log in -------------------------------------------------------------------------------
    page.goto(f"{site}/console/m/{M}/kb")
    expect(page).to_have_url(f"{site}/console/login?next=/console/m/{M}/kb")
    page.fill("#username", "owner1")
    page.fill("#password", "wrong-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("用户名或密码错误")
    shot(page, "01-login")
    page.fill("#password", "owner-password-1")
    page.click("#login-submit")
    expect(page).to_have_url(f"{site}/console/m/{M}/kb")
    expect(page.locator("#kb-summary")).to_contain_text("65 个商品")

    # --- upload: a bad row is shown per row; the fixed file previews and publishes ---------------
    page.set_input_files("#upload-files", files=[csv_file(BAD_CSV)])
    page.click("#upload-submit")
    issues = page.locator("#upload-issues tbody tr")
    expect(issues).to_have_count(1)
    expect(issues.first).to_contain_text("早餐.csv")
    expect(issues.first.locator("td").nth(1)).to_have_text("3")
    expect(issues.first).to_contain_text("直播价")
    expect(issues.first).to_contain_text("不是有效数字")
    shot(page, "02-kb-upload-row-error")
    page.set_input_files("#upload-files", files=[csv_file(GOOD_CSV)])
    page.click("#upload-submit")
    expect(page.locator("#upload-ok")).to_contain_text("2 个商品")
    expect(page.locator("#preview-facts tbody tr").first).to_be_visible()
    expect(page.locator("#preview-facts")).to_contain_text("晨光 黑芝麻糊 500g（OAT-002）直播价29.9元")
    shot(page, "03-kb-preview")
    page.click("#upload-publish")
    # the publish check runs the merchant's regression cases first (with its progress bar): give it time
    expect(page.locator("#progress")).to_have_attribute("data-state", "done", timeout=90_000)
    expect(page.locator("#progress-text")).to_contain_text("已发布 v0002")
    expect(page.locator("#kb-summary")).to_contain_text("67 个商品")
    expect(page.locator("#products tr[data-sku='OAT-001'] .pname")).to_have_text(HOSTILE_NAME)  # text, not markup
    shot(page, "04-kb-products")

    # --- retrieval test --------------------------------------------------------------------------
    page.click("a[data-nav='search']")
    page.fill("#search-q", "小蓝瓶多少钱")
    page.click("#search-submit")
    expect(page.locator("#search-answer")).to_contain_text("129元")
    expect(page.locator("#search-hits tbody tr").first).to_contain_text("SK-001")
    expect(page.locator("#search-hits tbody tr.chg").first).to_contain_text("直播价129元")  # the cited fact
    shot(page, "05-retrieval-test")

    # --- edit a fact inline; the answer changes ----------------------------------------------------
    page.goto(f"{site}/console/m/{M}/kb/products/SK-001")
    expect(page.locator("input[name=price]")).to_have_value("129")
    page.fill("input[name=price]", "119")
    page.click("#product-preview")
    # the price fact, and the 30ml option the name points at, which carried the old price and follows it
    expect(page.locator("#product-facts li.chg")).to_have_count(2)
    expect(page.locator("#product-facts li.chg").first).to_contain_text("直播价119元")
    page.click("#product-save")
    expect(page.locator("#product-status")).to_contain_text("已发布 v0003", timeout=90_000)  # after its check
    shot(page, "06-product-edit")
    page.goto(f"{site}/console/m/{M}/search")
    page.fill("#search-q", "小蓝瓶多少钱")
    page.click("#search-submit")
    expect(page.locator("#search-answer")).to_contain_text("119元")

    # --- versions: diff ----------------------------------------------------------------------------
    page.click("a[data-nav='versions']")
    expect(page.locator("#versions tbody tr")).to_have_count(3)
    page.locator("#versions tbody tr[data-version='v0003'] button").first.click()
    expect(page.locator("#diff")).to_contain_text("直播价：129 → 119")
    shot(page, "07-kb-versions-diff")

    # --- prompts: broken → refused; draft → preview side by side → publish → restore --------------
    page.click("a[data-nav='prompts']")
    page.locator("#prompt-list tr[data-prompt='system'] a").click()
    ta = page.locator("#prompt-text")
    expect(ta).not_to_have_value("")
    original = ta.input_value()
    ta.fill(original.replace("${shop}", "${shopp}"))
    expect(page.locator("#prompt-problems")).to_contain_text("未知变量")
    expect(page.locator("#prompt-publish")).to_be_disabled()
    draft = original.replace("你只根据", "\n开场白：宝子们看这里\n你只根据") + "\n<script>alert('prompt')</script>"
    ta.fill(draft)
    expect(page.locator("#prompt-problems")).to_contain_text("模板检查通过")
    page.fill("#preview-q", "主播今天好漂亮呀")
    page.click("#preview-run")
    expect(page.locator("#preview-draft-answer")).to_contain_text("宝子们看这里")
    expect(page.locator("#preview-published-answer .text")).not_to_be_empty()
    assert "宝子们" not in page.locator("#preview-published-answer").inner_text()
    shot(page, "08-prompt-preview")
    page.fill("#prompt-note", "加开场白")
    page.click("#prompt-publish")
    expect(page.locator("#prompt-state")).to_contain_text("已发布 v1")
    expect(page.locator("#prompt-history tbody tr")).to_have_count(2)
    page.locator("#prompt-history tr[data-version='0'] button", has_text="与编辑框对比").click()
    expect(page.locator("#prompt-diff .add").first).to_be_visible()
    shot(page, "09-prompt-history")
    restore = page.locator("#prompt-history tr[data-version='0'] button.restore")
    restore.click()
    restore.click()  # the second click confirms
    expect(page.locator("#prompt-state")).to_contain_text("已发布 v2")
    assert "开场白" not in ta.input_value()
    assert ta.input_value() == original

    # --- the live dashboard while the simulator runs -------------------------------------------------
    page.click("a[data-nav='rooms']")
    page.fill("#room-id", "spring")
    page.fill("#room-title", "春季护肤专场")
    page.click("#room-create")
    page.locator("#rooms tr[data-room='spring'] a[href^='/console/']").click()  # the dashboard, not the viewer link
    expect(page.locator("#live-updated")).to_contain_text("更新于")
    r = page.request.post(
        f"{site}/api/rooms/spring/ask", data={"merchant": M, "viewer_id": "<b>v1</b>", "text": HOSTILE_DANMAKU}
    )
    assert r.ok
    page.click("#sim-toggle")
    expect(page.locator("#sim-toggle")).to_have_text("停止模拟直播")
    expect(page.locator("#kpi-viewers")).not_to_have_text("0", timeout=15_000)
    first = chart_series(page, "chart-traffic")
    count0 = int(page.locator("#live-updated").get_attribute("data-count"))
    for _ in range(60):  # two more polls of the dashboard (no wait_for_function: the CSP forbids eval)
        if int(page.locator("#live-updated").get_attribute("data-count")) >= count0 + 2:
            break
        page.wait_for_timeout(250)
    later = chart_series(page, "chart-traffic")
    assert sum(later[0]) > sum(first[0]) or sum(later[2]) > sum(first[2]), (first, later)  # the chart moved
    expect(page.locator("#answers li").first).to_be_visible()
    expect(page.locator("#answers .cites li").first).to_be_visible()  # answers carry their citations
    expect(page.locator(".danmaku", has_text="<script>alert")).to_have_count(1)  # shown as text
    expect(page.locator("#coupons")).to_be_visible()
    thumbs = page.locator("#answers li button.thumbs").first
    thumbs.click()
    expect(page.locator("#answers li button.thumbs", has_text="已送复核").first).to_be_visible()
    shot(page, "10-dashboard")
    page.click("#sim-toggle")
    expect(page.locator("#sim-toggle")).to_have_text("启动模拟直播")

    page.click("a[data-nav='reviews']")
    expect(page.locator("#reviews li").first).to_be_visible()
    shot(page, "11-reviews")
    page.click("a[data-nav='team']")
    expect(page.locator("#audit tbody tr").first).to_be_visible()
    expect(page.locator("#audit")).to_contain_text("prompt.restore")
    shot(page, "12-team-audit")

    # --- nothing hostile ever became markup ----------------------------------------------------------
    for path in ("kb", "rooms/spring"):
        page.goto(f"{site}/console/m/{M}/{path}")
        page.wait_for_timeout(800)
        assert page.locator("img[src='x']").count() == 0
    assert dialogs == [], dialogs
    assert errors == [], errors
    page.click("#logout")
    expect(page).to_have_url(f"{site}/console/login")
    page.close()
