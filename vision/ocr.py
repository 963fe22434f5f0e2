"""Read the text in a picture, offline: RapidOCR (PP-OCRv4 on ONNX Runtime, the models inside the
``rapidocr-onnxruntime`` wheel) when it is installed, else Debian's tesseract (``chi_sim`` + ``eng``).

RapidOCR reads busy posters and small Chinese print that tesseract misses (``python -m evals.images``
prints both on the same rendered labels). Its engine is built once per process (its ONNX sessions are
read-only) on one thread: the machine is shared.

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
from importlib.util import find_spec
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps

from core.errors import Unavailable

LANGS = "chi_sim"  # measured: chi_sim alone reads mixed Chinese/Latin labels better than chi_sim+eng
FALLBACK_LANGS = "eng"  # for pictures whose text is (nearly) all Latin
TIMEOUT_S = 20.0
MIN_WORD_CONF = 20.0
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_SPACE_RE = re.compile(
    rf"(?<=[{_CJK}，。：；！？、（）《》“”])\s+(?=[{_CJK}，。：；！？、（）《》“”0-9A-Za-z¥])|"
    rf"(?<=[0-9A-Za-z¥])\s+(?=[{_CJK}])"
)


class OCRUnavailable(Unavailable):
    code = "ocr_unavailable"


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


Backend = Literal["rapidocr", "tesseract"]
MIN_RAPID_SCORE = 0.5  # RapidOCR's own default line score


@lru_cache(maxsize=1)
def rapidocr_available() -> bool:
    """``rapidocr-onnxruntime`` is importable (installed by `make setup`, see the Makefile)."""
    return find_spec("rapidocr_onnxruntime") is not None


def available() -> bool:
    """Some OCR engine is installed."""
    return rapidocr_available() or tesseract_available()


def backend() -> Backend | None:
    """The engine ``run_ocr`` uses by default: RapidOCR, else tesseract, else none."""
    return "rapidocr" if rapidocr_available() else "tesseract" if tesseract_available() else None


@lru_cache(maxsize=1)
def _rapid_engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)


@lru_cache(maxsize=1)
def tesseract_available() -> bool:
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


def preprocess(img: Image.Image, min_side: int = 1000, max_side: int = 2600) -> tuple[Image.Image, float]:
    """Greyscale, light text on dark → dark on light, upscale small pictures. Returns (image, scale).

    Measured on rendered labels and screenshots: binarisation, sharpening and large upscales all
    lower tesseract's accuracy here; a plain grey picture about 1000 px long reads best."""
    g = ImageOps.grayscale(img)
    arr = np.asarray(g)
    # Mostly dark picture (dark-mode screenshot, black label): tesseract reads dark-on-light best.
    if float(np.median(arr)) < 110:
        g = ImageOps.invert(g)
    scale = 1.0
    long = max(g.size)
    if long < min_side:
        scale = min(3.0, min_side / long)
    elif long > max_side:
        scale = max_side / long
    if scale != 1.0:
        g = g.resize((max(1, int(g.width * scale)), max(1, int(g.height * scale))), Image.Resampling.LANCZOS)
    return g, scale


def clean_text(text: str) -> str:
    t = _CJK_SPACE_RE.sub("", text)
    t = re.sub(r"(?<=[价售])\s*[Yy¥](?=\s*\d)", "¥", t)  # tesseract reads the yuan sign as "Y"
    t = t.replace("￥", "¥")  # RapidOCR writes the full-width sign
    t = re.sub(r"[ \t]+", " ", t)
    return t.strip()


def run_ocr(
    img: Image.Image,
    langs: str | None = None,
    psm: int = 6,
    timeout: float = TIMEOUT_S,
    min_conf: float = MIN_WORD_CONF,
    engine: Backend | None = None,
) -> OcrResult:
    """OCR a picture with ``engine`` (default: ``backend()``). tesseract: ``chi_sim`` first; if what it
    read is (nearly) all Latin, ``eng`` too, and the more confident reading wins. ``psm`` 6 (a block of
    text) measured best on labels and screenshots. ``langs``/``psm``/``min_conf`` are tesseract's."""
    import time

    engine = engine or backend()
    if engine == "rapidocr":
        if not rapidocr_available():
            raise OCRUnavailable("rapidocr-onnxruntime is not installed (run `make setup`)")
        return _rapidocr(img)
    if not tesseract_available():
        raise OCRUnavailable(
            "no OCR engine: neither rapidocr-onnxruntime (`make setup`) nor tesseract with chi_sim+eng "
            "(scripts/install_system_deps.sh) is installed"
        )
    t0 = time.perf_counter()
    pre, scale = preprocess(img)
    if langs is not None:
        res = _tesseract(pre, scale, langs, psm, timeout, min_conf)
    else:
        res = _tesseract(pre, scale, LANGS, psm, timeout, min_conf)
        cjk = len(re.findall(rf"[{_CJK}]", res.text))
        latin = len(re.findall(r"[A-Za-z]", res.text))
        if latin >= 4 and cjk <= latin // 4:
            alt = _tesseract(pre, scale, FALLBACK_LANGS, psm, timeout, min_conf)
            if alt.confidence > res.confidence:
                res = alt
    res.elapsed_ms = (time.perf_counter() - t0) * 1000
    return res


def _rapidocr(img: Image.Image) -> OcrResult:
    """RapidOCR on the picture as it is (its detector resizes itself); lines top to bottom."""
    import time

    t0 = time.perf_counter()
    found, _ = _rapid_engine()(img.convert("RGB"))
    lines = []
    for box, text, score in found or []:
        xs, ys = [int(p[0]) for p in box], [int(p[1]) for p in box]
        text = clean_text(text)
        if not text or score < MIN_RAPID_SCORE or not _plausible(text):
            continue
        lines.append(
            OcrLine(
                text=text, confidence=float(score) * 100, box=(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
            )
        )
    lines.sort(key=lambda l: (l.box[1] + l.box[3] / 2, l.box[0]))
    n = sum(len(l.text) for l in lines)
    return OcrResult(
        text="\n".join(l.text for l in lines),
        lines=lines,
        confidence=sum(l.confidence * len(l.text) for l in lines) / n if n else 0.0,
        elapsed_ms=(time.perf_counter() - t0) * 1000,
    )


def _tesseract(pre: Image.Image, scale: float, langs: str, psm: int, timeout: float, min_conf: float) -> OcrResult:
    import time

    t0 = time.perf_counter()
    buf = io.BytesIO()
    pre.save(buf, format="PNG")
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    try:
        proc = subprocess.run(
            [
                "tesseract",
                "stdin",
                "stdout",
                "-l",
                langs,
                "--psm",
                str(psm),
                "--oem",
                "1",
                "-c",
                "preserve_interword_spaces=1",
                "tsv",
            ],
            input=buf.getvalue(),
            capture_output=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return OcrResult(text="", elapsed_ms=(time.perf_counter() - t0) * 1000)
    if proc.returncode != 0:
        raise OCRUnavailable(f"tesseract failed: {proc.stderr.decode(errors='replace')[:300]}")
    lines = _parse_tsv(proc.stdout.decode("utf-8", errors="replace"), scale, min_conf)
    n = sum(len(l.text) for l in lines)
    conf = sum(l.confidence * len(l.text) for l in lines) / n if n else 0.0
    return OcrResult(
        text="\n".join(l.text for l in lines),
        lines=lines,
        confidence=conf,
        elapsed_ms=(time.perf_counter() - t0) * 1000,
    )


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
