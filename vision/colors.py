"""Colour: dominant colours of a picture, colour words in variant names, nearest colour variant.

Variants may carry an explicit colour (``{"name": "02 豆沙", "color": "#B5651D"}``); when they
don't, the colour is read from the variant's name with a small lexicon (``"雾霾蓝"`` → a grey-blue).
Distances are CIE76 ΔE in CIELAB (≈2.3 is a just-noticeable difference; >25 is another colour).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

# Longest key wins ("雾霾蓝" before "蓝"). Values are typical sRGB renderings of the shade words used
# by Chinese e-commerce listings; a variant's own "color" field always takes precedence.
COLOUR_WORDS: dict[str, str] = {
    "奶茶豆沙": "#B7867A",
    "豆沙": "#B5756B",
    "暖橘红": "#E0573A",
    "橘红": "#E0573A",
    "蜜桃粉": "#F4A6A0",
    "复古正红": "#B3141E",
    "正红": "#C8102E",
    "干枯玫瑰": "#B06A6E",
    "玫瑰": "#C0566B",
    "西柚": "#F26D5B",
    "象牙白": "#F1E3CF",
    "自然色": "#E5C7A6",
    "自然": "#E2C2A0",
    "暖米色": "#D9B48F",
    "米色": "#E8D9BF",
    "亮白": "#F3E6D8",
    "浅棕": "#A47551",
    "深棕": "#5C3A21",
    "灰棕": "#7D6B5D",
    "黑棕": "#3B2A20",
    "卡其": "#C3B091",
    "咖啡": "#6F4E37",
    "复古蓝": "#3D5A80",
    "浅蓝": "#9CC3E6",
    "奶油黄": "#F6E3A1",
    "奶白": "#F4EFE3",
    "浅紫": "#C7B3E5",
    "燕麦": "#D8CBB0",
    "薄荷绿": "#A8E6CF",
    "藏青": "#1F2A44",
    "酒红": "#7B1E2B",
    "雾粉": "#E8C4C4",
    "雾蓝": "#A3B8CC",
    "雾霾蓝": "#8A9BA8",
    "香槟": "#E9D8B4",
    "驼": "#C19A6B",
    "灰": "#9A9A9A",
    "白": "#F7F7F5",
    "黑": "#1C1C1C",
    "黄": "#F2C94C",
    "蓝": "#3A6EA5",
    "红": "#C8102E",
    "粉": "#F2A7B5",
    "绿": "#4CAF50",
    "紫": "#8E6BBE",
    "棕": "#7B5230",
    "橙": "#F28C28",
    "金": "#D4AF37",
    "银": "#C0C0C0",
}
_WORDS_BY_LEN = sorted(COLOUR_WORDS, key=len, reverse=True)

# Basic names for describing a colour seen in a picture (not a product fact).
BASIC_NAMES: dict[str, str] = {
    "黑色": "#1C1C1C",
    "深灰色": "#555555",
    "灰色": "#9A9A9A",
    "白色": "#F5F5F5",
    "米色": "#E8D9BF",
    "红色": "#C8102E",
    "酒红色": "#7B1E2B",
    "粉色": "#F2A7B5",
    "橙色": "#F28C28",
    "黄色": "#F2C94C",
    "绿色": "#4CAF50",
    "青色": "#3FB8AF",
    "蓝色": "#3A6EA5",
    "浅蓝色": "#9CC3E6",
    "藏青色": "#1F2A44",
    "紫色": "#8E6BBE",
    "棕色": "#7B5230",
    "卡其色": "#C3B091",
    "金色": "#D4AF37",
}

_HEX_RE = re.compile(r"^#?([0-9a-fA-F]{6})$")


def hex_to_rgb(h: str) -> tuple[int, int, int]:
    m = _HEX_RE.match(h.strip())
    if not m:
        raise ValueError(f"not a #RRGGBB colour: {h!r}")
    v = m.group(1)
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def rgb_to_hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{int(round(max(0, min(255, c)))):02X}" for c in rgb[:3])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8/float sRGB 0-255 → (..., 3) float32 CIELAB (L 0-100)."""
    a = np.asarray(rgb, dtype=np.float32).reshape(-1, 1, 3) / 255.0
    lab = cv2.cvtColor(a, cv2.COLOR_RGB2LAB)
    return lab.reshape(np.shape(rgb)[:-1] + (3,))


