"""The OBS overlay in a real headless Chromium (OBS's browser source is Chromium; Playwright drives Debian's
/usr/bin/chromium like tests/test_console_browser.py). One flow, unmarked: the page is transparent, a
wrong token is refused, a danmaku from a connector is answered on the overlay with the AI-generated
label (the delay from the agent finishing to the page showing it is measured), hot questions appear,
the virtual host's line is captioned and its audio played (bytes counted by the page), the human host's
teleprompter shows talking points, and the page recovers by itself after the server restarts.
Screenshots and the measured figures go to test-artifacts/overlay/."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "overlay"
CHROMIUM = os.environ.get("LIVEROOM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",  # OBS's browser source plays audio without a click
]

try:
    from playwright import sync_api as _sync_api  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:  # pragma: no cover
    HAVE_PLAYWRIGHT = False

pytestmark = [
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright (PyPI) not installed"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]

M, ROOM = "demo", "ov-room"


class Server:
    """uvicorn on a fixed loopback port in a thread, so it can be stopped and started again."""

    def __init__(self, app, port: int):
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets")
        )
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.run, name="overlay-test-server", daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build(tmp: Path, demo_root, use_embedder):
    """A container + app on ``tmp`` (a copy of the demo KB) with the room and a webhook connector."""
    from tests.support.console import console_app, make_container

    c = make_container(tmp, demo_root, use_embedder)
    c.rooms.ensure(M, ROOM, "叠加层测试", "test")
    answered: list[tuple[float, str]] = []
    c.answer_bus.subscribe(lambda ev: answered.append((time.time(), ev.answer)) if ev.room_id == ROOM else None)
    return c, console_app(c), answered


def send(url: str, secret: str, msg_id: str, text: str, user: str = "u-1") -> None:
    import httpx

    from connectors.webhook import sign

    body = json.dumps({"events": [{"kind": "comment", "msg_id": msg_id, "user_id": user, "text": text}]}).encode()
    ts = str(int(time.time()))
    r = httpx.post(
        f"{url}/connectors/webhook/ovwh",
        content=body,
        headers={"X-LiveRoom-Timestamp": ts, "X-LiveRoom-Signature": sign(secret, ts, body)},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def overlay_state(page) -> dict:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.liveroomOverlay))")


def wait_for(page, js: str, timeout_s: float = 30) -> None:
    page.wait_for_function(js, timeout=timeout_s * 1000)


def test_overlay_in_chromium(tmp_path, demo_root, use_embedder):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from connectors import overlay
    from connectors.store import ConnectorConfig, ConnectorStore
    from console.service import get_console

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = ConnectorStore(tmp_path / "connectors")
    _, secret = store.create(
        ConnectorConfig(connector_id="ovwh", merchant=M, room_id=ROOM, kind="webhook", platform="kuaishou")
    )
    token = overlay.mint(store.overlay_key(), M, ROOM)
    other_room_token = overlay.mint(store.overlay_key(), M, "someone-elses-room")
    port = free_port()
    figures: dict = {}

    c, app, answered = build(tmp_path, demo_root, use_embedder)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            with Server(app, port) as srv:
                _, api_token = get_console(app).accounts.create_token(M, "obs", "operator", "test")
                auth = {"Authorization": f"Bearer {api_token}"}
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))

                # a token for another room is refused (page and socket)
                bad = page.goto(f"{srv.url}/overlay/{ROOM}?token={other_room_token}")
                assert bad.status == 401 and "another room" in page.content()

                page.goto(f"{srv.url}/overlay/{ROOM}?token={token}")
                wait_for(page, "() => window.liveroomOverlay && window.liveroomOverlay.connected")
                # transparent: the page paints nothing but its cards
                assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"
                assert page.evaluate("getComputedStyle(document.documentElement).backgroundColor") == "rgba(0, 0, 0, 0)"
                page.screenshot(path=str(ARTIFACTS / "01-empty.png"), omit_background=True)
                img = Image.open(ARTIFACTS / "01-empty.png").convert("RGBA")
                assert img.getpixel((5, 5))[3] == 0 and img.getpixel((640, 360))[3] == 0
                assert max(img.getchannel("A").getdata()) == 0  # nothing painted at all while idle

                # a connector's danmaku → the agent → the overlay, with the AI label
                send(srv.url, secret, "m-1", "小蓝瓶多少钱")
                wait_for(page, "() => window.liveroomOverlay.answers >= 1")
                st = overlay_state(page)
                assert "129" in st["lastAnswer"]
                assert page.locator("#answers .answer .label").first.inner_text() == "AI生成"
                delays = [st["lastAnswerWall"] - answered[-1][0] * 1000]
                for i, q in enumerate(["包邮吗", "敏感肌能用吗", "七天无理由吗"]):
                    n = overlay_state(page)["answers"]
                    send(srv.url, secret, f"m-t{i}", q, user=f"u-t{i}")
                    wait_for(page, f"() => window.liveroomOverlay.answers > {n}")
                    delays.append(overlay_state(page)["lastAnswerWall"] - answered[-1][0] * 1000)
                figures["answer_to_overlay_ms"] = [round(d, 1) for d in delays]
                assert sorted(delays)[len(delays) // 2] <= 300, delays  # the bar, on the median of 4

                # hot questions: six viewers ask the same thing
                for i in range(6):
                    send(srv.url, secret, f"h-{i}", "敏感肌能用吗？", user=f"hot-{i}")
                wait_for(page, "() => document.querySelectorAll('#hot-list li').length > 0")
                assert "人" in page.locator("#hot-list li").first.inner_text()

                # the virtual host's line: caption + voice (espeak-ng), bytes played counted by the page
                import httpx

                r = httpx.post(
                    f"{srv.url}/api/merchants/{M}/rooms/{ROOM}/overlay/say",
                    json={"text": "欢迎来到直播间，喜欢的宝宝点点关注"},
                    headers=auth,
                    timeout=60,
                )
                assert r.status_code == 200, r.text
                said = r.json()
                wait_for(page, "() => window.liveroomOverlay.captions >= 1")
                assert page.locator("#caption-text").inner_text() == said["text"]
                if said["audio_bytes"]:
                    wait_for(page, f"() => window.liveroomOverlay.audioBytesReceived >= {said['audio_bytes']}")
                    wait_for(page, f"() => window.liveroomOverlay.audioBytesPlayed >= {said['audio_bytes']}", 60)
                    figures["audio_bytes_played"] = overlay_state(page)["audioBytesPlayed"]
                page.screenshot(path=str(ARTIFACTS / "02-answers-caption-hot.png"), omit_background=True)

                # the human host's teleprompter: talking points
                prompter = browser.new_page(viewport={"width": 1280, "height": 720})
                prompter.goto(f"{srv.url}/overlay/{ROOM}?token={token}&view=prompter")
                wait_for(prompter, "() => window.liveroomOverlay && window.liveroomOverlay.connected")
                for i in range(6, 12):
                    send(srv.url, secret, f"p-{i}", "孕妇可以用吗", user=f"hot-{i}")
                wait_for(prompter, "() => (window.liveroomOverlay.suggestions || 0) >= 1")
                assert prompter.locator("#prompter-say").inner_text()
                prompter.screenshot(path=str(ARTIFACTS / "03-prompter.png"), omit_background=True)
            # --- the server goes away ----------------------------------------------------------------
            wait_for(page, "() => !window.liveroomOverlay.connected")
            page.screenshot(path=str(ARTIFACTS / "04-server-down.png"), omit_background=True)
            assert page.locator("#status").inner_text()
            before = overlay_state(page)["answers"]
            c2, app2, answered2 = build(tmp_path, demo_root, use_embedder)
            with Server(app2, port) as srv:
                wait_for(page, "() => window.liveroomOverlay.connected", 60)  # reconnected by itself
                send(srv.url, secret, "after-restart", "包邮吗", user="u-9")
                wait_for(page, f"() => window.liveroomOverlay.answers > {before}")
                assert "包邮" in overlay_state(page)["lastAnswer"]
                page.screenshot(path=str(ARTIFACTS / "05-after-restart.png"), omit_background=True)
                figures["reconnects"] = overlay_state(page)["reconnects"]
            assert not errors, errors
        finally:
            browser.close()
    (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    print("overlay figures:", figures)
