"""Regression tests for the probe findings of issue 14: each request that showed a finding, now refused
or safe. (The per-channel identity cases are in test_viewer_access.py.)"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from console.service import get_console
from tests.conftest import mini_products, write_json
from tests.support.access import agent_key, open_room, viewer_token
from tests.support.console import console_app, make_container

A, B = "demo", "rival"  # A is the server's default merchant


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_root, use_embedder):
    tmp = tmp_path_factory.mktemp("probe")
    c = make_container(tmp, demo_root, use_embedder)
    for k in ("questions_per_ip", "questions_per_room", "uploads_per_ip", "sockets_per_ip", "open_sockets_per_ip"):
        setattr(c.settings.access, k, 0)
    c.kb.import_files(B, [write_json(tmp / "b.json", mini_products())])
    open_room(c, "a-room", A)
    open_room(c, "b-room", B)
    c.audience.upsert_viewers(B, [{"viewer_id": "vb1", "member": True}])
    app = console_app(c)
    with TestClient(app) as client:
        cs = get_console(app)
        tokens = {m: cs.accounts.create_token(m, f"int-{m}", "operator", "test")[1] for m in (A, B)}
        yield {"c": c, "client": client, "app": app, "cs": cs, "tokens": tokens}


def _bearer(w, m):
    return {"Authorization": f"Bearer {w['tokens'][m]}"}


# --- cross-tenant writes through the guard via the Content-Type (high) ------------------------------
CTYPES = [
    "Application/JSON",
    "APPLICATION/JSON; charset=UTF-8",
    "application/vnd.liveroom+JSON",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
]
WRITES = [
    ("/api/events", {"merchant": A, "events": [{"event_id": "x1", "viewer_id": "v", "type": "enter"}]}),
    ("/api/copy", {"merchant": A, "sku": "SK-001", "viewer_id": "va1"}),
    ("/api/experiments", {"merchant": A, "name": "x", "variants": [{"id": "a"}, {"id": "b"}]}),
    ("/api/rooms/b-room/room-events", {"merchant": A, "type": "enter", "viewer_id": "v"}),
    ("/api/compliance/check", {"merchant": A, "text": "全网最低价"}),
]


@pytest.mark.parametrize("ctype", CTYPES)
@pytest.mark.parametrize("path,body", WRITES, ids=[p for p, _ in WRITES])
def test_a_body_naming_another_merchant_is_refused_whatever_the_content_type(world, path, body, ctype):
    """B's token with a body naming A: 403 (or 415 for a body the guard cannot read), never stored."""
    client = world["client"]
    client.cookies.clear()
    headers = _bearer(world, B) | ({"content-type": ctype} if ctype else {})
    raw = json.dumps(body).encode()
    r = client.post(path, content=raw, headers=headers)
    assert r.status_code in (403, 415), (r.status_code, r.text[:200])


def test_a_text_plain_body_without_merchant_is_the_callers(world):
    """The handler would have defaulted to the server's default merchant (A): the guard fills in B."""
    client = world["client"]
    client.cookies.clear()
    ev = [{"event_id": f"tp{time.time()}", "viewer_id": "vb2", "type": "enter"}]
    r = client.post("/api/events", content=json.dumps(ev), headers=_bearer(world, B) | {"content-type": "text/plain"})
    assert r.status_code == 200 and r.json()["merchant"] == B
    r = client.post(
        "/api/events", content=b"not json at all", headers=_bearer(world, B) | {"content-type": "text/plain"}
    )
    assert r.status_code == 415
    r = client.post("/api/events", content=b"{broken", headers=_bearer(world, B))
    assert r.status_code == 400


def test_refused_writes_store_nothing_and_audit_nothing(world):
    c, cs, client = world["c"], world["cs"], world["client"]
    before = (cs.audit.list(A)["total"], cs.audit.list(B)["total"])
    for ctype in CTYPES:
        client.post(
            "/api/experiments",
            content=json.dumps({"merchant": A, "name": "x", "variants": [{"id": "a"}, {"id": "b"}]}),
            headers=_bearer(world, B) | ({"content-type": ctype} if ctype else {}),
        )
        client.post(
            "/api/events",
            content=json.dumps(
                {"merchant": A, "events": [{"event_id": "leak-" + ctype, "viewer_id": "leak", "type": "enter"}]}
            ),
            headers=_bearer(world, B) | ({"content-type": ctype} if ctype else {}),
        )
    assert (cs.audit.list(A)["total"], cs.audit.list(B)["total"]) == before
    assert c.audience.lookup(A, "leak") is None


