"""Combine the offline signals about one picture into an ``ImageAnalysis`` the agent can use and cite.

Signals: product matching against the merchant's own pictures (``vision.matcher``), OCR
(``vision.ocr``) with the text matched against product names, aliases and skus, colour and the
colour variant (``vision.colors``), and the person gate (``vision.privacy``). Facts about a product
(price, stock, specs) never come from here: ``query_text`` turns the analysis into a retrieval query
for the knowledge base, which stays the only source of product facts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, Field
from rapidfuzz import fuzz

from vision import ocr as ocr_mod
from vision.colors import (
    basic_name,
    colour_variants,
    dominant_colours,
    nearest_variant_by_palette,
    product_variants,
    rgb_to_lab,
    variant_name,
)
from vision.matcher import MATCH_THRESHOLD, Candidate, ProductImageIndex, QueryFeatures, query_features
from vision.privacy import GUARDRAIL, mostly_skin, person_reason
from vision.upload import SanitizedImage

Method = Literal["orb", "phash", "orb+phash", "ocr"]
OCR_MATCH_THRESHOLD = 0.82


class ProductMatch(BaseModel):
    sku: str
    name: str | None = None
    score: float = Field(ge=0, le=1)  # calibrated: >= threshold means "this is the product"
    method: Method
    variant: str | None = None
    detail: str = ""  # e.g. "ORB: 87 inliers, 41% of the product picture"


class Colour(BaseModel):
    hex: str
    name: str  # basic colour word (红色, 燕麦色 ...) describing the picture, not a product fact
    fraction: float


class ImageAnalysis(BaseModel):
    image_id: str | None = None
    ocr_text: str = ""
    ocr_confidence: float = 0.0
    matches: list[ProductMatch] = Field(default_factory=list)
    best_sku: str | None = None
    best_name: str | None = None
    not_ours: bool = True  # no product of this catalog recognised, by picture or by text
    colour: Colour | None = None
    palette: list[Colour] = Field(default_factory=list)
    variant: str | None = None
    variant_method: Literal["colour", "ocr"] | None = None
    ephemeral: bool = False  # may show a person: not persisted, no colour read, see vision.privacy
    person_reason: str | None = None
    evidence: list[str] = Field(default_factory=list)  # short lines the agent may cite as "图片识别"
    notes: list[str] = Field(default_factory=list)
    guardrail: str = GUARDRAIL
    threshold: float = MATCH_THRESHOLD
    elapsed_ms: float = 0.0

    def prompt_block(self) -> str:
        """What the model should read about the picture (Chinese, compact, citable)."""
        lines = ["[图片识别结果（离线）]"]
        if self.best_sku:
            m = self.matches[0]
            v = f"，款式：{self.variant}" if self.variant else ""
            lines.append(f"- 图中商品：{self.best_name}（{self.best_sku}）{v}；依据：{m.method}，置信度 {m.score:.2f}")
        else:
            lines.append("- 图中没有识别到本店商品（not_ours）")
        if self.ocr_text:
            lines.append("- 图中文字：" + self.ocr_text.replace("\n", " / ")[:200])
        if self.colour:
            lines.append(f"- 主要颜色：{self.colour.name}（{self.colour.hex}）")
        lines.append("- 商品价格、库存、规格只以知识库检索结果为准。")
        lines.append("- " + self.guardrail)
        return "\n".join(lines)


def analyze_image(
    image: Image.Image | SanitizedImage,
    *,
    products: Sequence[Any],
    index: ProductImageIndex | None,
    viewer_text: str = "",
    image_id: str | None = None,
    run_ocr: bool = True,
    ephemeral: bool | None = None,
) -> ImageAnalysis:
    """Everything the offline pipeline can say about one picture. ``ephemeral=None`` decides it here."""
    t0 = time.perf_counter()
    img = image.image if isinstance(image, SanitizedImage) else image.convert("RGB")
    by_sku = {str(_get(p, "sku")): p for p in products}
    out = ImageAnalysis(image_id=image_id)

    # 1. picture → product
    qf: QueryFeatures | None = None
    cands: list[Candidate] = []
    if index is not None and len(index):
        qf = query_features(img)
        cands = index.match(qf, top=3)
    elif index is None or not len(index):
        out.notes.append("no product pictures indexed for this merchant: matching by text only")
    for c in cands:
        if c.score < 0.05:
            continue
        detail = (
            f"ORB {c.inliers} inliers, covers {c.coverage:.0%} of the product picture"
            if c.inliers
            else f"perceptual hash distance {c.hash_distance}/64"
        )
        out.matches.append(
            ProductMatch(
                sku=c.sku,
                name=_name(by_sku.get(c.sku)),
                score=round(c.score, 4),
                method=c.method,
                variant=None,
                detail=detail,
            )
        )
    best = cands[0] if cands and cands[0].score >= MATCH_THRESHOLD else None

    # 2. text in the picture → product (a label photo, a screenshot's title)
    if run_ocr:
        if ocr_mod.available():
            r = ocr_mod.run_ocr(img)
            out.ocr_text, out.ocr_confidence = r.text, round(r.confidence, 1)
        else:
            out.notes.append("OCR unavailable (neither RapidOCR nor tesseract installed)")
    text_hits = match_text(out.ocr_text, products) if out.ocr_text else []
    best_text = text_hits[0] if text_hits and text_hits[0][1] >= OCR_MATCH_THRESHOLD else None
    if best_text and (len(text_hits) < 2 or best_text[1] - text_hits[1][1] < 0.05) and best_text[1] < 1.0:
        best_text = None  # two products read equally well: not decisive
    for sku, score in text_hits[:2]:
        if score >= 0.6 and not any(m.sku == sku and m.method == "ocr" for m in out.matches):
            out.matches.append(
                ProductMatch(
                    sku=sku,
                    name=_name(by_sku.get(sku)),
                    score=round(score, 4),
                    method="ocr",
                    detail="product name/sku read in the picture",
                )
            )

    if best is not None:
        out.best_sku = best.sku
        if best_text and best_text[0] != best.sku:
            out.notes.append(f"text in the picture names {best_text[0]}, the picture matches {best.sku}")
    elif best_text is not None:
        out.best_sku = best_text[0]
    out.matches.sort(key=lambda m: (m.sku != out.best_sku, -m.score))
    out.not_ours = out.best_sku is None
    out.best_name = _name(by_sku.get(out.best_sku)) if out.best_sku else None

    # 3. person gate (before any colour is read)
    if ephemeral is None:
        reason = person_reason(img, viewer_text)
        out.ephemeral, out.person_reason = reason is not None, reason
    else:
        out.ephemeral = ephemeral
        out.person_reason = "caller" if ephemeral else None

    # 4. variant: the product's own region compared with each variant picture, else words, else palette
    if out.best_sku:
        prod = by_sku.get(out.best_sku)
        variant = None
        if best is not None and qf is not None and index is not None:
            variant = _variant_by_warp(best, qf, index)
            if variant:
                out.variant_method = "colour"
        if variant is None and prod is not None and out.ocr_text:
            variant = _variant_by_text(out.ocr_text, prod)
            if variant:
                out.variant_method = "ocr"
        if variant is None and prod is not None and not out.ephemeral and colour_variants(prod):
            near = nearest_variant_by_palette(dominant_colours(img), colour_variants(prod))
            if near:
                variant = near[0]
                out.variant_method = "colour"
        out.variant = variant
        if out.matches and out.matches[0].sku == out.best_sku:
            out.matches[0].variant = variant

    # 5. colours of the picture (not of a person, not of what may be skin)
    skin = out.best_sku is None and not out.ephemeral and mostly_skin(img)
    if skin:
        out.notes.append("colour not reported: mostly skin-toned picture")
    if not out.ephemeral and not skin:
        sw = dominant_colours(img)
        out.palette = [Colour(hex=s.hex, name=basic_name(s.hex), fraction=round(s.fraction, 3)) for s in sw[:4]]
        out.colour = out.palette[0] if out.palette else None

    out.evidence = _evidence(out)
    out.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
    return out


def query_text(analysis: ImageAnalysis, viewer_text: str = "") -> str:
    """The knowledge-base query for a viewer's picture + words.

    A recognised product: its name (and variant) + the viewer's words ("暖光 玻尿酸保湿精华液 30ml 这个多少钱").
    Not recognised: the picture's text (cleaned, first ~60 characters) + the viewer's words, so a
    label or a competitor's product still retrieves what the store has that is closest.
    """
    vt = (viewer_text or "").strip()
    if analysis.best_sku:
        head = analysis.best_name or analysis.best_sku
        if analysis.variant and analysis.variant not in head:
            head = f"{head} {analysis.variant}"
        return f"{head} {vt}".strip()
    text = re.sub(r"\s+", " ", analysis.ocr_text or "").strip()
    text = re.sub(r"[^\w\u3400-\u9fff%+.¥ -]", " ", text)
    text = re.sub(r"\s+", " ", text).strip()[:60]
    return f"{text} {vt}".strip() or vt


def retrieval_skus(analysis: ImageAnalysis) -> set[str | None] | None:
    """``skus`` for ``KnowledgeBase.search``: the recognised product's facts plus store documents."""
    return {analysis.best_sku, None} if analysis.best_sku else None


