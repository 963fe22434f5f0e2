"""The viewer page in a real headless Chromium on a phone-sized screen (390x844, touch), with the page's
own Content-Security-Policy on: a typed question shows the typing indicator while a deliberately slow
answer is coming and the product card (name, live price, stock) of the product the answer was about;
the picture button uploads a photo and asks about it; labels are all Chinese, then all English after the
picker changes; the icons are inline SVG with a size (nothing waits on an emoji font). Screenshots go to
test-artifacts/viewer/."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.test_console_browser import ARGS, CHROMIUM, HAVE_PLAYWRIGHT

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "viewer"
PHOTO = ROOT / "knowledge" / "demo" / "images" / "SN-002.png"
SLOW_SECS = 2.0  # the answer waits this long before its first words (the LLM path takes 10-15 s)

pytestmark = [
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright (PyPI) not installed"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]


@pytest.fixture()
def site(demo_container):
    from server import create_app
    from tests.support.console import ServerThread

    agent = demo_container.agent
    fast = agent.stream

    async def slow(msg):
        await asyncio.sleep(SLOW_SECS)
        async for ev in fast(msg):
            yield ev

    agent.stream = slow  # a slow answer, as on the LLM path
    with ServerThread(create_app(demo_container, start_llm=False)) as srv:
        yield srv.url


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_viewer_page_on_a_phone(site):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            ctx = browser.new_context(
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                locale="zh-CN",
            )
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{site}/rooms/r1?lang=zh")

            # one language: every label Chinese
            expect(page.locator("#send")).to_have_text("发送")
            expect(page.locator("#ptt")).to_have_text("按住说话")
            labels = " ".join(page.locator("header, #chat, #voice").all_inner_texts())
            assert not re.search(r"[A-Za-z]{3,}", labels.replace("English", "")), labels
            # icons: inline SVG with a real size, on the buttons that carry one
            for sel in ("#photo svg", "#send svg", "#ptt svg", "#stop svg"):
                box = page.locator(sel).bounding_box()
                assert box and box["width"] >= 12 and box["height"] >= 12, sel
            # nothing overflows the phone's width
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

            # a slow answer: the typing indicator until the first words, then the product card
            page.fill("#text", "海盐巴旦木多少钱")
            page.click("#send")
            expect(page.locator("#typing")).to_be_visible()
            expect(page.locator("#typing")).to_contain_text("正在输入")
            shot(page, "01-phone-typing")
            bot = page.locator(".msg.bot").first
            expect(bot).to_contain_text("72", timeout=30_000)
            expect(page.locator("#typing")).to_be_hidden()
            card = page.locator("#product-card")
            expect(card).to_be_visible()
            expect(card).to_contain_text("海盐巴旦木")
            expect(page.locator("#card-price")).to_have_text("¥72")
            expect(page.locator("#card-stock")).to_contain_text("库存")
            shot(page, "02-phone-answer-and-product-card")

            # a picture: the button opens the file picker; the photo is uploaded and asked about
            with page.expect_file_chooser() as fc:
                page.click("#photo")
            fc.value.set_files(str(PHOTO))
            expect(page.locator(".msg.viewer img.shot")).to_be_visible()
            expect(page.locator(".msg.bot")).to_have_count(2, timeout=30_000)
            assert not page.locator(".msg.error").count(), page.locator(".msg.error").all_inner_texts()
            shot(page, "03-phone-picture")

            # the picker switches every label to English
            page.select_option("#lang", "en")
            expect(page.locator("#send")).to_have_text("Send")
            expect(page.locator("#ptt")).to_have_text("Hold to talk")
            expect(page.locator("#photo")).to_have_attribute("title", "Ask with a photo")
            labels = " ".join(page.locator("header, #chat, #voice").all_inner_texts())
            assert not re.search(r"[\u4e00-\u9fff]", labels.replace("中文", "")), labels
            assert page.locator(".msg.bot").first.get_attribute("data-ai") == "AI-generated"
            expect(page.locator("#card-stock")).to_contain_text("in stock")
            shot(page, "04-phone-english")
            assert not errors, errors
        finally:
            browser.close()