# --- public answers carry tool results (high) --------------------------------------------------------
def test_public_answers_carry_no_profile_fields_and_no_one_elses_coupon(world):
    c, client = world["c"], world["client"]
    c.audience.create_campaign(
        B, {"campaign_id": "BC", "title": "B券", "kind": "amount", "amount": 5, "budget_count": 9}
    )
    tok = viewer_token(c, "vb1", B)
    client.cookies.clear()
    for text in ("推荐一款适合我的", "给我发张券"):
        r = client.post("/api/rooms/b-room/ask", json={"text": text, "viewer_token": tok})
        raw = r.text
        for field in ("interest_tags", "price_sensitivity", "spending_power", "active_hours", "member", "tier"):
            assert field not in raw, (field, raw[:300])
    assert "coupon_id" in raw  # the verified owner sees their own coupon
    anon = client.post("/api/rooms/b-room/ask", json={"text": "给我发张券", "viewer_id": "vb1"}).text
    assert "coupon_id" not in anon and "登录后可领券" in anon
    key = agent_key(world["app"], B)
    r = client.post("/v1/chat/completions", headers=key, json={"messages": [{"role": "user", "content": "推荐一款"}]})
    assert r.status_code == 200 and "interest_tags" not in r.text and "price_sensitivity" not in r.text


# --- budget drain by rotating viewer ids (high) -------------------------------------------------------
def test_budget_drain_rotating_anonymous_ids_earns_nothing_verified_viewers_exactly_the_budget(
    tmp_path, demo_root, use_embedder
):
    c = make_container(tmp_path, demo_root, use_embedder)
    for k in ("questions_per_ip", "questions_per_room"):
        setattr(c.settings.access, k, 0)  # no abuse limit: the identity rules alone must hold
    open_room(c, "drain", A)
    c.audience.create_campaign(
        A, {"campaign_id": "D", "title": "限量券", "kind": "amount", "amount": 5, "budget_count": 100}
    )
    c.audience.create_campaign(
        A, {"campaign_id": "OTHER", "title": "其他券", "kind": "amount", "amount": 1, "budget_count": 100000}
    )
    with TestClient(console_app(c)) as client:
        t0 = time.perf_counter()
        for i in range(1000):  # 1,000 claims, each from a fresh client claiming a fresh id
            client.cookies.clear()
            r = client.post("/api/rooms/drain/ask", json={"text": "给我发张券", "viewer_id": f"rot-{i}"})
            assert r.status_code == 200
        anon_s = time.perf_counter() - t0
        assert c.audience.get_campaign(A, "D").issued_count == 0
        assert c.audience.get_campaign(A, "OTHER").issued_count == 0
        tokens = [viewer_token(c, f"real-{i}", A) for i in range(1000)]
        for tok in tokens:
            client.cookies.clear()
            assert (
                client.post("/api/rooms/drain/ask", json={"text": "给我发张券", "viewer_token": tok}).status_code == 200
            )
        assert c.audience.get_campaign(A, "D").issued_count == 100  # exactly the budget
        assert c.audience.get_campaign(A, "OTHER").issued_count == 900  # the rest got the next offer
        print(f"1000 anonymous claims in {anon_s:.1f} s; 1000 verified in {time.perf_counter() - t0 - anon_s:.1f} s")


