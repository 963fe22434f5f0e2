"""Who is asking, on every public channel (issue 14): HTTP ask, the room WebSocket, the voice socket,
image upload and /v1.

- no token → anonymous: a server-assigned id (a client's ``viewer_id`` is ignored), no profile lookup, no
  coupon ("登录后可领券"), no memory shared with the real viewer;
- a forged, expired, other-merchant or other-room token → ``invalid_token`` with its reason;
- a valid token → the real profile and the coupon flow; a viewer the store has never seen is created on
  first contact and gets a coupon from a campaign open to everyone.

Real app, agent and demo KB (fast path); two merchants.
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.conftest import mini_products, write_json
from tests.support.access import agent_key, forged_token, open_room, signed_token, viewer_token
from tests.support.audience import backends
from tests.support.console import backend_container, console_app

A, B = "demo", "rival"
COUPON_Q = "给我发张券"


class SpyProfiles:
    """The real profile store, recording whose profile the tools asked for."""

    def __init__(self, inner):
        self.inner, self.asked = inner, []

    def lookup(self, merchant, viewer_id):
        self.asked.append((merchant, viewer_id))
        return self.inner.lookup(merchant, viewer_id)


@pytest.fixture(scope="module", params=backends())
def world(request, tmp_path_factory, demo_root, use_embedder):
    tmp = tmp_path_factory.mktemp("viewer-access")
    with backend_container(request.param, tmp, demo_root, use_embedder) as c:
        for k in ("questions_per_ip", "questions_per_room", "uploads_per_ip", "sockets_per_ip", "open_sockets_per_ip"):
            setattr(c.settings.access, k, 0)  # abuse limits have their own test
        spy = SpyProfiles(c.audience)
        c.__dict__["profiles"] = spy  # before the tools are built
        c.kb.import_files(B, [write_json(tmp / "b.json", mini_products())])
        open_room(c, "a-room", A)
        open_room(c, "a-room-2", A)
        open_room(c, "b-room", B)
        c.audience.upsert_viewers(A, [{"viewer_id": "vip", "member": True}])
        c.audience.create_campaign(
            A, {"campaign_id": "OPEN", "title": "全场券", "kind": "amount", "amount": 5, "budget_count": 1000}
        )
        c.audience.create_campaign(
            B, {"campaign_id": "B-OPEN", "title": "B券", "kind": "amount", "amount": 5, "budget_count": 1000}
        )
        app = console_app(c)
        with TestClient(app) as client:
            yield {"c": c, "client": client, "app": app, "spy": spy, "key": agent_key(app, A)}


def _issued(c, merchant=A, campaign="OPEN") -> int:
    return c.audience.get_campaign(merchant, campaign).issued_count


def _answers(c):
    seen = []
    return seen, c.answer_bus.subscribe(seen.append)


# --- one question on each channel ------------------------------------------------------------------
def ask_http(w, text, token=None, room="a-room", **extra):
    w["client"].cookies.clear()
    r = w["client"].post(f"/api/rooms/{room}/ask", json={"text": text, "viewer_token": token, **extra})
    return r.status_code, r.json()


def ask_ws(w, text, token=None, room="a-room", per_ask=False, **extra):
    w["client"].cookies.clear()
    url = f"/ws/rooms/{room}" + (f"?token={token}" if token and not per_ask else "")
    try:
        with w["client"].websocket_connect(url) as ws:
            first = ws.receive_json()
            if first["type"] == "error":
                return 401 if first["code"] == "invalid_token" else 400, first
            frame = {"type": "ask", "id": "q", "text": text, **extra}
            if per_ask and token:
                frame["viewer_token"] = token
            ws.send_text(json.dumps(frame))
            while True:
                f = ws.receive_json()
                if f.get("id") == "q" and f["type"] in ("answer.done", "error"):
                    return (200 if f["type"] == "answer.done" else 401 if f["code"] == "invalid_token" else 400), f
    except WebSocketDisconnect as e:
        return 500, {"close": e.code}


def ask_v1(w, text, token=None, room=None, **extra):
    w["client"].cookies.clear()
    headers = dict(w["key"]) | ({"x-liveroom-room": room} if room and room != "a-room" else {})
    body = {"messages": [{"role": "user", "content": text}], **extra}
    if token:
        body["viewer_token"] = token
    r = w["client"].post("/v1/chat/completions", headers=headers, json=body)
    out = r.json()
    if r.status_code == 200:
        out = out["liveroom"] | {"answer": out["choices"][0]["message"]["content"]}
    return r.status_code, out


def ask_ws_per_ask(w, text, token=None, room="a-room", **extra):
    return ask_ws(w, text, token, room, per_ask=True, **extra)


CHANNELS = {"http": ask_http, "ws": ask_ws, "ws-ask-token": ask_ws_per_ask, "v1": ask_v1}


# --- anonymous ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("channel", list(CHANNELS))
def test_no_token_is_anonymous_no_profile_no_coupon_no_memory(world, channel):
    c, spy = world["c"], world["spy"]
    room = "a-room"
    # the real viewer talked in this room before (their memory: the serum)
    st, _ = ask_http(world, "小蓝瓶多少钱", viewer_token(c, "vip", A), room=room)
    assert st == 200
    vip_turns = len(c.memory.get(A, room, "vip").turns)
    before, asked = _issued(c), len(spy.asked)
    seen, stop = _answers(c)
    try:
        claim = {"viewer_id": "vip"} if channel != "v1" else {"user": "vip"}  # typing their id changes nothing
        st, coupon = CHANNELS[channel](world, COUPON_Q, None, room, **claim)
        st2, rec = CHANNELS[channel](world, "推荐一款适合我的", None, room, **claim)
    finally:
        stop()
    assert st == 200 and st2 == 200, (coupon, rec)
    assert "登录后可领券" in coupon["answer"]
    assert _issued(c) == before  # no coupon
    assert spy.asked[asked:] == []  # nobody's profile was looked up
    assert seen and all(e.viewer_id.startswith("anon-") for e in seen)  # never "vip"
    assert len(c.memory.get(A, room, "vip").turns) == vip_turns  # the real viewer's memory untouched
    if channel != "v1":
        assert coupon["viewer"] == {"viewer_id": seen[0].viewer_id, "verified": False}
    for call in coupon["tool_calls"] + rec["tool_calls"]:
        assert "coupon_id" not in json.dumps(call, ensure_ascii=False)
        assert call["name"] != "lookup_profile" or "result" not in call


def test_anonymous_ids_are_per_session_not_shared(world):
    """Clients without a token each get their own id (not one shared memory and rate bucket); the HTTP
    session cookie keeps one client's id across requests."""
    c, client = world["c"], world["client"]
    seen, stop = _answers(c)
    try:
        client.cookies.clear()
        client.post("/api/rooms/a-room/ask", json={"text": "包邮吗"})
        client.post("/api/rooms/a-room/ask", json={"text": "几天发货"})  # same cookie
        client.cookies.clear()
        client.post("/api/rooms/a-room/ask", json={"text": "包邮吗"})  # a new client
    finally:
        stop()
    ids = [e.viewer_id for e in seen]
    assert ids[0] == ids[1] != ids[2] and all(i.startswith("anon-") for i in ids)


