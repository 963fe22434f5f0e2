"""The host console WebSocket and the funnel / clusters / danmaku / rundown endpoints, on the real app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from host.api import router
from server import create_app
from tests.support.console import grant
from tests.support.host import fast_embedder

DEMO_RUNDOWN = (Path(__file__).resolve().parent.parent / "knowledge" / "demo" / "rundown.yaml").read_text("utf-8")


@pytest.fixture()
def client(demo_container, tmp_path):
    from audience.service import AudienceService

    demo_container.__dict__["embedder"] = fast_embedder()
    demo_container.__dict__["audience"] = AudienceService(f"sqlite:///{tmp_path / 'a.db'}")
    app = create_app(demo_container, start_llm=False)
    if not any(getattr(r, "path", "") == "/ws/rooms/{room_id}/host" for r in app.routes):
        app.include_router(router)  # until server._optional_routers() includes it
    with TestClient(app) as c:
        grant(c)  # the console guard protects host routes: act as the demo merchant's integration
        yield c


def frames_until(ws, kind: str, limit: int = 50) -> list[dict]:
    out = []
    for _ in range(limit):
        f = ws.receive_json()
        out.append(f)
        if f["type"] == kind:
            return out
    raise AssertionError(f"no {kind!r} frame in {[f['type'] for f in out]}")


def test_console_gets_a_talking_point_when_a_question_turns_hot(client):
    with client.websocket_connect("/ws/rooms/live1/host?merchant=demo") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["hot_clusters"] == [] and ready["room_id"] == "live1"
        ws.send_text(json.dumps({"type": "context", "sku": "SK-001"}))
        assert frames_until(ws, "context")[-1]["sku"] == "SK-001"
        for i, q in enumerate(
            ["敏感肌能用吗", "敏感皮可以用吗？", "皮肤敏感能不能用", "我是敏感肌会过敏吗", "敏感肌友好吗"]
        ):
            ws.send_text(json.dumps({"type": "danmaku", "viewer_id": f"v{i}", "text": q}))
        s = frames_until(ws, "suggestion")[-1]
        assert s["message"] == "多位观众（5人）关注敏感肌适用性，建议重点讲解"
        assert "敏感肌可以用" in s["say"] and s["sku"] == "SK-001"
        assert s["facts"] and s["facts"][0]["fact_id"].startswith("SK-001:")
        assert s["latency_ms"] < 200
        ws.send_text(json.dumps({"type": "ack", "cluster_id": s["cluster_id"]}))
        assert frames_until(ws, "acked")[-1]["cluster_id"] == s["cluster_id"]
    r = client.get("/api/rooms/live1/clusters?merchant=demo").json()
    assert r["suggestions"][0]["suggestion_id"] == s["suggestion_id"]


def test_console_rejects_bad_frames_and_stays_up(client):
    with client.websocket_connect("/ws/rooms/live2/host") as ws:
        ws.receive_json()
        for raw, code in [
            ("not json", "bad_json"),
            ("[1]", "bad_frame"),
            ('{"type": "dance"}', "unknown_type"),
            ('{"type": "ack"}', "invalid"),
            ('{"type": "context", "sku": "NOPE"}', "unknown_sku"),
            ('{"type": "danmaku", "text": "hi"}', "invalid"),
            ("x" * 20_000, "frame_too_large"),
        ]:
            ws.send_text(raw)
            assert frames_until(ws, "error")[-1]["code"] == code
        ws.send_text('{"type": "ping"}')
        assert frames_until(ws, "pong")[-1]["type"] == "pong"


def test_unknown_merchant_is_refused(client):
    from starlette.websockets import WebSocketDisconnect

    # Another merchant's scope is refused by the console guard before the host code runs.
    with pytest.raises(WebSocketDisconnect) as exc:
        with client.websocket_connect("/ws/rooms/r/host?merchant=nobody") as ws:
            ws.receive_json()
    assert exc.value.code == 1008
    assert client.get("/api/rooms/r/funnel?merchant=nobody").status_code in (403, 404)
    assert client.get("/api/rooms/bad room/funnel").status_code in (403, 404, 422)


def test_events_feed_the_funnel_and_danmaku_are_triaged(client):
    evs = [
        {"type": "enter", "viewer_id": "a", "event_id": "e1"},
        {"type": "enter", "viewer_id": "b", "event_id": "e2"},
        {"type": "product_click", "viewer_id": "a", "sku": "SK-001", "event_id": "e3"},
        {"type": "purchase", "viewer_id": "a", "sku": "SK-001", "amount": 129, "event_id": "e4"},
    ]
    r = client.post("/api/rooms/f1/room-events", json={"merchant": "demo", "events": evs})
    assert r.status_code == 200 and r.json()["recorded"] == 4 and r.json()["audience"]["accepted"] == 4
    r = client.post(
        "/api/rooms/f1/danmaku",
        json={
            "messages": [
                {"viewer_id": "a", "text": "多少钱"},
                {"viewer_id": "b", "text": "666"},
                {"viewer_id": "c", "text": "加V看主页"},
            ]
        },
    )
    assert r.json()["kinds"] == {"question": 1, "chatter": 1, "spam": 1}
    f = client.get("/api/rooms/f1/funnel?merchant=demo&minutes=5").json()
    assert len(f["minutes"]) == 5
    last = f["minutes"][-1]
    assert (last["entries"], last["product_clicks"], last["orders"], last["gmv"], last["danmaku"]) == (2, 1, 1, 129, 2)
    assert f["totals"]["orders"] == 1
    bad = client.post("/api/rooms/f1/room-events", json={"events": [{"type": "teleport", "viewer_id": "a"}]})
    assert bad.status_code == 422


def test_rundown_validation_endpoint(client):
    ok = client.post(
        "/api/rundowns/validate?merchant=demo", content=DEMO_RUNDOWN, headers={"content-type": "application/yaml"}
    ).json()
    assert ok["segments"] == 12 and "SK-001" in ok["skus"]
    assert not ok["ok"]  # this app's ledger has no campaigns yet: the coupon segments are flagged
    assert {i["path"] for i in ok["issues"]} == {"segments[3].campaign", "segments[7].campaign", "reserve_coupons[0]"}
    bad = client.post(
        "/api/rundowns/validate",
        content="segments:\n  - {type: product, sku: NOPE, minutes: 0}\n",
        headers={"content-type": "application/yaml"},
    ).json()
    assert not bad["ok"] and bad["issues"] == [
        {"path": "segments[0].minutes", "line": 2, "message": "Input should be greater than 0"}
    ]
    missing = client.post(
        "/api/rundowns/validate",
        content="segments:\n  - {type: product, sku: NOPE, minutes: 1}\n",
        headers={"content-type": "application/yaml"},
    ).json()
    assert missing["issues"][0]["message"] == "no product 'NOPE' in the knowledge base"
