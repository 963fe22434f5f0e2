"""Upload safety (bad and hostile files) and the per-room picture store."""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib

import pytest
from PIL import Image

from vision.store import ImageNotFound, ImageStore, is_image_id
from vision.upload import MAX_SIDE, ImageRejected, sanitize_image

# --- helpers ---------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_stream(width: int, height: int, colour_type: int = 0, extra_chunks: bytes = b"") -> bytes:
    """A valid PNG of zeros built row by row: a huge picture in a tiny file, without allocating it."""
    channels = {0: 1, 2: 3}[colour_type]
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + width * channels)
    parts = []
    for _ in range(height):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + extra_chunks
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def photo(w: int = 64, h: int = 48) -> Image.Image:
    img = Image.new("RGB", (w, h), (200, 40, 40))
    for x in range(w // 2):
        for y in range(h):
            img.putpixel((x, y), (30, 60, 200))
    return img


def rejected(data: bytes) -> ImageRejected:
    with pytest.raises(ImageRejected) as e:
        sanitize_image(data)
    assert e.value.message and e.value.viewer_message
    return e.value


# --- formats and corrupt files ---------------------------------------------------------------------


def test_good_jpeg_png_webp_are_reencoded_as_clean_jpeg():
    for fmt in ("JPEG", "PNG", "WEBP"):
        out = sanitize_image(encoded(photo(), fmt))
        assert out.mime == "image/jpeg" and out.data[:3] == b"\xff\xd8\xff"
        assert (out.width, out.height) == (64, 48) and out.source_format == fmt
        assert out.image.mode == "RGB" and out.data_url.startswith("data:image/jpeg;base64,")


def test_corrupt_and_truncated_files_are_rejected():
    assert rejected(b"\xff\xd8\xff\xe0" + b"garbage" * 100).code == "corrupt"
    good = encoded(photo(200, 200), "PNG")
    assert rejected(good[: len(good) // 2]).code == "corrupt"
    jpg = encoded(photo(300, 300), "JPEG")
    assert rejected(jpg[: len(jpg) // 3]).code == "corrupt"
    assert rejected(b"").code == "empty"
    assert rejected(b"hello, this is text").code == "unsupported_format"


def test_gif_is_rejected_with_a_clear_message():
    frames = [Image.new("P", (32, 32), i) for i in range(3)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    e = rejected(data)
    assert e.code == "unsupported_format" and "GIF" in e.message and "GIF" in e.viewer_message


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(document.cookie)</script></svg>',
        b'\xef\xbb\xbf  <?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg><script>fetch("//x")</script><rect/></svg>',
    ],
)
def test_svg_with_script_is_rejected_unparsed(svg):
    e = rejected(svg)
    assert e.code == "unsupported_format" and "SVG" in e.message


def test_zip_bomb_is_rejected_without_opening_it():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.bin", b"\x00" * (50 * 1024 * 1024))  # 50 MiB → ~50 KiB
    t0 = time.perf_counter()
    e = rejected(buf.getvalue())
    assert e.code == "unsupported_format" and "archive" in e.message
    assert time.perf_counter() - t0 < 0.5


def test_heic_pdf_bmp_are_rejected():
    assert rejected(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64).code == "unsupported_format"
    assert rejected(b"%PDF-1.7\n" + b"x" * 64).code == "unsupported_format"
    assert rejected(encoded(photo(), "BMP")).code == "unsupported_format"


def test_size_limits():
    assert rejected(b"\x89PNG\r\n\x1a\n" + b"\x00" * (9 * 1024 * 1024)).code == "too_large"
    assert rejected(encoded(Image.new("RGB", (8, 8)), "PNG")).code == "too_small"


# --- decompression bombs and huge pictures -------------------------------------------------------


def test_decompression_bomb_png_is_rejected_from_its_header():
    data = png_stream(12_000, 12_000)  # 144 megapixels of zeros in ~140 KiB
    assert len(data) < 1024 * 1024
    t0 = time.perf_counter()
    e = rejected(data)
    assert e.code == "too_many_pixels"
    assert time.perf_counter() - t0 < 1.0  # nothing was decoded


def test_absurd_dimensions_are_rejected():
    # Header claims 100000 x 100000; the data is a single byte: never decoded.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00")) + _chunk(b"IEND", b"")
    assert rejected(data).code == "too_many_pixels"


def test_compressed_text_chunk_bomb_is_not_inflated():
    ztxt = b"Comment\x00\x00" + zlib.compress(b"A" * (64 * 1024 * 1024), 9)  # 64 MiB of text in ~64 KiB
    data = png_stream(64, 64, extra_chunks=_chunk(b"zTXt", ztxt))
    t0 = time.perf_counter()
    try:
        out = sanitize_image(data)
    except ImageRejected as e:
        assert e.code == "corrupt"
    else:
        assert b"AAAA" not in out.data
    assert time.perf_counter() - t0 < 2.0


def test_fifty_megapixel_png_is_rejected():
    e = rejected(png_stream(8_660, 5_774))  # 50.0 MP greyscale
    assert e.code == "too_many_pixels" and "50 MP" in e.message


def test_fifty_megapixel_jpeg_photo_is_decoded_at_reduced_scale():
    img = Image.new("L", (8_660, 5_774), 128)
    data = encoded(img, "JPEG", quality=70)
    del img
    out = sanitize_image(data)
    assert (out.source_width, out.source_height) == (8_660, 5_774)
    assert out.downscaled and max(out.width, out.height) <= MAX_SIDE


# --- metadata ------------------------------------------------------------------------------------


def test_exif_gps_is_stripped_and_orientation_applied():
    img = photo(80, 40)
    exif = Image.Exif()
    exif[0x010F] = "SecretPhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° CW to display
    gps = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 17.0)}
    exif[0x8825] = gps
    data = encoded(img, "JPEG", exif=exif, quality=95)
    assert b"SecretPhoneMaker" in data
    with Image.open(io.BytesIO(data)) as check:
        assert check.getexif().get(0x0112) == 6
    out = sanitize_image(data)
    assert out.had_metadata
    assert b"SecretPhoneMaker" not in out.data and b"Exif" not in out.data
    with Image.open(io.BytesIO(out.data)) as clean:
        assert not clean.getexif() and "exif" not in clean.info and "icc_profile" not in clean.info
    assert (out.width, out.height) == (40, 80)  # displayed upright, then the tag is gone


def test_png_text_and_alpha():
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add_text("Author", "viewer-real-name")
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    out = sanitize_image(encoded(rgba, "PNG", pnginfo=meta))
    assert b"viewer-real-name" not in out.data
    assert out.image.getpixel((20, 20)) == pytest.approx((255, 255, 255), abs=3)  # transparent → white


def test_animated_webp_keeps_first_frame():
    frames = [Image.new("RGB", (40, 40), c) for c in ((250, 0, 0), (0, 250, 0))]
    data = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    out = sanitize_image(data)
    assert out.frames == 2
    r, g, _ = out.image.getpixel((20, 20))
    assert r > 200 and g < 50


# --- store -----------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_store_put_get_purge(tmp_path):
    clock = Clock()
    store = ImageStore(tmp_path, ttl_seconds=100, ephemeral_ttl_seconds=10, clock=clock)
    img = sanitize_image(encoded(photo(), "PNG"))
    a = store.put("room-1", img, viewer_id="v1")
    b = store.put("room-1", img, ephemeral=True)
    c = store.put("room-2", img)
    assert is_image_id(a.image_id) and a.image_id.startswith("img_") and a.image_id != b.image_id
    assert store.get("room-1", a.image_id) == img.data
    assert store.get("room-1", b.image_id) == img.data
    assert (tmp_path / "room-1" / f"{a.image_id}.jpg").exists()
    assert not any(b.image_id in p.name for p in tmp_path.rglob("*"))  # ephemeral: never on disk
    with pytest.raises(ImageNotFound):
        store.get("room-2", a.image_id)  # another room's id
    assert {m.image_id for m in store.list_room("room-1")} == {a.image_id, b.image_id}
    assert store.purge_room("room-1") == 2
    with pytest.raises(ImageNotFound):
        store.get("room-1", a.image_id)
    with pytest.raises(ImageNotFound):
        store.get("room-1", b.image_id)
    assert store.get("room-2", c.image_id) == img.data


def test_store_ttl_and_quota(tmp_path):
    clock = Clock()
    store = ImageStore(tmp_path, ttl_seconds=100, ephemeral_ttl_seconds=10, max_per_room=3, clock=clock)
    img = sanitize_image(encoded(photo(), "PNG"))
    keep = store.put("r", img)
    eph = store.put("r", img, ephemeral=True)
    clock.t += 11
    with pytest.raises(ImageNotFound):
        store.get("r", eph.image_id)  # the ephemeral TTL is shorter
    assert store.get("r", keep.image_id)
    assert store.purge_expired() == 1
    clock.t += 100
    assert store.purge_expired() == 1 and not (tmp_path / "r").exists()
    ids = []
    for _ in range(5):
        clock.t += 1
        ids.append(store.put("r", img).image_id)
    assert [m.image_id for m in store.list_room("r")] == ids[-3:]


@pytest.mark.parametrize(
    "room,image_id",
    [
        ("../etc", "img_aaaaaaaaaaaaaaaa"),
        ("r", "../../passwd"),
        ("r", "img_../../x"),
        ("r/../x", "img_aaaaaaaaaaaaaaaa"),
    ],
)
def test_store_rejects_path_tricks(tmp_path, room, image_id):
    store = ImageStore(tmp_path)
    with pytest.raises((ValueError, ImageNotFound)):
        store.get(room, image_id)