# --- rejected tokens -----------------------------------------------------------------------------------
def _bad_tokens(c) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    return {
        "forged": (forged_token("vip", A), "bad_signature"),
        "expired": (signed_token(c, {"merchant": A, "viewer_id": "vip", "exp": now - 3600}), "expired"),
        "other_merchant": (viewer_token(c, "vb", B), "wrong_merchant"),
        "other_room": (viewer_token(c, "vip", A, room="a-room-2"), "wrong_room"),
        "no_exp": (signed_token(c, {"merchant": A, "viewer_id": "vip"}), "malformed"),
        "too_long": (signed_token(c, {"merchant": A, "viewer_id": "vip", "exp": now + 400 * 86400}), "too_long_lived"),
        "anon_namespace": (signed_token(c, {"merchant": A, "viewer_id": "anon-x", "exp": now + 60}), "bad_viewer_id"),
        "garbage": ("not-a-jwt", "malformed"),
    }


@pytest.mark.parametrize("channel", list(CHANNELS))
@pytest.mark.parametrize(
    "kind", ["forged", "expired", "other_merchant", "other_room", "no_exp", "too_long", "anon_namespace", "garbage"]
)
def test_bad_tokens_are_rejected_with_invalid_token(world, channel, kind):
    c = world["c"]
    token, reason = _bad_tokens(c)[kind]
    before = _issued(c)
    st, body = CHANNELS[channel](world, COUPON_Q, token)
    assert st == 401, body
    err = body["error"] if "error" in body else body
    assert err["code"] == "invalid_token"
    assert (err.get("detail") or err).get("reason") == reason
    assert _issued(c) == before


