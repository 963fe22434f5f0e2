"""One wire decoder (core/wire.py) behind every socket: the same malformed frame sent to the room
socket, the host console socket and the voice socket gets the same error code, and the connection
stays up (docs/protocol.md, "Error codes")."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from core import wire
from host.api import router as host_router
from server import create_app
from tests.support.access import open_room
from tests.support.console import grant
from tests.support.host import fast_embedder

BIG = "x" * (wire.MAX_TEXT_FRAME_BYTES + 1)

# (name, frame, expected code); `invalid` needs a frame type the socket knows, so it is per socket below
MALFORMED = [
    ("oversized", BIG, wire.FRAME_TOO_LARGE),
    ("not_json", "{not json", wire.BAD_JSON),
    ("json_array", "[1, 2]", wire.BAD_FRAME),
    ("missing_type", json.dumps({"text": "hi"}), wire.UNKNOWN_TYPE),
    ("unknown_type", json.dumps({"type": "dance"}), wire.UNKNOWN_TYPE),
]
INVALID = {  # a known type with a field of the wrong type
    "room": json.dumps({"type": "ask", "viewer_id": "v1", "text": 5}),
    "host": json.dumps({"type": "danmaku", "viewer_id": "v1", "text": 5}),
    "voice": json.dumps({"type": "ask", "text": 5}),
}
EXPECTED = [code for _, _, code in MALFORMED] + [wire.INVALID]


def frames(sock: str) -> list[str]:
    return [f for _, f, _ in MALFORMED] + [INVALID[sock]]


# --- the decoder itself ---------------------------------------------------------------------
class _Ask(BaseModel):
    text: str


@pytest.mark.parametrize(
    "name, raw, code", MALFORMED + [("invalid", json.dumps({"type": "ask", "text": 5}), wire.INVALID)]
)
def test_decode_text_codes(name, raw, code):
    with pytest.raises(wire.WireError) as e:
        wire.decode_text(raw, {"ask": _Ask, "ping": None})
    assert e.value.code == code and e.value.message
    assert e.value.code in wire.CODES


def test_decode_text_ok_binary_and_utf8():
    kind, m = wire.decode_text('{"type": "ask", "text": "hi"}', {"ask": _Ask})
    assert kind == "ask" and m.text == "hi"
    assert wire.decode_text('{"type": "ping"}', {"ping": None}) == ("ping", {"type": "ping"})
    with pytest.raises(wire.WireError) as e:
        wire.decode_text(None, {"ping": None})
    assert e.value.code == wire.BINARY_NOT_SUPPORTED
    with pytest.raises(wire.WireError) as e:
        wire.decode_text(b"\xff\xfe", {"ping": None})
    assert e.value.code == wire.BAD_JSON
    assert wire.error_frame("bad_json", "m", id="q") == {"type": "error", "code": "bad_json", "message": "m", "id": "q"}


# --- the three sockets ------------------------------------------------------------------------
@pytest.fixture()
def client(demo_container, tmp_path):
    from audience.service import AudienceService

    demo_container.__dict__["embedder"] = fast_embedder()
    demo_container.__dict__["audience"] = AudienceService(f"sqlite:///{tmp_path / 'a.db'}")
    app = create_app(demo_container, start_llm=False)
    if not any(getattr(r, "path", "") == "/ws/rooms/{room_id}/host" for r in app.routes):
        app.include_router(host_router)
    open_room(demo_container, "r1", "demo")
    with TestClient(app) as c:
        grant(c)
        yield c


def _next(ws, kind: str) -> dict:
    while True:
        f = ws.receive_json()
        if f["type"] == kind:
            return f


def _text_socket_codes(client, url: str, sock: str) -> list[str]:
    codes = []
    with client.websocket_connect(url) as ws:
        ws.receive_json()  # ready
        for raw in frames(sock):
            ws.send_text(raw)
            codes.append(_next(ws, "error")["code"])
        ws.send_bytes(b"\x00\x01")
        codes.append(_next(ws, "error")["code"])
        ws.send_text(json.dumps({"type": "ping"}))  # documented: the connection stays up
        assert _next(ws, "pong")["type"] == "pong"
    return codes


def test_room_and_host_sockets_give_the_same_codes_and_stay_up(client):
    room = _text_socket_codes(client, "/ws/rooms/r1?merchant=demo", "room")
    host = _text_socket_codes(client, "/ws/rooms/r1/host", "host")
    assert room == host == EXPECTED + [wire.BINARY_NOT_SUPPORTED]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
async def test_voice_socket_gives_the_same_codes_and_stays_up(demo_container):
    from sim.voice_clips import VoiceClient, serve_in_loop
    from voice.api import ensure_voice_routes
    from voice.protocol import ERROR_REPEAT_SECS
    from voice.services import VoiceServices
    from voice.stt import StubSTTService

    open_room(demo_container, "r1", "demo")
    app = create_app(demo_container, start_llm=False)
    ensure_voice_routes(app)
    async with serve_in_loop(app) as host:
        app.state.voice_services = VoiceServices(
            demo_container,
            registry=app.state.metrics.registry,
            stt_factory=lambda lang: StubSTTService(lambda pcm: "", lang=lang),
        )
        async with VoiceClient.connect(f"ws://{host}/ws/rooms/r1/voice?lang=en&merchant=demo&viewer_id=w") as cl:
            await cl.wait_for("ready")
            codes: list[str] = []
            for raw in frames("voice"):
                if codes and EXPECTED[len(codes)] in codes:  # the same code is reported once a second
                    await asyncio.sleep(ERROR_REPEAT_SECS + 0.1)
                t0 = time.monotonic()
                await cl.ws.send(raw)
                codes.append((await cl.wait_for("error", since=t0, timeout=10)).data["code"])
            assert codes == EXPECTED
            await asyncio.sleep(ERROR_REPEAT_SECS + 0.1)
            t0 = time.monotonic()
            await cl.ws.send(bytes(2 * 16000 + 2))  # an audio frame over 1 s: the same code as a big text frame
            assert (await cl.wait_for("error", since=t0, timeout=10)).data["code"] == wire.FRAME_TOO_LARGE
            await cl.send_json({"type": "ping"})  # documented: dropped, the session stays up
            await cl.wait_for("pong", timeout=10)
            assert not cl.events("closed")
