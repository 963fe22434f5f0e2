"""Deterministic synthetic pictures: demo product shots, viewer-style transforms, unrelated images
and printed labels. Used by ``scripts/make_demo_images.py``, ``evals/images.py`` and the tests.

Nothing here is used to answer a viewer; it only makes pictures to index and to test against.
Every function takes its randomness from an explicit seed, so the same inputs give the same pixels
(on the same Pillow/FreeType and font).
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import re
import subprocess
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vision.colors import colour_variants, hex_to_rgb, variant_colour
from vision.matcher import slug

_FONT_CANDIDATES = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
]


class NoCJKFont(RuntimeError):
    pass


@lru_cache(maxsize=1)
def cjk_font_path() -> str:
    """A font that renders Chinese: WenQuanYi Micro Hei (Debian ``fonts-wqy-microhei``) first."""
    for p in _FONT_CANDIDATES:
        if Path(p).is_file():
            return p
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10).stdout
        files = sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
        if files:
            return files[0]
    except (OSError, subprocess.SubprocessError):
        pass
    raise NoCJKFont("no CJK font found: run scripts/install_system_deps.sh (installs fonts-wqy-microhei)")


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    path = cjk_font_path()
    index = 2 if "NotoSansCJK" in path else 0  # the SC face of Noto's collection
    return ImageFont.truetype(path, size, index=index)


def seed_of(*parts: Any) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _get(p: Any, key: str, default: Any = "") -> Any:
    if isinstance(p, dict):
        return p.get(key, default)
    v = getattr(p, key, None)
    if v is None:
        v = (getattr(p, "model_extra", None) or {}).get(key, default)
    return default if v is None else v


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, x * f))) for x in c)  # type: ignore[return-value]


def _lum(c: tuple[int, int, int]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _ink(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    return (30, 30, 34) if _lum(bg) > 140 else (250, 250, 248)


def _text_w(draw: ImageDraw.ImageDraw, text: str, f: ImageFont.FreeTypeFont) -> int:
    b = draw.textbbox((0, 0), text, font=f)
    return b[2] - b[0]


def _wrap(draw: ImageDraw.ImageDraw, text: str, f: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str]:
    lines, cur = [], ""
    for ch in text:
        if _text_w(draw, cur + ch, f) <= width or not cur:
            cur += ch
        else:
            lines.append(cur)
            cur = ch.lstrip()
    if cur:
        lines.append(cur)
    return lines[:max_lines]


# --- product shots ------------------------------------------------------------------------------

_SHAPES_BY_WORD: list[tuple[str, str]] = [
    ("口红", "lipstick"),
    ("唇釉", "wand"),
    ("睫毛膏", "wand"),
    ("眼线笔", "pencil"),
    ("眉笔", "pencil"),
    ("眼影盘", "palette"),
    ("气垫", "compact"),
    ("腮红", "compact"),
    ("散粉", "jar"),
    ("粉底液", "square_bottle"),
    ("精华液", "dropper"),
    ("精华油", "dropper"),
    ("面霜", "jar"),
    ("眼霜", "jar"),
    ("爽肤水", "tall_bottle"),
    ("卸妆油", "pump"),
    ("身体乳", "pump"),
    ("洁面", "tube"),
    ("防晒", "tube"),
    ("面膜", "sachet"),
    ("棉片", "tub"),
    ("连衣裙", "dress"),
    ("半身裙", "skirt"),
    ("牛仔裤", "trousers"),
    ("西装裤", "trousers"),
    ("开衫", "top"),
    ("T恤", "top"),
    ("大衣", "coat"),
    ("羽绒服", "coat"),
    ("衬衫", "top"),
    ("防晒衣", "coat"),
    ("打底衫", "top"),
    ("卫衣", "top"),
    ("礼盒", "giftbox"),
    ("月饼", "giftbox"),
    ("咖啡", "box"),
    ("欧包", "bag"),
    ("燕麦", "box"),
    ("茶", "box"),
    ("蛋黄酥", "box"),
    ("坚果", "pouch"),
    ("巴旦木", "pouch"),
    ("牛肉干", "pouch"),
    ("草莓", "pouch"),
    ("海苔", "pouch"),
    ("酸奶", "pouch"),
]
_SHAPES = ["dropper", "jar", "tube", "box", "pouch", "tall_bottle"]


def shape_for(name: str, rng: random.Random, category: str = "") -> str:
    if category == "礼盒" or "礼盒" in name:
        return "giftbox"
    for word, shape in sorted(_SHAPES_BY_WORD, key=lambda ws: -len(ws[0])):
        if word in name:
            return shape
    return rng.choice(_SHAPES)


def short_name(name: str, brand: str = "暖光") -> str:
    n = name.strip()
    if n.startswith(brand):
        n = n[len(brand) :].strip()
    return n


def product_images_plan(product: Any) -> list[tuple[str | None, str]]:
    """[(variant name or None, file name)]: the main shot, plus one per colour variant when there are 2+."""
    sku = str(_get(product, "sku"))
    plan: list[tuple[str | None, str]] = [(None, f"{sku}.png")]
    cv = colour_variants(product)
    if len(cv) >= 2:
        plan += [(name, f"{sku}__{slug(name)}.png") for name, _ in cv]
    return plan


def render_product_shot(
    product: Any, variant: str | None = None, size: int = 320, brand: str = "暖光", brand_latin: str = "NUANGUANG"
) -> Image.Image:
    """A packaging-like main image (主图) for a product, in the given colour variant."""
    sku = str(_get(product, "sku"))
    name = str(_get(product, "name"))
    category = str(_get(product, "category"))
    rng = random.Random(seed_of("shot", sku))  # same geometry for every variant of a sku
    cvs = colour_variants(product)
    body_hex = None
    if variant is not None:
        body_hex = next((h for n, h in cvs if n == variant), None) or variant_colour({"name": variant})
    elif cvs:
        body_hex = cvs[0][1]
    hue = rng.random()
    bg = _hsv(hue, 0.10 + 0.12 * rng.random(), 0.93 + 0.06 * rng.random())
    body = (
        hex_to_rgb(body_hex)
        if body_hex
        else _hsv(hue + 0.35 + 0.3 * rng.random(), 0.45 + 0.4 * rng.random(), 0.55 + 0.4 * rng.random())
    )
    accent = _hsv(hue + 0.5 + 0.2 * rng.random(), 0.6 + 0.3 * rng.random(), 0.5 + 0.35 * rng.random())
    S = 640  # draw at 2x and downsample: smoother edges, like a real photo
    im = Image.new("RGB", (S, S), bg)
    d = ImageDraw.Draw(im)
    _background_pattern(d, S, bg, rng)
    band_top = rng.random() < 0.35
    band_h = int(S * (0.30 + 0.06 * rng.random()))
    band_y = 0 if band_top else S - band_h
    stage = (0, band_h, S, S) if band_top else (0, 0, S, S - band_h)
    shape = shape_for(name, rng, category)
    pattern = (
        "floral" if "碎花" in (variant or "") or ("碎花" in name) else "plaid" if "格纹" in (variant or "") else None
    )
    _draw_shape(im, d, shape, stage, body, accent, rng, sku, pattern)
    # Title band: short name, spec line, brand mark, sku and a barcode.
    band_col = _hsv(hue + rng.choice([0.0, 0.5]), 0.25 + 0.5 * rng.random(), 0.25 + 0.7 * rng.random())
    d.rectangle((0, band_y, S, band_y + band_h), fill=band_col)
    ink = _ink(band_col)
    title = short_name(name, brand)
    size_m = re.search(r"\s(\S*\d+\S*)$", title)
    main_title = title[: size_m.start()] if size_m else title
    sub = size_m.group(1) if size_m else str(_get(product, "series") or category)
    if variant:
        sub = f"{sub} · {variant}" if sub else variant
    fsz = 50 if len(main_title) <= 9 else 42 if len(main_title) <= 12 else 36
    f_title = font(fsz)
    lines = _wrap(d, main_title, f_title, S - 60, 2)
    y = band_y + 18
    for ln in lines:
        d.text((30, y), ln, font=f_title, fill=ink, stroke_width=1, stroke_fill=ink)
        y += fsz + 8
    d.text((30, y + 2), sub, font=font(28), fill=ink)
    # barcode at the band's right bottom, seeded by sku
    bx, by = S - 190, band_y + band_h - 62
    d.rectangle((bx - 8, by - 6, bx + 168, by + 48), fill=(255, 255, 255))
    brng = random.Random(seed_of("barcode", sku))
    x = bx
    while x < bx + 160:
        w = brng.choice([2, 2, 4, 6])
        if brng.random() < 0.55:
            d.rectangle((x, by, x + w - 1, by + 30), fill=(0, 0, 0))
        x += w
    d.text((bx, by + 31), sku, font=font(14), fill=(0, 0, 0))
    # brand mark in the stage corner
    mx, my = (24, stage[1] + 20)
    d.ellipse((mx, my, mx + 56, my + 56), fill=accent)
    d.text((mx + 8, my + 10), brand[:1], font=font(34), fill=_ink(accent))
    d.text((mx + 66, my + 12), f"{brand} {brand_latin}", font=font(24), fill=_ink(bg))
    if rng.random() < 0.5:
        badge = rng.choice(["新品", "热卖", "直播专享", "人气款", "回购榜"])
        bw = _text_w(d, badge, font(26)) + 28
        cx = S - bw - 20
        d.rounded_rectangle((cx, stage[1] + 22, cx + bw, stage[1] + 66), radius=20, fill=accent)
        d.text((cx + 14, stage[1] + 28), badge, font=font(26), fill=_ink(accent))
    return im.resize((size, size), Image.Resampling.LANCZOS)


def _background_pattern(d: ImageDraw.ImageDraw, S: int, bg: tuple[int, int, int], rng: random.Random) -> None:
    col = _shade(bg, 0.86)
    kind = rng.choice(["stripes", "dots", "arcs", "confetti", "grid"])
    if kind == "stripes":
        step = rng.randint(28, 48)
        for x in range(-S, S, step):
            d.line((x, 0, x + S, S), fill=col, width=rng.randint(4, 9))
    elif kind == "dots":
        step = rng.randint(30, 50)
        r = rng.randint(4, 8)
        for y in range(step // 2, S, step):
            for x in range(step // 2 + (y // step % 2) * step // 2, S, step):
                d.ellipse((x - r, y - r, x + r, y + r), fill=col)
    elif kind == "arcs":
        cx, cy = rng.randint(0, S), rng.randint(0, S)
        for r in range(40, 2 * S, rng.randint(30, 46)):
            d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=col, width=5)
    elif kind == "confetti":
        for _ in range(70):
            x, y, r = rng.randint(0, S), rng.randint(0, S), rng.randint(5, 14)
            if rng.random() < 0.5:
                d.rectangle((x, y, x + r, y + r // 2), fill=col)
            else:
                d.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=col)
    else:
        step = rng.randint(40, 70)
        for x in range(0, S, step):
            d.line((x, 0, x, S), fill=col, width=3)
        for y in range(0, S, step):
            d.line((0, y, S, y), fill=col, width=3)


def _draw_shape(
    im: Image.Image,
    d: ImageDraw.ImageDraw,
    shape: str,
    stage: tuple[int, int, int, int],
    body: tuple[int, int, int],
    accent: tuple[int, int, int],
    rng: random.Random,
    sku: str,
    pattern: str | None,
) -> None:
    x0, y0, x1, y1 = stage
    cx = (x0 + x1) // 2 + rng.randint(-60, 60)
    cy = (y0 + y1) // 2 + 20
    h = (y1 - y0) - 110
    outline = _shade(body, 0.6)
    cap = _shade(accent, 0.9) if rng.random() < 0.5 else (40, 40, 44)
    label = (250, 248, 240)

    def label_panel(bx0: int, by0: int, bx1: int, by1: int) -> None:
        d.rectangle((bx0, by0, bx1, by1), fill=label)
        short = sku.split("-")[-1]
        d.text((bx0 + 8, by0 + 6), short, font=font(max(14, min(28, (by1 - by0) // 3))), fill=_shade(accent, 0.7))
        lr = random.Random(seed_of("label", sku))
        for i in range(3):
            yy = by0 + (by1 - by0) * (i + 2) // 6
            d.line(
                (bx0 + 8, yy, bx0 + 8 + lr.randint((bx1 - bx0) // 3, bx1 - bx0 - 16), yy),
                fill=_shade(accent, 0.8),
                width=3,
            )

    if shape in ("dropper", "tall_bottle", "pump", "square_bottle"):
        w = {"dropper": 150, "tall_bottle": 140, "pump": 150, "square_bottle": 190}[shape]
        top = cy - h // 2 + (60 if shape != "tall_bottle" else 40)
        r = 18 if shape == "square_bottle" else 40
        d.rounded_rectangle((cx - w // 2, top, cx + w // 2, cy + h // 2), radius=r, fill=body, outline=outline, width=4)
        if shape == "dropper":
            d.rectangle((cx - 30, top - 40, cx + 30, top), fill=cap)
            d.ellipse((cx - 26, top - 100, cx + 26, top - 30), fill=cap)
        elif shape == "pump":
            d.rectangle((cx - 26, top - 40, cx + 26, top), fill=cap)
            d.rectangle((cx - 8, top - 70, cx + 8, top - 40), fill=cap)
            d.rectangle((cx - 8, top - 76, cx + 60, top - 62), fill=cap)
        else:
            d.rectangle((cx - 40, top - 46, cx + 40, top), fill=cap)
        label_panel(cx - w // 2 + 16, top + 50, cx + w // 2 - 16, top + 50 + min(120, h // 2))
    elif shape in ("jar", "tub", "compact"):
        w = 250 if shape != "compact" else 230
        hh = 130 if shape == "jar" else 90
        top = cy - hh // 2
        d.rectangle((cx - w // 2, top, cx + w // 2, top + hh), fill=body, outline=outline, width=4)
        d.ellipse((cx - w // 2, top + hh - 40, cx + w // 2, top + hh + 40), fill=body, outline=outline, width=4)
        d.ellipse((cx - w // 2, top - 40, cx + w // 2, top + 40), fill=cap, outline=_shade(cap, 0.6), width=4)
        if shape == "compact":
            d.ellipse((cx - 50, top - 20, cx + 50, top + 20), outline=_ink(cap), width=4)
        label_panel(cx - w // 2 + 30, top + 40, cx + w // 2 - 30, top + hh - 4)
    elif shape in ("tube", "sachet"):
        w, hh = (170, h) if shape == "tube" else (260, h - 20)
        top = cy - hh // 2
        if shape == "tube":
            d.polygon(
                [
                    (cx - w // 2, top),
                    (cx + w // 2, top),
                    (cx + w // 2 - 30, top + hh - 40),
                    (cx - w // 2 + 30, top + hh - 40),
                ],
                fill=body,
                outline=outline,
            )
            d.rectangle((cx - 34, top + hh - 40, cx + 34, top + hh), fill=cap)
            for i in range(6):
                d.line((cx - w // 2 + 4, top + 6 + i * 5, cx + w // 2 - 4, top + 6 + i * 5), fill=outline, width=2)
        else:
            d.rounded_rectangle(
                (cx - w // 2, top, cx + w // 2, top + hh), radius=16, fill=body, outline=outline, width=4
            )
            for i in range(0, w, 14):
                d.line((cx - w // 2 + i, top, cx - w // 2 + i + 7, top + 12), fill=outline, width=3)
        label_panel(cx - w // 2 + 34, top + 50, cx + w // 2 - 34, top + 50 + min(110, hh // 2))
    elif shape in ("lipstick", "wand", "pencil"):
        n = 1 if shape != "pencil" else 2
        for k in range(n):
            ox = cx + (k - (n - 1) / 2) * 90
            if shape == "lipstick":
                d.rectangle((ox - 40, cy, ox + 40, cy + h // 2), fill=cap, outline=(20, 20, 20), width=3)
                d.rectangle((ox - 32, cy - 60, ox + 32, cy), fill=_shade(cap, 1.3))
                d.polygon([(ox - 28, cy - 60), (ox + 28, cy - 60), (ox + 28, cy - 130), (ox - 28, cy - 100)], fill=body)
                d.rectangle((ox + 60, cy - 20, ox + 160, cy + 60), fill=body, outline=outline, width=3)  # swatch
            elif shape == "wand":
                d.rounded_rectangle(
                    (ox - 34, cy - h // 2 + 70, ox + 34, cy + h // 2), radius=20, fill=body, outline=outline, width=4
                )
                d.rectangle((ox - 30, cy - h // 2 + 10, ox + 30, cy - h // 2 + 70), fill=cap)
            else:
                d.polygon(
                    [
                        (ox - 18, cy - h // 2 + 10),
                        (ox + 18, cy - h // 2 + 10),
                        (ox + 18, cy + h // 2 - 40),
                        (ox, cy + h // 2),
                        (ox - 18, cy + h // 2 - 40),
                    ],
                    fill=body,
                    outline=outline,
                )
                d.rectangle((ox - 18, cy - h // 2 + 10, ox + 18, cy - h // 2 + 50), fill=cap)
        d.rectangle((cx + 70, cy + 40, cx + 240, cy + 110), fill=label)
        d.text((cx + 80, cy + 52), sku.split("-")[-1], font=font(36), fill=_shade(accent, 0.6))
    elif shape == "palette":
        w, hh = 330, 240
        top = cy - hh // 2
        d.rounded_rectangle((cx - w // 2, top, cx + w // 2, top + hh), radius=20, fill=(40, 36, 34))
        pr = random.Random(seed_of("palette", sku))
        for i in range(3):
            for j in range(3):
                col = _hsv(0.05 + 0.06 * pr.random(), 0.3 + 0.5 * pr.random(), 0.35 + 0.6 * pr.random())
                d.rectangle(
                    (cx - w // 2 + 20 + j * 100, top + 15 + i * 75, cx - w // 2 + 110 + j * 100, top + 80 + i * 75),
                    fill=col,
                )
    elif shape in ("box", "giftbox", "bag", "pouch"):
        w, hh = (300, 230) if shape in ("box", "giftbox") else (250, h - 10)
        top = cy - hh // 2
        if shape == "pouch":
            d.polygon(
                [(cx - w // 2 + 20, top), (cx + w // 2 - 20, top), (cx + w // 2, top + hh), (cx - w // 2, top + hh)],
                fill=body,
                outline=outline,
            )
            d.rectangle((cx - w // 2 + 20, top, cx + w // 2 - 20, top + 18), fill=_shade(body, 0.8))
        else:
            d.rectangle((cx - w // 2, top, cx + w // 2, top + hh), fill=body, outline=outline, width=4)
            d.polygon(
                [(cx - w // 2, top), (cx - w // 2 + 40, top - 36), (cx + w // 2 + 40, top - 36), (cx + w // 2, top)],
                fill=_shade(body, 1.15),
                outline=outline,
            )
            d.polygon(
                [
                    (cx + w // 2, top),
                    (cx + w // 2 + 40, top - 36),
                    (cx + w // 2 + 40, top + hh - 36),
                    (cx + w // 2, top + hh),
                ],
                fill=_shade(body, 0.75),
                outline=outline,
            )
        if shape == "giftbox":
            d.rectangle((cx - 14, top, cx + 14, top + hh), fill=accent)
            d.rectangle((cx - w // 2, top + hh // 2 - 14, cx + w // 2, top + hh // 2 + 14), fill=accent)
            d.ellipse((cx - 60, top - 70, cx, top - 10), outline=accent, width=12)
            d.ellipse((cx, top - 70, cx + 60, top - 10), outline=accent, width=12)
        else:
            label_panel(cx - w // 2 + 40, top + 40, cx + w // 2 - 40, top + 40 + hh // 2)
    else:  # garments
        _draw_garment(d, shape, cx, cy, h, body, outline, rng)
        if pattern:
            mask = Image.new("L", im.size, 0)
            _draw_garment(ImageDraw.Draw(mask), shape, cx, cy, h, 255, 255, rng.__class__(seed_of("g", sku)))
            tex = Image.new("RGB", im.size, body)
            td = ImageDraw.Draw(tex)
            pr = random.Random(seed_of("pattern", sku))
            if pattern == "floral":
                for _ in range(160):
                    x, y = pr.randint(0, im.width), pr.randint(0, im.height)
                    c = (250, 250, 245) if pr.random() < 0.6 else _shade(body, 0.6)
                    for a in range(5):
                        ang = a * 2 * math.pi / 5
                        px, py = x + 7 * math.cos(ang), y + 7 * math.sin(ang)
                        td.ellipse((px - 4, py - 4, px + 4, py + 4), fill=c)
            else:
                for x in range(0, im.width, 48):
                    td.rectangle((x, 0, x + 14, im.height), fill=_shade(body, 0.6))
                for y in range(0, im.height, 48):
                    td.rectangle((0, y, im.width, y + 14), fill=_shade(body, 0.75))
            im.paste(tex, (0, 0), mask)
        # hang tag
        tx, ty = cx + 110, cy - 40
        d.line((tx + 10, ty - 40, tx + 40, ty), fill=(80, 80, 80), width=3)
        d.rounded_rectangle(
            (tx, ty, tx + 120, ty + 150), radius=10, fill=(250, 248, 240), outline=(90, 90, 90), width=3
        )
        d.text((tx + 14, ty + 14), sku.split("-")[-1], font=font(36), fill=_shade(accent, 0.6))
        d.text((tx + 14, ty + 64), "暖光", font=font(30), fill=(40, 40, 40))
        tr = random.Random(seed_of("tag", sku))
        for i in range(3):
            d.line(
                (tx + 14, ty + 110 + i * 10, tx + 14 + tr.randint(40, 95), ty + 110 + i * 10),
                fill=(120, 120, 120),
                width=3,
            )


def _draw_garment(
    d: ImageDraw.ImageDraw, shape: str, cx: int, cy: int, h: int, fill: Any, outline: Any, rng: random.Random
) -> None:
    cx -= 60
    t = cy - h // 2
    if shape in ("top", "coat"):
        L = h if shape == "coat" else int(h * 0.8)
        pts = [
            (cx - 60, t),
            (cx - 25, t + 18),
            (cx + 25, t + 18),
            (cx + 60, t),
            (cx + 130, t + 50),
            (cx + 105, t + 110),
            (cx + 75, t + 85),
            (cx + 75, t + L),
            (cx - 75, t + L),
            (cx - 75, t + 85),
            (cx - 105, t + 110),
            (cx - 130, t + 50),
        ]
        d.polygon(pts, fill=fill, outline=outline)
        if shape == "coat":
            d.line((cx, t + 18, cx, t + L), fill=outline, width=4)
    elif shape == "dress":
        pts = [
            (cx - 45, t),
            (cx + 45, t),
            (cx + 60, t + 100),
            (cx + 40, t + 140),
            (cx + 130, t + h),
            (cx - 130, t + h),
            (cx - 40, t + 140),
            (cx - 60, t + 100),
        ]
        d.polygon(pts, fill=fill, outline=outline)
    elif shape == "skirt":
        pts = [(cx - 70, t + 40), (cx + 70, t + 40), (cx + 140, t + h), (cx - 140, t + h)]
        d.polygon(pts, fill=fill, outline=outline)
    else:  # trousers
        pts = [
            (cx - 85, t),
            (cx + 85, t),
            (cx + 100, t + h),
            (cx + 15, t + h),
            (cx, t + 90),
            (cx - 15, t + h),
            (cx - 100, t + h),
        ]
        d.polygon(pts, fill=fill, outline=outline)
        d.rectangle((cx - 85, t, cx + 85, t + 22), fill=fill, outline=outline)


# --- viewer-style transforms --------------------------------------------------------------------


def to_jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


def t_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    fw, fh = rng.uniform(0.65, 0.85), rng.uniform(0.65, 0.85)
    cw, ch = int(w * fw), int(h * fh)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def t_rotate(img: Image.Image, rng: random.Random) -> Image.Image:
    ang = rng.choice([-1, 1]) * rng.uniform(5, 15)
    fill = tuple(rng.randint(200, 255) for _ in range(3))
    return img.rotate(ang, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def t_scale(img: Image.Image, rng: random.Random) -> Image.Image:
    f = rng.choice([rng.uniform(0.55, 0.8), rng.uniform(1.3, 2.0)])
    return img.resize((max(16, int(img.width * f)), max(16, int(img.height * f))), Image.Resampling.BILINEAR)


def t_jpeg(img: Image.Image, rng: random.Random) -> Image.Image:
    return to_jpeg(img, rng.randint(30, 60))


DANMAKU = [
    "主播好",
    "这个有吗",
    "求链接",
    "多少钱",
    "上车了",
    "666",
    "已拍",
    "有优惠券吗",
    "好看",
    "几号链接",
    "怎么买",
    "敏感肌能用吗",
    "来了来了",
    "拍了拍了",
    "发货快吗",
    "还有库存吗",
    "这个颜色好看",
    "主播穿什么码",
]


def t_screenshot(img: Image.Image, rng: random.Random, product_scale: float | None = None) -> Image.Image:
    """A phone screenshot of a live room: status bar, host bar, the picture, danmaku, bottom bar."""
    W, H = 540, 960
    dark = rng.random() < 0.5
    bg = (18, 18, 22) if dark else (238, 238, 240)
    fg = (245, 245, 245) if dark else (20, 20, 20)
    sc = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(sc)
    d.text((20, 10), f"{rng.randint(8, 23)}:{rng.randint(0, 59):02d}", font=font(20), fill=fg)
    d.rectangle((W - 62, 14, W - 22, 32), outline=fg, width=2)
    d.rectangle((W - 58, 18, W - 58 + rng.randint(10, 32), 28), fill=fg)
    d.rounded_rectangle((14, 48, 250, 100), radius=26, fill=(0, 0, 0) if not dark else (60, 60, 66))
    d.ellipse((18, 52, 62, 96), fill=(200, 150, 120))
    d.text((70, 54), rng.choice(["暖光官方直播间", "好物推荐官", "小林的直播间"]), font=font(18), fill=(255, 255, 255))
    d.text((70, 76), f"{rng.randint(1, 99)}.{rng.randint(0, 9)}万人观看", font=font(14), fill=(220, 220, 220))
    d.rounded_rectangle((260, 58, 330, 92), radius=17, fill=(255, 60, 90))
    d.text((274, 62), "关注", font=font(18), fill=(255, 255, 255))
    # the product picture, as a card in the live view
    f = product_scale or rng.uniform(1.05, 1.45)
    pw = int(min(W - 40, img.width * f * (320 / max(img.size))))
    ph = int(pw * img.height / img.width)
    prod = img.resize((pw, ph), Image.Resampling.BILINEAR)
    px = rng.randint(10, max(10, W - pw - 10))
    py = rng.randint(140, max(140, H - ph - 200))
    sc.paste(prod, (px, py))
    # danmaku over everything in the middle
    for _ in range(rng.randint(4, 8)):
        txt = rng.choice(DANMAKU)
        user = rng.choice(["小鱼", "阿花", "momo", "糖糖", "大白", "Lily", "橙子"])
        line = f"{user}：{txt}"
        fnt = font(rng.choice([18, 20, 22]))
        tw = _text_w(d, line, fnt) + 20
        x, y = rng.randint(0, W - tw), rng.randint(120, H - 160)
        overlay = Image.new("RGBA", (tw, 34), (0, 0, 0, 110))
        od = ImageDraw.Draw(overlay)
        od.text((10, 5), line, font=fnt, fill=(255, 255, 255, 235))
        sc.paste(overlay, (x, y), overlay)
    # bottom bar
    d.rounded_rectangle((14, H - 70, 300, H - 22), radius=24, fill=(60, 60, 66) if dark else (220, 220, 224))
    d.text((34, H - 58), "说点什么...", font=font(20), fill=(170, 170, 170))
    for i, c in enumerate([(255, 80, 110), (255, 170, 40), (90, 160, 255)]):
        x = 330 + i * 66
        d.ellipse((x, H - 72, x + 52, H - 20), fill=c)
    d.text((338, H - 60), "购", font=font(22), fill=(255, 255, 255))
    return to_jpeg(sc, rng.randint(70, 90))


def t_photo(img: Image.Image, rng: random.Random) -> Image.Image:
    """A phone photo of the real thing: perspective, lighting, blur, sensor noise, a table around it."""
    import cv2

    src = np.asarray(img.convert("RGB"))
    h, w = src.shape[:2]
    m = 0.08
    pts1 = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    pts2 = np.float32(
        [
            [rng.uniform(0, m) * w, rng.uniform(0, m) * h],
            [w - rng.uniform(0, m) * w, rng.uniform(0, m) * h],
            [w - rng.uniform(0, m) * w, h - rng.uniform(0, m) * h],
            [rng.uniform(0, m) * w, h - rng.uniform(0, m) * h],
        ]
    )
    pad = int(0.15 * w)
    pts2 += pad
    M = cv2.getPerspectiveTransform(pts1, pts2)
    table = tuple(rng.randint(90, 200) for _ in range(3))
    out = cv2.warpPerspective(src, M, (w + 2 * pad, h + 2 * pad), borderValue=table)
    gain = rng.uniform(0.75, 1.2)
    grad = np.linspace(rng.uniform(0.85, 1.0), rng.uniform(1.0, 1.1), out.shape[1])[None, :, None]
    out = np.clip(out.astype(np.float32) * gain * grad + rng.uniform(-15, 15), 0, 255)
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    out = np.clip(out + nrng.normal(0, 4, out.shape), 0, 255).astype(np.uint8)
    pil = Image.fromarray(out).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return to_jpeg(pil, rng.randint(60, 85))


def t_thumbnail(img: Image.Image, rng: random.Random) -> Image.Image:
    """A tiny thumbnail (a forwarded link preview): too small for local features, hashes still match."""
    side = rng.randint(64, 110)
    return to_jpeg(img.resize((side, side), Image.Resampling.BILINEAR), rng.randint(50, 80))


TRANSFORMS: dict[str, Callable[[Image.Image, random.Random], Image.Image]] = {
    "crop": t_crop,
    "rotate": t_rotate,
    "scale": t_scale,
    "jpeg": t_jpeg,
    "screenshot": t_screenshot,
    "photo": t_photo,
    "thumbnail": t_thumbnail,
}


def t_mixed(img: Image.Image, rng: random.Random) -> Image.Image:
    """Crop + rotate + recompress, then possibly inside a screenshot."""
    out = t_rotate(t_crop(img, rng), rng)
    return t_screenshot(out, rng) if rng.random() < 0.5 else t_jpeg(out, rng)


TRANSFORMS["mixed"] = t_mixed


# --- unrelated pictures -------------------------------------------------------------------------

OTHER_ITEMS = [
    ("云朵 洗衣液", "2kg 薰衣草香"),
    ("山野 登山鞋", "防滑耐磨 42码"),
    ("极光 蓝牙耳机", "降噪 续航30小时"),
    ("青禾 大米", "东北五常 5kg"),
    ("木子 保温杯", "316不锈钢 500ml"),
    ("星河 电动牙刷", "声波 三档"),
    ("小满 猫粮", "全价成猫粮 2kg"),
    ("南山 绿茶", "明前龙井 250g"),
    ("橙心 抽纸", "3层 100抽 x 6包"),
    ("远方 行李箱", "20寸 登机箱"),
    ("禾木 瑜伽垫", "加厚 10mm"),
    ("小熊 电饭煲", "3L 智能预约"),
    ("晨光 中性笔", "0.5mm 黑色 12支"),
    ("安心 口罩", "一次性 50只"),
    ("鲜丰 苹果", "烟台红富士 5斤"),
    ("森林 香薰机", "静音 大容量"),
    ("悦动 跳绳", "计数 轴承"),
    ("蓝海 洗发水", "控油 750ml"),
]


def unrelated_image(kind: str, seed: int, size: tuple[int, int] = (480, 480)) -> Image.Image:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    W, H = size
    if kind == "noise":
        if rng.random() < 0.5:
            arr = nrng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        else:
            small = nrng.integers(0, 256, (H // 16, W // 16, 3), dtype=np.uint8)
            arr = np.asarray(Image.fromarray(small).resize((W, H), Image.Resampling.BICUBIC))
        return Image.fromarray(arr)
    if kind == "gradient":
        c1, c2 = np.array([rng.randint(0, 255) for _ in range(3)]), np.array([rng.randint(0, 255) for _ in range(3)])
        if rng.random() < 0.5:
            t = np.linspace(0, 1, W)[None, :, None] * np.ones((H, 1, 1))
        else:
            yy, xx = np.mgrid[0:H, 0:W]
            t = (np.hypot(xx - rng.uniform(0, W), yy - rng.uniform(0, H)) / max(W, H))[..., None]
        return Image.fromarray(np.clip(c1 + (c2 - c1) * t, 0, 255).astype(np.uint8))
    if kind == "shapes":
        im = Image.new("RGB", (W, H), tuple(rng.randint(0, 255) for _ in range(3)))
        d = ImageDraw.Draw(im)
        for _ in range(rng.randint(8, 30)):
            c = tuple(rng.randint(0, 255) for _ in range(3))
            x0, y0 = rng.randint(-50, W), rng.randint(-50, H)
            x1, y1 = x0 + rng.randint(10, 200), y0 + rng.randint(10, 200)
            k = rng.random()
            if k < 0.3:
                d.rectangle((x0, y0, x1, y1), fill=c)
            elif k < 0.6:
                d.ellipse((x0, y0, x1, y1), fill=c)
            elif k < 0.8:
                d.line((x0, y0, x1, y1), fill=c, width=rng.randint(2, 12))
            else:
                d.polygon([(rng.randint(0, W), rng.randint(0, H)) for _ in range(rng.randint(3, 6))], fill=c)
        return im
    if kind == "text":
        name, spec = rng.choice(OTHER_ITEMS)
        bg = tuple(rng.randint(180, 255) for _ in range(3))
        im = Image.new("RGB", (W, H), bg)
        d = ImageDraw.Draw(im)
        y = rng.randint(30, 120)
        for line, sz in [
            (name, rng.randint(40, 60)),
            (spec, rng.randint(26, 36)),
            (rng.choice(["限时特惠", "买二送一", "官方旗舰店", "品质保证"]), 30),
        ]:
            d.text((rng.randint(20, 60), y), line, font=font(sz), fill=tuple(rng.randint(0, 90) for _ in range(3)))
            y += sz + rng.randint(20, 50)
        return im
    if kind == "other_product":
        name, spec = rng.choice(OTHER_ITEMS)
        fake = {"sku": f"ZZ-{seed % 1000:03d}", "name": f"{name} {spec.split()[0]}", "category": "其他"}
        brand = name.split()[0]
        return render_product_shot(
            fake, size=min(W, H), brand=brand, brand_latin=rng.choice(["CLOUD", "YUNDUO", "HOME", "LIFE", "MAX", "GO"])
        )
    if kind == "screenshot":
        inner = unrelated_image(rng.choice(["text", "other_product", "shapes"]), seed + 1, (320, 320))
        return t_screenshot(inner, rng)
    raise ValueError(f"unknown unrelated kind {kind!r}")


UNRELATED_KINDS = ["noise", "gradient", "shapes", "text", "other_product", "screenshot"]


# --- printed labels (OCR) -----------------------------------------------------------------------


def label_lines(product: Any, rng: random.Random) -> list[str]:
    name = str(_get(product, "name"))
    specs = _get(product, "specs", {}) or {}
    lines = [name]
    keys = [k for k in ("主要成分", "容量", "净含量", "面料", "规格", "产地", "保质期") if k in specs]
    for k in keys[:2]:
        v = re.sub(r"[()（）]", "", str(specs[k]))[:16]
        lines.append(f"{k}：{v}")
    lines.append(f"直播价 ¥{_get(product, 'price', 99):g}")
    return lines


def render_label(lines: list[str], seed: int, width: int = 720) -> Image.Image:
    """A printed label / price tag: dark text on a light card, slight tilt and JPEG, like a close photo."""
    rng = random.Random(seed)
    sizes = [rng.randint(34, 42)] + [rng.randint(28, 34) for _ in lines[1:]]
    height = sum(s + 22 for s in sizes) + 60
    bg = (rng.randint(235, 255), rng.randint(232, 252), rng.randint(225, 248))
    im = Image.new("RGB", (width, height), bg)
    d = ImageDraw.Draw(im)
    y = 30
    for line, sz in zip(lines, sizes):
        d.text((30, y), line, font=font(sz), fill=(rng.randint(0, 50),) * 3)
        y += sz + 22
    im = im.rotate(rng.uniform(-2.0, 2.0), resample=Image.Resampling.BICUBIC, expand=True, fillcolor=bg)
    return to_jpeg(im, rng.randint(75, 92))