# --- text → product ---------------------------------------------------------------------------


def _norm(s: str) -> str:
    import unicodedata

    return re.sub(r"[^0-9a-z\u3400-\u9fff]", "", unicodedata.normalize("NFKC", s).lower())


def match_text(text: str, products: Sequence[Any]) -> list[tuple[str, float]]:
    """(sku, strength 0-1) for products whose sku, name or alias is written in the picture, best first."""
    t = _norm(text)
    if len(t) < 2:
        return []
    raw = unicodedata_upper(text)
    out: dict[str, float] = {}
    for p in products:
        sku = str(_get(p, "sku"))
        if sku and re.search(rf"(?<![A-Z0-9]){re.escape(sku.upper())}(?![0-9])", raw):
            out[sku] = 1.0
            continue
        name = str(_get(p, "name"))
        core = _norm(_strip_brand(name))
        score = 0.0
        if len(core) >= 3:
            score = fuzz.partial_ratio(core, t) / 100.0
            if len(core) > len(t):  # the picture shows only part of the name
                score *= max(0.5, len(t) / len(core))
        for a in _get(p, "aliases", []) or []:
            an = _norm(str(a))
            if len(an) >= 3 and an in t:
                score = max(score, 0.85)
        if score > 0:
            out[sku] = score
    return sorted(out.items(), key=lambda kv: -kv[1])[:5]


