"""The viewer page (web/room.*) over HTTP: the product card's endpoint (name, live price, stock of a
product of the room's merchant; nothing for unknown products or rooms), and the page's own files — no
emoji anywhere (icons are inline SVG, so they render without an emoji font) and every label in both
languages. The page in Chromium: tests/test_viewer_page_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

WEB = Path(__file__).resolve().parent.parent / "web"
# Emoji and pictographs (and the variation selector that asks for the emoji presentation).
EMOJI = re.compile("[\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff]")


@pytest.fixture()
def client(demo_container):
    from server import create_app

    with TestClient(create_app(demo_container, start_llm=False)) as c:
        yield c


def test_product_card_is_the_rooms_merchants_product(client, demo_container):
    r = client.get("/api/rooms/r1/products/SN-002")
    assert r.status_code == 200, r.text
    card = r.json()
    live = demo_container.kb.snapshot("demo").product("SN-002")
    assert (card["sku"], card["name"], card["price"], card["stock"]) == ("SN-002", live.name, live.price, live.stock)
    assert client.get("/api/rooms/r1/products/NOPE-1").status_code == 404
    assert client.get("/api/rooms/not-a-room/products/SN-002").status_code == 404


def test_page_files_have_no_emoji():
    for name in ("room.html", "room.js", "room.css"):
        text = (WEB / name).read_text(encoding="utf-8")
        assert not EMOJI.findall(text), f"{name}: {EMOJI.findall(text)}"


def test_every_label_in_both_languages():
    js = (WEB / "room.js").read_text(encoding="utf-8")
    html = (WEB / "room.html").read_text(encoding="utf-8")
    zh = js[js.index("    zh: {") + 9 : js.index("    en: {")]
    en = js[js.index("    en: {") + 9 : js.index("  const T = ")]
    key = re.compile(r"\b([A-Za-z_]+):")
    zh, en = (re.sub(r'"[^"]*"|`[^`]*`', '""', part) for part in (zh, en))  # keys, not the words in labels
    assert set(key.findall(zh)) == set(key.findall(en))
    used = set(re.findall(r'data-i18n(?:-title|-placeholder)?="([A-Za-z_]+)"', html))
    assert used and used <= set(key.findall(en))
    assert not re.search(r"[A-Za-z]{3,}", "".join(re.findall(r'data-i18n="[^"]+">([^<]*)<', html)))  # zh default