def test_bad_tokens_on_image_upload(world):
    client, c = world["client"], world["c"]
    from tests.test_vision_e2e import screenshot_png

    png = screenshot_png("SK-001")
    for kind, (token, reason) in _bad_tokens(c).items():
        r = client.post(f"/api/rooms/a-room/images?token={token}", content=png)
        assert r.status_code == 401 and r.json()["error"]["detail"]["reason"] == reason, kind
    r = client.post("/api/rooms/a-room/images", content=png)  # anonymous: a picture is fine
    assert r.status_code == 200 and r.json()["best_sku"] == "SK-001"
    r = client.post(f"/api/rooms/a-room/images?token={viewer_token(c, 'vip', A)}", content=png)
    assert r.status_code == 200
    assert client.post("/api/rooms/no-such-room/images", content=png).status_code == 404
    assert client.post("/api/rooms/a.b/images", content=png).status_code == 404
    assert client.post(f"/api/rooms/a-room/images?merchant={B}", content=png).status_code == 403
    assert client.post("/api/rooms/a-room/images?merchant=../../x", content=png).status_code == 403


# --- verified ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channel", list(CHANNELS))
def test_valid_token_gets_the_real_profile_and_a_coupon(world, channel):
    c, spy = world["c"], world["spy"]
    viewer = f"new-{channel}"  # never seen by the audience store: created on first contact
    assert c.audience.lookup(A, viewer) is None
    before, asked = _issued(c), len(spy.asked)
    st, body = CHANNELS[channel](world, COUPON_Q, viewer_token(c, viewer, A))
    assert st == 200, body
    assert "已经给你发了" in body["answer"] and "全场券" in body["answer"]
    assert _issued(c) == before + 1
    assert (A, viewer) in spy.asked[asked:]  # their own profile, looked up
    coupon = next(tc for tc in body["tool_calls"] if tc["name"] == "issue_coupon")
    assert coupon["result"]["coupon_id"] and coupon["result"]["offer"]["campaign_id"] == "OPEN"  # their own
    profile = next(tc for tc in body["tool_calls"] if tc["name"] == "lookup_profile")
    assert "result" not in profile  # profile fields never leave, even to their owner
    if channel != "v1":
        assert body["viewer"] == {"viewer_id": viewer, "verified": True}
    st, again = CHANNELS[channel](world, COUPON_Q, viewer_token(c, viewer, A))
    assert st == 200 and _issued(c) == before + 1  # per-viewer limit as before


def test_a_verified_viewers_memory_follows_them_across_connections(world):
    c = world["c"]
    tok = viewer_token(c, "mem-viewer", A)
    ask_ws(world, "小蓝瓶多少钱", tok)
    st, body = ask_http(world, "它的容量是多少", tok)  # another connection, same viewer: "它" = the serum
    assert st == 200 and "30ml" in body["answer"]
    st, anon = ask_http(world, "它的容量是多少")  # an anonymous viewer has no such context
    assert "30ml" not in anon["answer"]


