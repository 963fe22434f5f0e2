"""End to end: a viewer's screenshot of a demo product + "这个多少钱" → the live price, cited from the KB."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from sim.images import t_screenshot
from tests.conftest import write_json
from vision import ImageRejected, ImageStore, VisionService, query_text

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "knowledge" / "demo"
SKUS = [
    "SK-001",
    "SK-002",
    "SK-003",
    "SK-004",
    "MU-001",
    "MU-002",
    "AP-003",
    "AP-004",
    "SN-006",
    "SN-007",
    "GB-001",
    "GB-002",
]


@pytest.fixture()
def service(kb, tmp_path) -> VisionService:
    data = json.loads((DEMO / "products.json").read_text(encoding="utf-8"))
    subset = {"merchant": data.get("merchant", {}), "products": [p for p in data["products"] if p["sku"] in SKUS]}
    kb.import_files("demo", [write_json(tmp_path / "products.json", subset)])
    return VisionService(kb, ImageStore(tmp_path / "images"), image_dirs=lambda m: [DEMO / "images"])


def screenshot_png(sku: str, seed: int = 11) -> bytes:
    with Image.open(DEMO / "images" / f"{sku}.png") as im:
        shot = t_screenshot(im.convert("RGB"), random.Random(seed))
    buf = io.BytesIO()
    shot.save(buf, format="PNG")
    return buf.getvalue()


def test_screenshot_this_how_much_gets_the_live_price_with_a_citation(service, kb):
    analysis = service.ingest("demo", "room-7", screenshot_png("SK-001"), viewer_text="这个多少钱", viewer_id="v9")
    assert analysis.best_sku == "SK-001" and not analysis.not_ours and not analysis.ephemeral
    assert analysis.image_id and analysis.image_id.startswith("img_")
    assert query_text(analysis, "这个多少钱").startswith("暖光 玻尿酸保湿精华液 30ml")

    # the live price is among the first facts (its options' prices, facts of their own, sit beside it)
    version, hits = service.retrieve("demo", analysis, "这个多少钱", k=5)
    price = next(h for h in hits if h.kind == "price")
    live = kb.snapshot("demo").product("SK-001").price
    assert price.sku == "SK-001" and price.fact_id == "SK-001:price"
    assert f"直播价{live:g}元" in price.text  # the citation: fact id + version + text
    assert version == kb.active_version("demo")
    assert all(h.sku in ("SK-001", None) for h in hits)

    # The stored picture is the sanitised JPEG, addressable by reference id within its room.
    stored = service.store.get("room-7", analysis.image_id)
    assert stored[:3] == b"\xff\xd8\xff"
    parts = service.model_content("room-7", analysis.image_id, "这个多少钱", analysis)
    assert parts[-1]["type"] == "image_url" and parts[-1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "SK-001" in parts[1]["text"] and "知识库" in parts[1]["text"]
    assert service.purge_room("room-7") == 1


def test_not_our_product_and_bad_upload(service):
    from sim.images import unrelated_image

    buf = io.BytesIO()
    unrelated_image("other_product", 4).save(buf, format="PNG")
    a = service.ingest("demo", "room-8", buf.getvalue(), viewer_text="这个有吗")
    assert a.not_ours and a.best_sku is None and "未匹配到本店商品" in a.evidence[0]
    with pytest.raises(ImageRejected) as e:
        service.ingest("demo", "room-8", b"GIF89a" + b"\x00" * 100, viewer_text="?")
    assert e.value.code == "unsupported_format"
    assert len(service.store.list_room("room-8")) == 1


def test_selfie_question_is_kept_in_memory_only(service, tmp_path):
    a = service.ingest("demo", "room-9", screenshot_png("AP-004", seed=3), viewer_text="我穿这个颜色显黑吗")
    assert a.ephemeral and a.colour is None
    assert not list((tmp_path / "images").rglob(f"{a.image_id}*"))
    assert service.store.get("room-9", a.image_id)
    service.purge_room("room-9")
    assert service.store.list_room("room-9") == []
