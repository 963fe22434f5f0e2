"""The console side of issue 14: the viewer-token secret (owner only, shown once, rotated with a grace
period) and rooms (created with a merchant, closed, allowed origins)."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from console.service import get_console
from tests.support.audience import backends
from tests.support.console import backend_container, console_app, login


@pytest.fixture(params=backends())
def site(request, tmp_path, demo_root, use_embedder):
    with backend_container(request.param, tmp_path, demo_root, use_embedder) as c, TestClient(console_app(c)) as client:
        app = client.app
        cs = get_console(app)
        cs.accounts.create_user("demo", "boss", "correct-horse-1", "owner")
        cs.accounts.create_user("demo", "ops", "correct-horse-1", "operator")
        yield c, client, cs


def test_viewer_secret_is_owner_only_shown_once_and_rotates(site):
    c, client, cs = site
    csrf = login(client, "ops", "correct-horse-1")
    assert client.post("/console/api/m/demo/viewer-secret", headers={"X-CSRF-Token": csrf}).status_code == 403
    assert client.get("/console/api/m/demo/viewer-secret").status_code == 403
    client.cookies.clear()
    csrf = login(client, "boss", "correct-horse-1")
    assert client.get("/console/api/m/demo/viewer-secret").json() == {"secret_id": None}
    r = client.post("/console/api/m/demo/viewer-secret", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    first = r.json()
    assert first["secret"].startswith("lvs_") and first["algorithm"] == "HS256"
    info = client.get("/console/api/m/demo/viewer-secret").json()
    assert info["secret_id"] == first["secret_id"] and "secret" not in info  # never shown again
    # the merchant's backend mints with it; the room accepts it
    c.rooms.ensure("demo", "r-sec", "t", "test")
    token = jwt.encode(
        {"merchant": "demo", "viewer_id": "u1", "exp": int(time.time()) + 60},
        first["secret"],
        algorithm="HS256",
    )
    client.cookies.clear()
    r = client.post("/api/rooms/r-sec/ask", json={"text": "包邮吗", "viewer_token": token})
    assert r.status_code == 200 and r.json()["viewer"] == {"viewer_id": "u1", "verified": True}
    csrf = login(client, "boss", "correct-horse-1")
    second = client.post("/console/api/m/demo/viewer-secret", headers={"X-CSRF-Token": csrf}).json()
    assert second["secret"] != first["secret"] and second["previous"][0]["secret_id"] == first["secret_id"]
    actions = [e["action"] for e in cs.audit.list("demo")["items"]]
    assert "viewer_secret.create" in actions and "viewer_secret.rotate" in actions
    assert all(first["secret"] not in str(e) for e in cs.audit.list("demo")["items"])  # never logged


def test_rooms_are_created_closed_and_bound_to_origins(site):
    c, client, cs = site
    csrf = login(client, "ops", "correct-horse-1")
    h = {"X-CSRF-Token": csrf}
    r = client.post(
        "/console/api/m/demo/rooms",
        json={"room_id": "spring", "title": "春季", "allowed_origins": ["https://shop.example.com"]},
        headers=h,
    )
    assert r.status_code == 201 and r.json()["status"] == "open" and r.json()["url"] == "/rooms/spring"
    client.cookies.clear()
    ok = client.post("/api/rooms/spring/ask", json={"text": "包邮吗"}, headers={"Origin": "https://shop.example.com"})
    assert ok.status_code == 200
    bad = client.post("/api/rooms/spring/ask", json={"text": "包邮吗"}, headers={"Origin": "https://evil.example"})
    assert bad.status_code == 403 and bad.json()["error"]["code"] == "origin_not_allowed"
    assert client.post("/api/rooms/spring/ask", json={"text": "包邮吗"}).status_code == 200  # no Origin: not a page
    csrf = login(client, "ops", "correct-horse-1")
    r = client.patch("/console/api/m/demo/rooms/spring", json={"status": "closed"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    client.cookies.clear()
    assert client.post("/api/rooms/spring/ask", json={"text": "包邮吗"}).status_code == 404
    assert "room.update" in [e["action"] for e in cs.audit.list("demo")["items"]]
