"""Read the text in a picture with Debian's tesseract (``chi_sim`` + ``eng``), offline.

The ``tesseract`` binary is run as a subprocess (no Python binding needed) with a timeout and one
thread (``OMP_THREAD_LIMIT=1``: the machine is shared). Preprocessing: greyscale, dark-background
inversion, upscaling small pictures so strokes are ~3 px, a light unsharp mask. Tesseract's TSV
output gives per-word confidences; low-confidence fragments (UI noise, textures) are dropped, and the
spaces tesseract puts between Chinese characters are removed.
"""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter, ImageOps

LANGS = "chi_sim+eng"
TIMEOUT_S = 20.0
MIN_WORD_CONF = 45.0
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_SPACE_RE = re.compile(rf"(?<=[{_CJK}，。：；！？、（）《》“”])\s+(?=[{_CJK}，。：；！？、（）《》“”0-9A-Za-z¥])|"
                           rf"(?<=[0-9A-Za-z¥])\s+(?=[{_CJK}])")


class OCRUnavailable(RuntimeError):
    pass


@dataclass
class OcrLine:
    text: str
    confidence: float  # 0-100, mean of its words
    box: tuple[int, int, int, int]  # left, top, width, height in the original picture


@dataclass
class OcrResult:
    text: str  # lines joined by "\n"
    lines: list[OcrLine] = field(default_factory=list)
    confidence: float = 0.0  # character-weighted mean over kept lines
    elapsed_ms: float = 0.0


@lru_cache(maxsize=1)
def available() -> bool:
    """tesseract is installed with both language packs."""
    exe = shutil.which("tesseract")
    if not exe:
        return False
    try:
        out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    langs = set((out.stdout + out.stderr).split())
    return {"chi_sim", "eng"} <= langs


def preprocess(img: Image.Image, target_height: int = 1400) -> tuple[Image.Image, float]:
    """Greyscale, light text on dark → dark on light, upscale small pictures. Returns (image, scale)."""
    g = ImageOps.grayscale(img)
    arr = np.asarray(g)
    # Mostly dark picture (dark-mode screenshot, black label): tesseract reads dark-on-light best.
    if float(np.median(arr)) < 110:
        g = ImageOps.invert(g)
    scale = 1.0
    h = g.height
    if h < target_height * 0.6:
        scale = min(3.0, target_height * 0.6 / h)
    elif max(g.size) > 2600:
        scale = 2600 / max(g.size)
    if scale != 1.0:
        g = g.resize((max(1, int(g.width * scale)), max(1, int(g.height * scale))), Image.Resampling.LANCZOS)
    g = ImageOps.autocontrast(g, cutoff=1)
    g = g.filter(ImageFilter.UnsharpMask(radius=2, percent=80, threshold=2))
    return g, scale


def clean_text(text: str) -> str:
    t = _CJK_SPACE_RE.sub("", text)
    t = re.sub(r"[ \t]+", " ", t)
    return t.strip()


def run_ocr(img: Image.Image, langs: str = LANGS, psm: int = 11, timeout: float = TIMEOUT_S,
            min_conf: float = MIN_WORD_CONF) -> OcrResult:
    """OCR a picture. ``psm`` 11 (sparse text) suits screenshots and packaging; 6 suits a label block."""
    import time

    if not available():
        raise OCRUnavailable("tesseract with chi_sim+eng is not installed (run scripts/install_system_deps.sh)")
    t0 = time.perf_counter()
    pre, scale = preprocess(img)
    buf = io.BytesIO()
    pre.save(buf, format="PNG")
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    try:
        proc = subprocess.run(["tesseract", "stdin", "stdout", "-l", langs, "--psm", str(psm), "--oem", "1",
                               "-c", "preserve_interword_spaces=1", "tsv"],
                              input=buf.getvalue(), capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return OcrResult(text="", elapsed_ms=(time.perf_counter() - t0) * 1000)
    if proc.returncode != 0:
        raise OCRUnavailable(f"tesseract failed: {proc.stderr.decode(errors='replace')[:300]}")
    lines = _parse_tsv(proc.stdout.decode("utf-8", errors="replace"), scale, min_conf)
    n = sum(len(l.text) for l in lines)
    conf = sum(l.confidence * len(l.text) for l in lines) / n if n else 0.0
    return OcrResult(text="\n".join(l.text for l in lines), lines=lines, confidence=conf,
                     elapsed_ms=(time.perf_counter() - t0) * 1000)


def _parse_tsv(tsv: str, scale: float, min_conf: float) -> list[OcrLine]:
    groups: dict[tuple[int, int, int, int], list[tuple[str, float, tuple[int, int, int, int]]]] = {}
    order: list[tuple[int, int, int, int]] = []
    reader = csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in reader:
        try:
            if row.get("level") != "5":
                continue
            word = (row.get("text") or "").strip()
            conf = float(row.get("conf") or -1)
            if not word or conf < min_conf:
                continue
            key = (int(row["page_num"]), int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
            box = (int(row["left"]), int(row["top"]), int(row["width"]), int(row["height"]))
        except (KeyError, ValueError, TypeError):
            continue
        if not _plausible(word):
            continue
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((word, conf, box))
    out = []
    for key in order:
        words = groups[key]
        text = clean_text(" ".join(w for w, _, _ in words))
        if not text or (len(text) == 1 and not re.match(rf"[{_CJK}]", text)):
            continue
        x0 = min(b[0] for _, _, b in words)
        y0 = min(b[1] for _, _, b in words)
        x1 = max(b[0] + b[2] for _, _, b in words)
        y1 = max(b[1] + b[3] for _, _, b in words)
        box = tuple(int(v / scale) for v in (x0, y0, x1 - x0, y1 - y0))
        out.append(OcrLine(text=text, confidence=float(np.mean([c for _, c, _ in words])), box=box))  # type: ignore[arg-type]
    return out


def _plausible(word: str) -> bool:
    """Drop tesseract's texture noise: runs of punctuation, lone symbols, |||| from barcodes."""
    core = re.sub(r"[^0-9A-Za-z" + _CJK + "]", "", word)
    if not core:
        return False
    if re.fullmatch(r"[Il1|!]+", word):
        return False
    return True