def delta_e(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(lab1, np.float32) - np.asarray(lab2, np.float32), axis=-1)


def colour_of_text(text: str) -> str | None:
    """Hex colour named in a variant name ("雾霾蓝" → "#8A9BA8"), or None (sizes, "格纹", "标准装")."""
    for w in _WORDS_BY_LEN:
        if w in text:
            return COLOUR_WORDS[w]
    return None


def variant_name(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("name") or v.get("sku") or "")
    return str(v)


def variant_colour(v: Any) -> str | None:
    """A variant's colour: its own ``color``/``colour`` field, else the colour word in its name."""
    if isinstance(v, dict):
        for key in ("color", "colour", "hex"):
            c = v.get(key)
            if isinstance(c, str) and _HEX_RE.match(c.strip()):
                return "#" + _HEX_RE.match(c.strip()).group(1).upper()
        return colour_of_text(variant_name(v))
    return colour_of_text(str(v))


def product_variants(product: Any) -> list[Any]:
    vs = getattr(product, "variants", None)
    if vs is None and isinstance(product, dict):
        vs = product.get("variants")
    if vs is None:
        extra = getattr(product, "model_extra", None) or {}
        vs = extra.get("variants")
    return list(vs) if isinstance(vs, list) else []


def colour_variants(product: Any) -> list[tuple[str, str]]:
    """[(variant name, hex)] for variants that carry or name a colour."""
    out = []
    for v in product_variants(product):
        name, c = variant_name(v), variant_colour(v)
        if name and c:
            out.append((name, c))
    return out


def basic_name(hex_colour: str) -> str:
    lab = rgb_to_lab(np.array(hex_to_rgb(hex_colour), np.float32))
    names = list(BASIC_NAMES)
    labs = rgb_to_lab(np.array([hex_to_rgb(BASIC_NAMES[n]) for n in names], np.float32))
    return names[int(np.argmin(delta_e(labs, lab)))]


@dataclass(frozen=True)
class Swatch:
    hex: str
    fraction: float  # share of the non-background pixels
    lab: tuple[float, float, float]


def dominant_colours(img: Image.Image, k: int = 5, max_side: int = 96) -> list[Swatch]:
    """Main colours of a picture, largest first, with the background (the border's colour) removed."""
    small = img.convert("RGB")
    small.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    px = np.asarray(small, dtype=np.float32)
    h, w, _ = px.shape
    lab = rgb_to_lab(px)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    bg = np.median(border, axis=0)
    flat = lab.reshape(-1, 3).astype(np.float32)
    rgbf = px.reshape(-1, 3)
    keep = delta_e(flat, bg) > 12.0
    if keep.sum() < 0.03 * len(flat):  # a flat picture: its only colour is the "background"
        keep = np.ones(len(flat), bool)
    data = flat[keep]
    kk = max(1, min(k, len(data)))
    cv2.setRNGSeed(7)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(data, kk, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    out = []
    for c in range(kk):
        sel = labels == c
        n = int(sel.sum())
        if n == 0:
            continue
        rgb = np.median(rgbf[keep][sel], axis=0)
        out.append(Swatch(rgb_to_hex(rgb), n / len(data), tuple(float(x) for x in centres[c])))
    out.sort(key=lambda s: -s.fraction)
    return out


def nearest_variant_by_palette(
    swatches: Sequence[Swatch], variants: Iterable[tuple[str, str]], max_delta_e: float = 22.0
) -> tuple[str, float] | None:
    """(variant name, ΔE) of the colour variant closest to a significant swatch, or None."""
    sig = [s for s in swatches if s.fraction >= 0.06] or list(swatches[:1])
    best: tuple[str, float] | None = None
    for name, hx in variants:
        vlab = rgb_to_lab(np.array(hex_to_rgb(hx), np.float32))
        # Larger swatches count more: a 5% detail of the right colour is weaker evidence than the body.
        d = min(float(delta_e(np.array(s.lab), vlab)) - 6.0 * s.fraction for s in sig) if sig else 1e9
        if best is None or d < best[1]:
            best = (name, d)
    if best is None or best[1] > max_delta_e:
        return None
    return best
