"""Product matching, "not ours", colour variants, OCR and the person gate, on pictures made at test time."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter

from sim import images as synth
from vision import ocr, privacy
from vision.analyze import analyze_image, match_text, query_text
from vision.colors import colour_of_text, colour_variants, dominant_colours, nearest_variant_by_palette, variant_colour
from vision.matcher import MATCH_THRESHOLD, ProductImageIndex, resolve_product_images

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "knowledge" / "demo"
IMAGES = DEMO / "images"

needs_ocr = pytest.mark.skipif(
    not ocr.available(), reason="no OCR engine (`make setup` installs RapidOCR; tesseract is the fallback)"
)


@pytest.fixture(scope="module")
def products() -> list[dict]:
    return json.loads((DEMO / "products.json").read_text(encoding="utf-8"))["products"]


@pytest.fixture(scope="module")
def index(products) -> ProductImageIndex:
    return ProductImageIndex.build(products, [IMAGES])


def ref(name: str) -> Image.Image:
    with Image.open(IMAGES / name) as im:
        return im.convert("RGB")


def test_every_demo_product_has_a_picture(products):
    names = {p.name for p in IMAGES.glob("*.png")}
    for p in products:
        for _, fname in synth.product_images_plan(p):
            assert fname in names, fname
    assert sum(p.stat().st_size for p in IMAGES.glob("*.png")) < 5 * 1024 * 1024


def test_demo_pictures_are_deterministic(products):
    p = next(x for x in products if x["sku"] == "AP-003")
    for variant, fname in synth.product_images_plan(p)[:2]:
        again = synth.render_product_shot(p, variant)
        diff = sum(abs(a - b) for a, b in zip(again.tobytes(), ref(fname).tobytes()))
        assert diff / len(again.tobytes()) < 1.0  # same pixels (allowing for a different FreeType build)


@pytest.mark.parametrize("sku", ["SK-001", "MU-009", "AP-007", "SN-006", "GB-003"])
@pytest.mark.parametrize("transform", ["crop", "rotate", "scale", "jpeg", "screenshot", "photo", "thumbnail"])
def test_transformed_product_pictures_match(index, sku, transform):
    img = synth.TRANSFORMS[transform](ref(f"{sku}.png"), random.Random(synth.seed_of("test", sku, transform)))
    cands = index.match(img)
    assert cands and cands[0].sku == sku, [(c.sku, c.score, c.inliers) for c in cands]
    assert cands[0].score >= MATCH_THRESHOLD


@pytest.mark.parametrize("kind", synth.UNRELATED_KINDS)
def test_unrelated_pictures_are_not_ours(index, kind):
    for i in range(4):
        img = synth.unrelated_image(kind, synth.seed_of("test-unrelated", kind, i))
        cands = index.match(img)
        assert not cands or cands[0].score < MATCH_THRESHOLD, (kind, i, cands[0].sku, cands[0].score)


def test_score_is_calibrated_and_ordered(index):
    img = synth.t_screenshot(ref("SK-004.png"), random.Random(1))
    cands = index.match(img, top=3)
    assert 0.0 <= cands[-1].score <= cands[0].score <= 1.0
    assert cands[0].sku == "SK-004" and cands[0].inliers >= 15 and cands[0].method.startswith("orb")


def test_catalog_cannot_point_outside_the_image_folders(tmp_path):
    (tmp_path / "X-1.png").write_bytes(b"")
    p = {
        "sku": "X-1",
        "name": "x",
        "image": "../../../etc/passwd",
        "images": ["/etc/hostname"],
        "variants": [{"name": "红", "image": "../secret.png"}],
    }
    assert all(tmp_path in path.parents for _, path in resolve_product_images(p, [tmp_path]))


# --- colour variants ------------------------------------------------------------------------------


def test_colour_words_and_explicit_colours():
    assert colour_of_text("雾霾蓝") == "#8A9BA8" and colour_of_text("蓝色小碎花") == "#3A6EA5"
    assert colour_of_text("30ml") is None and colour_of_text("格纹") is None
    assert variant_colour({"name": "02 豆沙", "color": "#b5651d"}) == "#B5651D"
    assert colour_variants({"variants": [{"name": "30ml"}, {"name": "50ml"}]}) == []


def test_palette_picks_nearest_colour_variant():
    variants = [("02 豆沙", "#B5651D"), ("03 正红", "#C8102E"), ("黑色", "#1C1C1C")]
    img = Image.new("RGB", (200, 200), (245, 245, 245))
    ImageDraw.Draw(img).rectangle((50, 30, 150, 170), fill=(200, 20, 45))
    sw = dominant_colours(img)
    assert sw[0].fraction > 0.8  # the light background is not a swatch
    assert nearest_variant_by_palette(sw, variants)[0] == "03 正红"
    blue = Image.new("RGB", (100, 100), (20, 60, 220))
    assert nearest_variant_by_palette(dominant_colours(blue), variants) is None  # no variant is blue


@pytest.mark.parametrize("sku", ["AP-003", "AP-006", "GB-009"])
def test_colour_variant_of_a_screenshot(index, products, sku):
    p = next(x for x in products if x["sku"] == sku)
    for k, (variant, fname) in enumerate(synth.product_images_plan(p)[1:]):
        t = ("screenshot", "photo")[k % 2]
        img = synth.TRANSFORMS[t](ref(fname), random.Random(synth.seed_of("test-variant", fname)))
        a = analyze_image(img, products=products, index=index, run_ocr=False)
        assert a.best_sku == sku and a.variant == variant, (fname, t, a.variant)
        assert a.variant_method == "colour"


# --- OCR ------------------------------------------------------------------------------------------


def _norm(s: str) -> str:
    return re.sub(r"[^0-9A-Za-z\u3400-\u9fff]", "", s)


@needs_ocr
def test_ocr_reads_a_rendered_chinese_label(products):
    from rapidfuzz.distance import Levenshtein

    p = next(x for x in products if x["sku"] == "SK-004")
    lines = synth.label_lines(p, random.Random(3))
    result = ocr.run_ocr(synth.render_label(lines, seed=3))
    truth = _norm("".join(lines))
    acc = 1 - Levenshtein.distance(truth, _norm(result.text)) / len(truth)
    assert acc >= 0.85, result.text
    assert "烟酰胺" in result.text and result.lines and result.confidence > 50


@pytest.mark.skipif(not ocr.rapidocr_available(), reason="rapidocr-onnxruntime not installed (make setup)")
def test_rapidocr_is_the_default_and_tesseract_the_fallback(products, monkeypatch):
    p = next(x for x in products if x["sku"] == "SK-004")
    label = synth.render_label(synth.label_lines(p, random.Random(3)), seed=3)
    assert ocr.backend() == "rapidocr"
    assert "烟酰胺" in ocr.run_ocr(label).text
    monkeypatch.setattr(ocr, "rapidocr_available", lambda: False)
    if not ocr.tesseract_available():
        assert ocr.backend() is None and not ocr.available()
        return
    assert ocr.backend() == "tesseract"
    assert "烟酰胺" in ocr.run_ocr(label).text


@needs_ocr
def test_label_photo_is_identified_by_its_text(index, products):
    """A photo of a label is not a product picture: the product comes from the words on it."""
    p = next(x for x in products if x["sku"] == "SN-007")
    label = synth.render_label(synth.label_lines(p, random.Random(5)), seed=5)
    a = analyze_image(label, products=products, index=index, viewer_text="这个还有吗")
    assert a.best_sku == "SN-007" and a.matches[0].method == "ocr" and not a.not_ours
    assert "香辣" in a.ocr_text
    q = query_text(a, "这个还有吗")
    assert q.startswith(p["name"]) and q.endswith("这个还有吗")


@needs_ocr
def test_text_of_another_product_is_not_ours(index, products):
    img = synth.render_label(["云朵 洗衣液 2kg", "薰衣草香 深层洁净", "到手价 ¥39.9"], seed=9)
    a = analyze_image(img, products=products, index=index, viewer_text="你们有这个吗")
    assert a.not_ours and a.best_sku is None
    assert "洗衣液" in query_text(a, "你们有这个吗")


def test_text_matching_names_skus_and_aliases(products):
    assert match_text("SK-012 到了吗", products)[0] == ("SK-012", 1.0)
    assert match_text("暖光 积雪草舒缓面膜 5片装", products)[0][0] == "SK-009"
    assert match_text("小蓝瓶", products)[0][0] == "SK-001"
    top = match_text("蓝月亮 洗衣液 3kg", products)
    assert not top or top[0][1] < 0.82


# --- the person gate --------------------------------------------------------------------------------


def drawn_face() -> Image.Image:
    im = Image.new("RGB", (400, 400), (90, 120, 160))
    d = ImageDraw.Draw(im)
    d.ellipse((100, 60, 300, 320), fill=(224, 180, 150))
    d.ellipse((145, 150, 185, 175), fill=(40, 30, 30))
    d.ellipse((215, 150, 255, 175), fill=(40, 30, 30))
    d.rectangle((140, 135, 190, 142), fill=(60, 40, 30))
    d.rectangle((210, 135, 260, 142), fill=(60, 40, 30))
    d.polygon([(200, 180), (185, 240), (215, 240)], fill=(200, 150, 120))
    d.ellipse((165, 260, 235, 285), fill=(170, 60, 60))
    return im.filter(ImageFilter.GaussianBlur(3))


def test_person_words_make_a_picture_ephemeral_and_colourless(index, products):
    img = synth.t_jpeg(ref("AP-004.png"), random.Random(2))
    a = analyze_image(img, products=products, index=index, viewer_text="我是黄皮，这个颜色适合我吗", run_ocr=False)
    assert a.ephemeral and a.person_reason and a.person_reason.startswith("text:")
    assert a.colour is None and a.palette == []
    assert a.best_sku == "AP-004"  # the product is still recognised
    assert "年龄" in a.guardrail and "不要" in a.guardrail


@pytest.mark.skipif(not privacy.detector_available(), reason="OpenCV Haar cascade not bundled")
def test_face_like_picture_is_ephemeral_but_products_are_not(index, products):
    a = analyze_image(drawn_face(), products=products, index=index, run_ocr=False)
    assert a.ephemeral and a.person_reason == "face" and a.colour is None and a.not_ours
    b = analyze_image(ref("AP-006.png"), products=products, index=index, run_ocr=False)
    assert not b.ephemeral and b.colour is not None