def unicodedata_upper(s: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", s).upper()


def _strip_brand(name: str) -> str:
    parts = name.split()
    # "暖光 玻尿酸保湿精华液 30ml": the brand (first word, shared by the whole shop) says nothing.
    return " ".join(parts[1:]) if len(parts) > 1 and re.fullmatch(r"[\u3400-\u9fffA-Za-z]{1,8}", parts[0]) else name


def _variant_by_text(text: str, product: Any) -> str | None:
    t = _norm(text)
    names = [variant_name(v) for v in product_variants(product)]
    if len(names) < 2:
        return None
    hits = [n for n in names if len(_norm(n)) >= 2 and _norm(n) in t]
    hits.sort(key=lambda n: -len(_norm(n)))
    return hits[0] if hits else None


# --- variant by colour, inside the matched product region ----------------------------------------


def _variant_by_warp(best: Candidate, q: QueryFeatures, index: ProductImageIndex) -> str | None:
    """Warp the picture onto each variant's own picture and compare colours where variants differ."""
    refs = [(i, r) for i, r in enumerate(index.refs) if r.sku == best.sku and r.variant]
    names = {r.variant for _, r in refs}
    if len(names) < 2 or best.homography is None:
        return None
    # Where do the variant pictures differ from each other? (the product body, not the shared layout)
    base = refs[0][1]
    same_frame = [r for _, r in refs if r.rgb.shape == base.rgb.shape]
    labs = np.stack([rgb_to_lab(r.rgb) for r in same_frame]) if len(same_frame) >= 2 else None
    if labs is not None:
        spread = np.max(np.linalg.norm(labs - labs.mean(0, keepdims=True), axis=-1), axis=0)
        differs = spread > 8.0
    else:
        differs = None
    scores: list[tuple[float, str]] = []
    for i, r in refs:
        H = best.ref_homographies.get(i, best.homography)
        h, w = r.rgb.shape[:2]
        warped = cv2.warpPerspective(q.rgb, H, (w, h), flags=cv2.INTER_LINEAR)
        valid = cv2.warpPerspective(np.full(q.rgb.shape[:2], 255, np.uint8), H, (w, h)) > 0
        valid = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        region = valid & differs if differs is not None and differs.shape == valid.shape else valid
        if region.sum() < 150:
            continue
        shared = valid & ~region
        wq = warped.astype(np.float32)
        if shared.sum() > 500:  # white-balance the picture against the layout every variant shares
            gain = (np.median(r.rgb[shared], axis=0) + 1) / (np.median(wq[shared], axis=0) + 1)
            wq = np.clip(wq * np.clip(gain, 0.6, 1.6), 0, 255)
        d = np.linalg.norm(rgb_to_lab(wq[region]) - rgb_to_lab(r.rgb[region].astype(np.float32)), axis=-1)
        scores.append((float(np.median(d)), r.variant or ""))
    if not scores:
        return None
    by_name: dict[str, float] = {}
    for d, n in scores:
        by_name[n] = min(d, by_name.get(n, 1e9))
    ranked = sorted(by_name.items(), key=lambda kv: kv[1])
    if len(ranked) >= 2 and ranked[1][1] - ranked[0][1] < 2.0:
        return None  # too close to call
    return ranked[0][0]


# --- helpers ---------------------------------------------------------------------------------------


def _get(p: Any, key: str, default: Any = "") -> Any:
    if p is None:
        return default
    if isinstance(p, dict):
        return p.get(key, default)
    v = getattr(p, key, None)
    return default if v is None else v


def _name(p: Any) -> str | None:
    n = _get(p, "name", None)
    return str(n) if n else None


def _evidence(a: ImageAnalysis) -> list[str]:
    ev = []
    if a.best_sku and a.matches:
        m = a.matches[0]
        how = {
            "orb": "与商品图局部特征匹配",
            "phash": "与商品图几乎相同",
            "orb+phash": "与商品图匹配",
            "ocr": "图中文字写有商品名",
        }[m.method]
        v = f"（{a.variant}）" if a.variant else ""
        ev.append(f"图片识别：{a.best_name}{v}，{how}，置信度{m.score:.2f}")
    else:
        ev.append("图片识别：未匹配到本店商品")
    if a.ocr_text:
        ev.append("图中文字：" + a.ocr_text.replace("\n", " ")[:120])
    return ev
