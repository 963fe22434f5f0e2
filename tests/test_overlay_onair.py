"""The virtual host on air: the console starts a show for a room; its captions and voice reach the room's
overlay feed; hot danmaku from a connector interrupt it (answered aloud) and it resumes; pause holds it at
a sentence boundary, resume continues, stop ends it. The show clock runs 20× (the room's clock), the voice is
espeak-ng when installed."""

from __future__ import annotations

import json
import shutil
import time

from connectors.store import ConnectorConfig
from connectors.webhook import sign

M, ROOM = "demo", "air-room"
RUNDOWN = """
title: 测试专场
loop: true
hours: 1
pace: {chars_per_second: 4.5, gap_seconds: 1, interaction_every_s: 90}
segments:
  - {type: opening, minutes: 1}
  - {type: product, sku: SK-001, minutes: 10}
  - {type: closing, minutes: 1}
"""


async def _setup(app, clock):
    from connectors.api import get_service
    from host.room import HostHub

    app.state.host_hub = HostHub.from_container(app.state.container, clock=clock)
    return get_service(app)


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


def test_show_on_air_with_interruptions_pause_and_stop(tmp_path, demo_root, use_embedder):
    from fastapi.testclient import TestClient

    from core.clock import ScaledClock
    from tests.support.console import console_app, grant, make_container

    c = make_container(tmp_path, demo_root, use_embedder)
    c.rooms.ensure(M, ROOM, "虚拟主播", "test")
    app = console_app(c)
    with TestClient(app) as client:
        svc = client.portal.call(_setup, app, ScaledClock(20))
        secret = svc.create(
            ConnectorConfig(connector_id="air", merchant=M, room_id=ROOM, kind="webhook", platform="ks")
        )
        grant(client, M)
        feed = svc.feeds.bus(ROOM).subscribe(["audio"], maxsize=10_000)
        url = f"/api/merchants/{M}/rooms/{ROOM}/show"
        assert client.get(url).json()["state"] == "stopped"
        bad = client.post(url, json={"action": "start", "rundown_yaml": "segments: [{type: product, sku: NOPE}]"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_rundown"
        r = client.post(url, json={"action": "start", "rundown_yaml": RUNDOWN})
        assert r.status_code == 200 and r.json()["state"] == "running", r.text
        assert client.post(url, json={"action": "start", "rundown_yaml": RUNDOWN}).status_code == 409
        room = svc.host.room(M, ROOM)
        lines = room.bus.subscribe(["line"], maxsize=10_000)

        def wait(pred, timeout: float = 60) -> None:
            deadline = time.time() + timeout
            while time.time() < deadline:
                if pred():
                    return
                client.portal.call(_sleep, 0.1)
            raise AssertionError("timed out")

        # once the product is on screen, six viewers ask the same thing through the connector: the host answers it
        # aloud between two sentences (before its script gets there: no sentence is said twice in a show), resumes
        wait(lambda: room.context_sku == "SK-001")
        for i in range(6):
            body = json.dumps(
                {"events": [{"kind": "comment", "msg_id": f"q{i}", "user_id": f"v{i}", "text": "敏感肌能用吗"}]}
            )
            ts = str(int(time.time()))
            h = {"X-LiveRoom-Timestamp": ts, "X-LiveRoom-Signature": sign(secret, ts, body.encode())}
            assert client.post("/connectors/webhook/air", content=body, headers=h).status_code == 200
        wait(lambda: len(lines) >= 3)
        if shutil.which("espeak-ng"):
            wait(lambda: len(feed) > 0)  # the host's voice reaches the overlay feed
        show = svc.onair.get(ROOM)
        wait(lambda: any(ln.kind == "answer" for ln in show.loop.said))  # answered aloud
        answer = next(ln for ln in show.loop.said if ln.kind == "answer")
        # counted once the answer has been said to the end (it is in `said` as soon as it starts)
        wait(lambda: show.loop.report.answered_clusters >= 1)
        wait(lambda: show.loop.seq > answer.seq + 1)  # the script goes on after the answer
        said = []
        while (item := lines.get_nowait()) is not None:
            said.append(item[1])
        assert answer.seq in [ln.seq for ln in said]  # the answer went to the room's text track (the caption)
        # pause: held at a sentence boundary; resume: it goes on; stop: it ends
        assert client.post(url, json={"action": "pause"}).json()["state"] == "paused"
        client.portal.call(_sleep, 1.0)
        held = show.loop.seq
        client.portal.call(_sleep, 1.5)
        assert show.loop.seq == held
        assert client.post(url, json={"action": "resume"}).json()["state"] == "running"
        wait(lambda: show.loop.seq > held)
        status = client.post(url, json={"action": "stop"}).json()
        assert status["state"] == "stopped" and status["lines"] > 3 and status["answered_clusters"] >= 1
        if shutil.which("espeak-ng"):
            assert status["voiced"] > 0 and status["audio_s"] > 0
        assert client.post(url, json={"action": "pause"}).status_code == 409
