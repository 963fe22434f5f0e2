"""The live-room page in a real browser: Debian's Chromium, headless, driven by Playwright (its own
browser downloads are never used), with a fake microphone playing a WAV made by espeak-ng.

Unmarked (CI runs it): hands-free, a spoken question comes back as a transcript, an answer and
audio played by the page's AudioWorklet. ``slow``: text chat and push-to-talk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sim.voice_clips import serve_in_thread, silence, synth, write_wav

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).exists()), None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/install_voice_deps.sh)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]


def launch(p, wav: Path):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )


@pytest.fixture()
def served(demo_container):
    from core.provision import model_path
    from server import create_app
    from voice.api import ensure_voice_routes
    from voice.services import get_voice_services

    if not (model_path(demo_container.settings, "whisper-base") / "model.bin").is_file():
        pytest.skip("Whisper base not provisioned (liveroom models install)")
    app = create_app(demo_container, start_llm=False)
    ensure_voice_routes(app)
    with serve_in_thread(app) as host:
        get_voice_services(app).load_models()  # as the page's own warm-up would, before the mic opens
        yield host


def test_browser_asks_by_voice_and_hears_the_answer(served, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    wav = write_wav(tmp_path / "question.wav", silence(1.5) + synth("how much is the sea salt almond?") + silence(8))
    with sync_api.sync_playwright() as p:
        browser = launch(p, wav)
        try:
            page = browser.new_context(bypass_csp=True).new_page()  # (Playwright evaluates strings)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://{served}/rooms/r1?lang=en&merchant=demo")
            assert page.title().startswith("LiveRoom")
            page.click("#handsfree")  # a user gesture: the page opens the mic and the voice socket
            page.wait_for_function(
                "window.liveroom.audioBytesIn > 32000 && window.liveroom.played > 8000", timeout=60_000
            )
            stats = page.evaluate("window.liveroom")
            assert "sea salt" in stats["transcripts"][0].lower()
            assert "72" in stats["answers"][0]
            assert stats["micPeak"] > 1000 and not stats["errors"] and not errors
            assert {"ready", "started", "transcript", "answer", "bot.started_speaking", "turn.metrics"} <= set(
                stats["events"]
            )
            bubbles = page.locator(".msg.bot").all_inner_texts()
            assert any("72" in b for b in bubbles)
        finally:
            browser.close()


@pytest.mark.slow
def test_browser_text_chat_and_push_to_talk(served, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    wav = write_wav(tmp_path / "q.wav", silence(2.5) + synth("is the sea salt almond in stock?") + silence(8))
    with sync_api.sync_playwright() as p:
        browser = launch(p, wav)
        try:
            page = browser.new_context(bypass_csp=True).new_page()  # (Playwright evaluates strings)
            page.goto(f"http://{served}/rooms/r1?lang=zh&merchant=demo")
            page.fill("#text", "海盐巴旦木多少钱")
            page.click("#send")
            page.wait_for_function("window.liveroom.answers.length > 0", timeout=20_000)
            assert "72" in page.evaluate("window.liveroom.answers[0]")
            # push-to-talk, in an English room: hold the button while the fake mic speaks
            page.select_option("#lang", "en")
            ptt = page.locator("#ptt")
            box = ptt.bounding_box()
            page.mouse.move(box["x"] + 5, box["y"] + 5)
            page.mouse.down()
            page.wait_for_timeout(6000)
            page.mouse.up()
            page.wait_for_function(
                "window.liveroom.transcripts.length > 0 && window.liveroom.audioBytesIn > 0", timeout=30_000
            )
            assert "stock" in page.evaluate("window.liveroom.transcripts[0]").lower()
        finally:
            browser.close()
