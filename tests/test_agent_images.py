"""A viewer's picture through the app: upload → image id → the agent answers with the live price,
citing the KB fact and the image finding. Bad uploads get clear errors."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from server import create_app
from tests.support.access import open_room
from tests.test_vision_e2e import screenshot_png


@pytest.fixture(scope="module")
def demo_container(demo_root, use_embedder):
    """One container for the module: the product-picture index is built once."""
    from core.settings import Settings
    from liveroom.container import Container

    c = Container(Settings(data_dir=demo_root, llm_autostart=False))
    c.__dict__["embedder"] = use_embedder
    return c


@pytest.fixture(scope="module")
def client(demo_container):
    open_room(demo_container, "img-room", "demo")
    with TestClient(create_app(demo_container, start_llm=False)) as c:
        yield c


def test_screenshot_and_this_how_much_over_the_room_socket(client, demo_container):
    up = client.post(
        "/api/rooms/img-room/images?merchant=demo&viewer_id=v1&text=这个多少钱",
        content=screenshot_png("SK-001"),
        headers={"content-type": "image/png"},
    )
    assert up.status_code == 200, up.text
    body = up.json()
    assert body["best_sku"] == "SK-001" and body["image_id"].startswith("img_")
    with client.websocket_connect("/ws/rooms/img-room?merchant=demo") as ws:
        ws.receive_json()
        ws.send_text(
            json.dumps(
                {"type": "ask", "id": "i1", "viewer_id": "v1", "text": "这个多少钱", "image_id": body["image_id"]}
            )
        )
        while (f := ws.receive_json())["type"] != "answer.done":
            pass
    live = demo_container.kb.snapshot("demo").product("SK-001").price
    assert f"{live:g}元" in f["answer"]
    cited = [c["fact_id"] for c in f["citations"]]
    assert "SK-001:price" in cited and f"image:{body['image_id']}" in cited
    assert f["tool_calls"][0]["name"] == "analyze_image"


def test_picture_alone_identifies_the_product(client):
    up = client.post("/api/rooms/img-room/images", content=screenshot_png("MU-002", seed=3)).json()
    r = client.post("/api/rooms/img-room/ask", json={"viewer_id": "v2", "text": "", "image_id": up["image_id"]})
    assert r.status_code == 200 and r.json()["answer"].startswith("图里是")


@pytest.mark.parametrize(
    "payload, status",
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 422),  # corrupt PNG
        (b"GIF89a" + b"\x00" * 64, 415),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 415),
        (b"", 422),
    ],
)
def test_bad_uploads_are_rejected_with_a_clear_error(client, payload, status):
    r = client.post("/api/rooms/img-room/images", content=payload)
    assert r.status_code == status and r.json()["detail"]["code"]


def test_expired_image_id_is_a_polite_answer(client):
    r = client.post("/api/rooms/img-room/ask", json={"viewer_id": "v3", "text": "这个多少钱", "image_id": "img_nope"})
    assert r.status_code == 200 and r.json()["refused"] and "重新发送" in r.json()["answer"]