# --- abuse limits per IP and per room; X-Forwarded-For not trusted ---------------------------------
def test_abuse_limits_per_ip_and_room_with_retry_after(tmp_path, demo_root, use_embedder):
    c = make_container(tmp_path, demo_root, use_embedder)
    a = c.settings.access
    a.questions_per_ip, a.questions_per_room, a.uploads_per_ip, a.sockets_per_ip = 3, 1000, 2, 1
    open_room(c, "busy", A)
    with TestClient(console_app(c)) as client:
        for i in range(3):
            hdr = {"x-forwarded-for": f"10.0.0.{i}"}  # rotating: not a trusted proxy, so ignored
            assert client.post("/api/rooms/busy/ask", json={"text": "包邮吗"}, headers=hdr).status_code == 200
        r = client.post("/api/rooms/busy/ask", json={"text": "包邮吗"}, headers={"x-forwarded-for": "10.9.9.9"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
        # the same limit on the room socket: an error frame with retry_after, the socket stays up
        with client.websocket_connect("/ws/rooms/busy") as ws:
            ws.receive_json()
            ws.send_text(json.dumps({"type": "ask", "id": "x", "text": "包邮吗"}))
            f = ws.receive_json()
            assert f["type"] == "error" and f["code"] == "rate_limited" and f["retry_after"] >= 1
            ws.send_text(json.dumps({"type": "ping"}))
            assert ws.receive_json()["type"] == "pong"
        with client.websocket_connect("/ws/rooms/busy") as ws:
            assert ws.receive_json()["code"] == "rate_limited"  # the second socket this minute
        from tests.test_vision_e2e import screenshot_png

        png = screenshot_png("SK-001")
        assert [client.post("/api/rooms/busy/images", content=png).status_code for _ in range(3)] == [200, 200, 429]


def test_trusted_proxy_forwarded_for_is_used_only_when_configured():
    from core.abuse import client_ip

    assert client_ip("1.2.3.4", {"x-forwarded-for": "9.9.9.9"}) == "1.2.3.4"
    assert client_ip("10.0.0.1", {"x-forwarded-for": "9.9.9.9, 10.0.0.2"}, ["10.0.0.0/8"]) == "9.9.9.9"
    assert client_ip("1.2.3.4", {"x-forwarded-for": "9.9.9.9"}, ["10.0.0.0/8"]) == "1.2.3.4"


# --- merchant from the client (medium) -------------------------------------------------------------
def test_a_room_answers_from_its_own_merchant_whatever_the_client_names(world):
    client = world["client"]
    client.cookies.clear()
    assert client.post("/api/rooms/a-room/ask", json={"merchant": B, "text": "给我发张券"}).status_code == 403
    assert client.post(f"/api/rooms/a-room/ask?merchant={B}", json={"text": "给我发张券"}).status_code == 403
    with client.websocket_connect(f"/ws/rooms/a-room?merchant={B}") as ws:
        assert ws.receive_json()["code"] == "wrong_merchant"


# --- 64 MB bodies on public routes; 422s that echo the input (medium) --------------------------------
def test_public_bodies_are_bounded_and_422_does_not_echo(world):
    client = world["client"]
    client.cookies.clear()
    big = b'{"text": "' + b"x" * (64 << 20) + b'"}'
    r = client.post("/api/rooms/a-room/ask", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and len(r.content) < 1000
    del big

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"text": "'
        for _ in range(64):
            yield b"x" * 1024
        yield b'"}'

    r = client.post("/api/rooms/a-room/ask", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/api/rooms/a-room/ask", json={"text": "y" * 6000})  # over the field's max_length
    assert r.status_code == 422 and "yyyy" not in r.text and len(r.content) < 1000
    r = client.post("/v1/chat/completions", headers=agent_key(world["app"], A), json={"messages": "z" * 9000})
    assert r.status_code == 422 and "zzzz" not in r.text


# --- odd inputs that returned 500 (low) ---------------------------------------------------------------
def test_odd_inputs_get_4xx_not_500(world):
    client = world["client"]
    client.cookies.clear()
    deep = b"[" * 5_000 + b"]" * 5_000  # 10 KB: under the body limit, too deep to parse
    r = client.post("/api/rooms/a-room/ask", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 400
    deep = b"[" * 10_000 + b"]" * 10_000
    assert client.post(
        "/api/rooms/a-room/ask", content=deep, headers={"content-type": "application/json"}
    ).status_code in (400, 413)
    r = client.post("/api/events", content=b"[" * 100_000, headers=_bearer(world, B))
    assert r.status_code == 400  # the guard's JSON read: no RecursionError
    assert client.post("/api/rooms/a.b/images", content=b"x").status_code == 404
    assert client.post("/api/rooms/a-room/ask?merchant=../../x", json={"text": "hi"}).status_code == 403
    with client.websocket_connect("/ws/rooms/a-room") as ws:
        ws.receive_json()
        ws.send_text("[" * 8000)
        assert ws.receive_json()["code"] == "bad_json"
        ws.send_text(json.dumps({"type": "ping"}))
        assert ws.receive_json()["type"] == "pong"
    # images only to registered rooms
    assert client.post("/api/rooms/never-created/images", content=b"x").status_code == 404


# --- no read timeout: slow clients held connections open (low) ----------------------------------------
async def test_a_body_trickled_too_slowly_is_cut_off(world, monkeypatch):
    import asyncio

    from console import guard

    monkeypatch.setattr(guard, "BODY_READ_TIMEOUT_S", 0.2)
    sent: list[dict] = []

    async def receive():  # a client that never finishes its body
        await asyncio.sleep(3600)

    async def send(msg):
        sent.append(msg)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/rooms/a-room/ask",
        "raw_path": b"/api/rooms/a-room/ask",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
        "client": ("9.9.9.9", 1234),
        "server": ("testserver", 80),
        "scheme": "http",
        "http_version": "1.1",
        "app": world["app"],
    }
    await asyncio.wait_for(guard.Guard(world["app"].router)(scope, receive, send), 5)
    assert sent[0]["status"] == 408


@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None, reason="espeak-ng not installed")
async def test_voice_questions_count_against_the_same_limits(tmp_path, demo_root, use_embedder):
    from sim.voice_clips import VoiceClient, serve_in_loop
    from tests.test_voice_e2e import app_for, install, stub

    c = make_container(tmp_path, demo_root, use_embedder)
    c.settings.access.questions_per_ip = 1
    open_room(c, "v-busy", A)
    app = app_for(c)
    async with serve_in_loop(app) as host:
        install(app, c, stt_factory=stub({"text": ""}))
        async with VoiceClient.connect(f"ws://{host}/ws/rooms/v-busy/voice?lang=zh") as cl:
            await cl.wait_for("ready", timeout=15)
            t0 = time.monotonic()
            await cl.send_json({"type": "ask", "text": "包邮吗"})
            await cl.wait_for("answer.done", since=t0, timeout=20)
            t1 = time.monotonic()
            await cl.send_json({"type": "ask", "text": "几天发货"})
            err = (await cl.wait_for("error", since=t1, timeout=10)).data
            assert err["code"] == "rate_limited" and err["retry_after"] >= 1


def test_one_device_cycling_through_verified_viewers_is_limited(world):
    """Coupon claims are also limited per device: one session cookie (or one socket) presenting a sixth
    distinct verified viewer within the hour is refused, so even a leaked token minter cannot be cycled
    from one browser."""
    c, client = world["c"], world["client"]
    client.cookies.clear()
    codes = [
        client.post(
            "/api/rooms/b-room/ask", json={"text": "包邮吗", "viewer_token": viewer_token(c, f"cyc-{i}", B)}
        ).status_code
        for i in range(6)
    ]
    assert codes == [200] * 5 + [429]
    # the same viewers again from that device are fine; another device is not affected
    assert (
        client.post(
            "/api/rooms/b-room/ask", json={"text": "包邮吗", "viewer_token": viewer_token(c, "cyc-0", B)}
        ).status_code
        == 200
    )
    client.cookies.clear()
    r = client.post("/api/rooms/b-room/ask", json={"text": "包邮吗", "viewer_token": viewer_token(c, "cyc-5", B)})
    assert r.status_code == 200
    client.cookies.clear()
    with client.websocket_connect("/ws/rooms/b-room") as ws:  # one socket (no cookie) = one device
        ws.receive_json()
        got = []
        for i in range(6):
            ws.send_text(
                json.dumps(
                    {"type": "ask", "id": f"w{i}", "text": "包邮吗", "viewer_token": viewer_token(c, f"ws-{i}", B)}
                )
            )
            while (f := ws.receive_json()).get("id") != f"w{i}" or f["type"] not in ("answer.done", "error"):
                pass
            got.append(f["type"] if f["type"] == "answer.done" else f["code"])
        assert got == ["answer.done"] * 5 + ["rate_limited"]
