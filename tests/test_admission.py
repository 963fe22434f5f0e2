"""Back-pressure: beyond capacity a question gets a clear ``busy`` frame at once (never a late answer or a
timeout), and the slot is given back however the answer ends."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from core.admission import Admission
from server import create_app
from tests.support.access import open_room


def test_admission_bounds_inflight_and_queue_wait():
    a = Admission(max_inflight=2, max_wait_ms=250)
    t1, t2 = a.enter(), a.enter()
    assert t1 is not None and t2 is not None and a.enter() is None
    a.leave()
    assert a.enter() is not None and a.refused["inflight"] == 1
    assert not a.waited_too_long(time.perf_counter())
    assert a.waited_too_long(time.perf_counter() - 1.0) and a.refused["waited"] == 1
    assert Admission(max_inflight=0, max_wait_ms=0).enter() is not None  # 0 = unbounded


@pytest.fixture()
def client(demo_container):
    open_room(demo_container, "r-busy", "demo")
    with TestClient(create_app(demo_container, start_llm=False)) as c:
        yield c


def _frames(ws, req_id):
    out = []
    while True:
        f = ws.receive_json()
        out.append(f)
        if f["type"] in ("answer.done", "error") and f.get("id") == req_id:
            return out


def test_a_full_process_answers_busy_and_recovers(client, demo_container, monkeypatch):
    gate = Admission(max_inflight=1)
    monkeypatch.setitem(demo_container.__dict__, "admission", gate)
    held = gate.enter()  # another question holds the only slot
    with client.websocket_connect("/ws/rooms/r-busy?merchant=demo") as ws:
        ws.receive_json()
        ws.send_text(json.dumps({"type": "ask", "id": "q1", "viewer_id": "v1", "text": "小蓝瓶多少钱"}))
        err = _frames(ws, "q1")[-1]
        assert err["type"] == "error" and err["code"] == "busy" and err["retry_after"] == 1
        assert held is not None
        gate.leave()
        ws.send_text(json.dumps({"type": "ask", "id": "q2", "viewer_id": "v1", "text": "小蓝瓶多少钱"}))
        assert _frames(ws, "q2")[-1]["type"] == "answer.done"
    assert gate.inflight == 0  # the answered question gave its slot back


def test_a_question_that_waited_too_long_is_busy(client, demo_container, monkeypatch):
    gate = Admission()
    monkeypatch.setitem(demo_container.__dict__, "admission", gate)
    monkeypatch.setattr(gate, "waited_too_long", lambda ticket: True)
    with client.websocket_connect("/ws/rooms/r-busy?merchant=demo") as ws:
        ws.receive_json()
        ws.send_text(json.dumps({"type": "ask", "id": "q1", "viewer_id": "v1", "text": "满多少包邮"}))
        frames = _frames(ws, "q1")
        assert [f["type"] for f in frames] == ["error"] and frames[0]["code"] == "busy"
    assert gate.inflight == 0


def test_metrics_count_cache_lookups(client):
    with client.websocket_connect("/ws/rooms/r-busy?merchant=demo") as ws:
        ws.receive_json()
        for i in range(2):
            ws.send_text(json.dumps({"type": "ask", "id": f"q{i}", "viewer_id": f"m{i}", "text": "羽绒服含绒量多少"}))
            _frames(ws, f"q{i}")
    text = client.get("/metrics").text
    assert 'liveroom_cache_lookups_total{cache="search",result="hit"}' in text