def test_room_and_merchant_come_from_the_room(world):
    client, c = world["client"], world["c"]
    client.cookies.clear()
    assert client.post("/api/rooms/a-room/ask", json={"merchant": B, "text": "包邮吗"}).status_code == 403
    assert client.post(f"/api/rooms/a-room/ask?merchant={B}", json={"text": "包邮吗"}).status_code == 403
    assert client.post("/api/rooms/a-room/ask?merchant=../../x", json={"text": "包邮吗"}).status_code == 403
    r = client.post("/api/rooms/nowhere/ask", json={"text": "包邮吗"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "room_not_found"
    c.rooms.ensure(A, "closing", "t", "test")
    c.rooms.close(A, "closing")
    assert client.post("/api/rooms/closing/ask", json={"text": "包邮吗"}).status_code == 404
    with client.websocket_connect(f"/ws/rooms/a-room?merchant={B}") as ws:
        assert ws.receive_json()["code"] == "wrong_merchant"
    with client.websocket_connect("/ws/rooms/closing") as ws:
        assert ws.receive_json()["code"] == "room_not_found"
    # B's room answers from B's catalog and B's campaigns, whatever the client names
    before_a, before_b = _issued(c), _issued(c, B, "B-OPEN")
    r = client.post("/api/rooms/b-room/ask", json={"text": COUPON_Q, "viewer_token": viewer_token(c, "vb", B)})
    assert r.status_code == 200 and "B券" in r.json()["answer"]
    assert (_issued(c), _issued(c, B, "B-OPEN")) == (before_a, before_b + 1)


def test_v1_needs_an_agent_key_of_the_merchant(world):
    client = world["client"]
    client.cookies.clear()
    body = {"messages": [{"role": "user", "content": "包邮吗"}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 401
    from console.service import get_console

    _t, operator = get_console(world["app"]).accounts.create_token(A, "ops", "operator", "test")
    assert (
        client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {operator}"}).status_code
        == 403
    )
    key = world["key"]
    assert client.post("/v1/chat/completions", json=body, headers=key).status_code == 200
    r = client.post("/v1/chat/completions", json=body, headers=key | {"x-liveroom-merchant": B})
    assert r.status_code == 403
    # an agent key is good for /v1 only
    assert client.get(f"/console/api/m/{A}/rooms", headers=key).status_code == 403
    assert client.post("/api/events", json={"events": []}, headers=key).status_code == 403
    # a merchant without a catalog: 404 before any streaming starts (not 200 and a cut stream)
    get_console(world["app"]).accounts.ensure_merchant("empty")
    empty = agent_key(world["app"], "empty")
    r = client.post("/v1/chat/completions", json=body | {"stream": True}, headers=empty)
    assert r.status_code == 404


# --- the voice socket ----------------------------------------------------------------------------------
@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None, reason="espeak-ng not installed")
async def test_voice_socket_anonymous_bad_and_valid_tokens(world):
    from sim.voice_clips import VoiceClient, serve_in_loop
    from tests.test_voice_e2e import app_for, install, stub

    c, spy = world["c"], world["spy"]
    app = app_for(c)
    async with serve_in_loop(app) as host:
        install(app, c, stt_factory=stub({"text": ""}))
        base = f"ws://{host}/ws/rooms/a-room/voice?lang=zh"

        async def typed(url: str, text: str) -> tuple[dict, dict]:
            async with VoiceClient.connect(url) as cl:
                ready = (await cl.wait_for("ready", timeout=15)).data
                t0 = time.monotonic()
                await cl.send_json({"type": "ask", "text": text})
                return ready, (await cl.wait_for("answer.done", since=t0, timeout=20)).data

        # no token (and a typed-in viewer id): anonymous, no coupon, no profile
        before, asked = _issued(c), len(spy.asked)
        ready, done = await typed(f"{base}&viewer_id=vip", COUPON_Q)
        assert ready["verified"] is False and ready["viewer_id"].startswith("anon-")
        assert "登录后可领券" in done["answer"] and _issued(c) == before and spy.asked[asked:] == []
        assert "tool_calls" not in done
        # bad tokens: refused before a pipeline exists
        for kind, (token, reason) in _bad_tokens(c).items():
            async with VoiceClient.connect(f"{base}&token={token}") as cl:
                err = (await cl.wait_for("error")).data
                assert err["code"] == "invalid_token" and err["reason"] == reason, kind
                await cl.wait_for("closed")
        # a valid token: the real viewer, their profile, their coupon
        ready, done = await typed(f"{base}&token={viewer_token(c, 'voice-viewer', A)}", COUPON_Q)
        assert ready["verified"] is True and ready["viewer_id"] == "voice-viewer"
        assert "已经给你发了" in done["answer"] and _issued(c) == before + 1
        assert (A, "voice-viewer") in spy.asked


def test_the_room_page_exists_only_for_open_rooms(world):
    client = world["client"]
    client.cookies.clear()
    assert client.get("/rooms/a-room").status_code == 200
    assert client.get("/rooms/nowhere").status_code == 404
    world["c"].rooms.ensure(A, "page-closed", "t", "test")
    world["c"].rooms.close(A, "page-closed")
    assert client.get("/rooms/page-closed").status_code == 404
