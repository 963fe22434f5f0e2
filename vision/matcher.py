"""Which of the merchant's products is in this picture, if any?

Per merchant, an index of the product pictures (one per product, optionally one per variant and
extra angles) holds for each picture:

* perceptual hashes (pHash + dHash, 64 bits each, ``imagehash``) for near-duplicates: the shop's own
  main image, resized, recompressed or lightly cropped;
* ORB keypoints and binary descriptors (OpenCV) for everything else: crops, rotations, scale
  changes, screenshots with phone UI and danmaku on top, photos of the real object.

A query goes through three steps:

1. **product-aware matching**: the query's ORB descriptors (up to 900) are searched against all
   indexed descriptors at once (faiss binary index: exact for small catalogs, IVF for large ones,
   k=8). A descriptor match counts for a product only if it passes a *product-aware* Lowe ratio test:
   its nearest descriptor must be clearly closer (ratio 0.8) than the nearest descriptor of any
   *other* product. So the brand logo every package shares votes for nobody, while a product's colour
   variants (near-identical pictures) don't cancel each other out. The best-voted products (≥ 6
   votes, at most 4) go on;
2. **geometric verification**: per picture of those products, RANSAC fits a similarity transform
   (rotation, uniform scale, shift) to the matches; the inlier count, how much of the reference the
   inliers cover, the inlier ratio and the transform's sanity (not mirrored, not degenerate) are
   measured. A homography is refined on the inliers for warping (used for the colour variant);
3. **calibrated score**: a logistic model over those measurements, plus the margin over the next
   product, gives a probability-like ``score`` in [0, 1]; ``score >= MATCH_THRESHOLD`` is a match,
   otherwise the picture is "not our product". Near-duplicates (both hashes within a few bits) are
   accepted on the hashes alone (tiny thumbnails have too few features). Coefficients and threshold
   come from ``python -m evals.images --calibrate`` on a calibration split (other seeds than the
   reported eval), threshold set for ≤ 1% false matches there: see docs/images.md.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import faiss
import imagehash
import numpy as np
from PIL import Image

from vision.colors import product_variants, variant_name

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
REF_SIDE = 400  # reference pictures are indexed at most this long
QUERY_SIDE = 640  # query pictures are analysed at most this long
REF_FEATURES = 500
QUERY_FEATURES = 900
SKU_RATIO = 0.8  # product-aware Lowe ratio
MAX_HAMMING = 80  # of 256 bits
KNN = 8
MIN_VOTES = 6
SHORTLIST = 4

# Logistic calibration: score = sigmoid(b0 + b·x), x = [log1p(inliers), log(coverage + 0.01), inliers/good,
# log1p(inliers) - log1p(next product's inliers)]. Fitted by `python -m evals.images --calibrate`.
CALIBRATION = (0.2195, 1.2554, 2.125, 0.5345, 1.4454)
MATCH_THRESHOLD = 0.55
# Near-duplicates (the shop's own picture resized/recompressed) are accepted on the hashes alone.
PHASH_DUP = 4
DHASH_DUP = 6

cv2.setNumThreads(1)  # the machine is shared: one query = one core


def slug(text: str) -> str:
    """File-name form of a variant name: letters, digits and CJK kept, the rest → '_'."""
    s = re.sub(r"[^0-9A-Za-z\u3400-\u9fff]+", "_", text).strip("_")
    return s or "v"


@dataclass
class RefImage:
    sku: str
    variant: str | None
    path: Path
    size: tuple[int, int]
    phash: np.ndarray  # 64 bools
    dhash: np.ndarray
    kps: np.ndarray  # (n, 2) float32, in the indexed (resized) frame
    des: np.ndarray | None  # (n, 32) uint8
    rgb: np.ndarray = field(repr=False)  # (h, w, 3) uint8, indexed frame: for variant colour comparison


@dataclass
class Candidate:
    sku: str
    variant: str | None  # the variant whose picture verified best (colour is decided later)
    score: float
    method: str  # "orb" | "phash"
    inliers: int = 0
    good: int = 0
    coverage: float = 0.0
    hash_distance: int = 64  # max(pHash bits, dHash bits - 2) to the nearest picture of the product
    ref_index: int = -1
    homography: np.ndarray | None = None  # query (analysed frame) → reference frame
    features: tuple[float, ...] = ()
    # every verified picture of this product (e.g. each colour variant): ref index → homography
    ref_homographies: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class QueryFeatures:
    gray: np.ndarray
    rgb: np.ndarray
    scale: float  # analysed frame = original * scale
    kps: np.ndarray
    des: np.ndarray | None
    phash: np.ndarray
    dhash: np.ndarray


def _orb(n: int) -> cv2.ORB:
    return cv2.ORB_create(nfeatures=n, scaleFactor=1.2, nlevels=8, edgeThreshold=15, patchSize=31, fastThreshold=12)


def _resize_max(img: Image.Image, side: int) -> tuple[Image.Image, float]:
    img = img.convert("RGB")
    s = min(1.0, side / max(img.size))
    if s < 1.0:
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.Resampling.LANCZOS)
    return img, s


def _hashes(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    return imagehash.phash(img).hash.flatten(), imagehash.dhash(img).hash.flatten()


def _features(
    img: Image.Image, side: int, n: int
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray | None]:
    small, s = _resize_max(img, side)
    rgb = np.asarray(small)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    kps, des = _orb(n).detectAndCompute(gray, None)
    pts = np.float32([k.pt for k in kps]).reshape(-1, 2) if kps else np.zeros((0, 2), np.float32)
    return rgb, gray, s, pts, des


def query_features(img: Image.Image) -> QueryFeatures:
    rgb, gray, s, pts, des = _features(img, QUERY_SIDE, QUERY_FEATURES)
    ph, dh = _hashes(img)
    return QueryFeatures(gray=gray, rgb=rgb, scale=s, kps=pts, des=des, phash=ph, dhash=dh)


def resolve_product_images(product: Any, image_dirs: Sequence[Path]) -> list[tuple[str | None, Path]]:
    """A product's pictures: explicit ``image``/``images`` fields (product and variants), then the file
    naming convention ``<sku>.<ext>`` and ``<sku>__<variant or anything>.<ext>`` in the image folders.

    Relative paths only, resolved inside the given folders (a catalog cannot point at /etc/passwd).
    """
    sku = str(getattr(product, "sku", None) or (product.get("sku") if isinstance(product, dict) else ""))
    extra = (getattr(product, "model_extra", None) or {}) if not isinstance(product, dict) else product
    variants = product_variants(product)
    by_slug = {slug(variant_name(v)): variant_name(v) for v in variants if variant_name(v)}
    out: list[tuple[str | None, Path]] = []
    seen: set[Path] = set()

    def add(variant: str | None, rel: Any) -> None:
        if not isinstance(rel, str) or not rel or rel.startswith(("/", "\\")) or ".." in Path(rel).parts:
            return
        for d in image_dirs:
            p = (Path(d) / rel).resolve()
            try:
                p.relative_to(Path(d).resolve())
            except ValueError:
                continue
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p not in seen:
                seen.add(p)
                out.append((variant, p))
                return

    imgs = extra.get("images") if isinstance(extra.get("images"), list) else []
    for rel in [extra.get("image"), *imgs]:
        add(None, rel)
    for v in variants:
        if isinstance(v, dict):
            add(variant_name(v) or None, v.get("image"))
    for d in image_dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for ext in IMAGE_SUFFIXES:
            add(None, f"{sku}{ext}")
        for p in sorted(d.glob(f"{sku}__*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                add(by_slug.get(p.stem.split("__", 1)[1]), p.name)
    return out


class ProductImageIndex:
    """The product pictures of one merchant (one KB version), ready to match against."""

    def __init__(self, refs: list[RefImage], signature: str = ""):
        self.refs = refs
        self.signature = signature
        self.skus = sorted({r.sku for r in refs})
        owners, descs = [], []
        for i, r in enumerate(refs):
            if r.des is not None and len(r.des):
                descs.append(r.des)
                owners.append(np.full(len(r.des), i, np.int32))
        self._all_des = np.vstack(descs) if descs else np.zeros((0, 32), np.uint8)
        self._offset = np.zeros(len(refs) + 1, np.int64)
        for i, r in enumerate(refs):
            self._offset[i + 1] = self._offset[i] + (len(r.des) if r.des is not None else 0)
        self._owner = np.concatenate(owners) if owners else np.zeros(0, np.int32)
        sku_ids = {s: k for k, s in enumerate(self.skus)}
        self._ref_sku = np.array([sku_ids[r.sku] for r in refs], np.int32)
        self._ph = np.array([r.phash for r in refs]) if refs else np.zeros((0, 64), bool)
        self._dh = np.array([r.dhash for r in refs]) if refs else np.zeros((0, 64), bool)
        self._faiss = _binary_index(self._all_des)

    def __len__(self) -> int:
        return len(self.refs)

    @classmethod
    def build(cls, products: Iterable[Any], image_dirs: Sequence[Path]) -> ProductImageIndex:
        refs: list[RefImage] = []
        sig = hashlib.sha1()
        for p in products:
            sku = str(getattr(p, "sku", None) or (p.get("sku") if isinstance(p, dict) else ""))
            for variant, path in resolve_product_images(p, image_dirs):
                try:
                    st = path.stat()
                    with Image.open(path) as im:
                        if im.width * im.height > 40_000_000:
                            continue
                        im.load()
                        img = im.convert("RGB")
                except (OSError, ValueError, Image.DecompressionBombError):
                    continue
                sig.update(f"{sku}|{variant}|{path}|{st.st_mtime_ns}|{st.st_size}\n".encode())
                refs.append(ref_image(sku, variant, path, img))
        return cls(refs, sig.hexdigest())

    @staticmethod
    def signature_of(products: Iterable[Any], image_dirs: Sequence[Path]) -> str:
        sig = hashlib.sha1()
        for p in products:
            sku = str(getattr(p, "sku", None) or (p.get("sku") if isinstance(p, dict) else ""))
            for variant, path in resolve_product_images(p, image_dirs):
                try:
                    st = path.stat()
                except OSError:
                    continue
                sig.update(f"{sku}|{variant}|{path}|{st.st_mtime_ns}|{st.st_size}\n".encode())
        return sig.hexdigest()

    # --- matching --------------------------------------------------------------------------
    def match(self, img: Image.Image | QueryFeatures, top: int = 3) -> list[Candidate]:
        """Candidates, best first (one per product); ``score >= MATCH_THRESHOLD`` means a match."""
        q = img if isinstance(img, QueryFeatures) else query_features(img)
        if not self.refs:
            return []
        ph_d = (self._ph != q.phash).sum(1)
        dh_d = (self._dh != q.dhash).sum(1)
        hd = np.maximum(ph_d, dh_d - (DHASH_DUP - PHASH_DUP))  # ≤ PHASH_DUP ⇔ both hashes agree
        per_sku: dict[str, Candidate] = {}
        for i in np.argsort(hd)[:3]:
            r = self.refs[i]
            c = Candidate(r.sku, r.variant, 0.0, "phash", hash_distance=int(hd[i]), ref_index=int(i))
            if r.sku not in per_sku or c.hash_distance < per_sku[r.sku].hash_distance:
                per_sku[r.sku] = c
        for sku, matches in self._distinctive_matches(q).items():
            best = per_sku.get(sku)
            homs: dict[int, np.ndarray] = {}
            for i, ms in matches.items():
                c = self._verify(q, i, ms)
                if c is None:
                    continue
                if c.homography is not None and c.inliers >= 8:
                    homs[i] = c.homography
                c.hash_distance = int(min(hd[i], best.hash_distance if best else 64))
                if best is None or c.inliers > best.inliers:
                    best = c
            if best is not None:
                best.ref_homographies = homs
                per_sku[sku] = best
        cands = sorted(per_sku.values(), key=lambda c: (c.inliers, -c.hash_distance), reverse=True)
        for c in cands:
            second = max((o.inliers for o in cands if o is not c), default=0)
            c.features = _feature_vector(c, second)
            c.score = _calibrated(c.features)
            if c.hash_distance <= PHASH_DUP:
                c.score = max(c.score, 0.95)
                c.method = "orb+phash" if c.inliers >= 8 else "phash"
        cands.sort(key=lambda c: c.score, reverse=True)
        return cands[:top]

    def _distinctive_matches(self, q: QueryFeatures) -> dict[str, dict[int, list[tuple[int, int]]]]:
        """sku → ref index → [(query kp, ref kp)] for matches that pass the product-aware ratio test:
        the match into that picture is clearly closer than the nearest descriptor of any other product."""
        if q.des is None or len(q.des) < 2 or not len(self._all_des):
            return {}
        k = min(KNN, len(self._all_des))
        dist, nn = _search_one_thread(self._faiss, np.ascontiguousarray(q.des), k)  # Hamming k-NN
        owners_all = self._owner[np.clip(nn, 0, None)]
        skus_all = self._ref_sku[owners_all]
        votes: dict[str, int] = {}
        found: dict[str, dict[int, list[tuple[int, int]]]] = {}
        for qi in range(len(nn)):
            ds, ids, owners, skus = dist[qi], nn[qi], owners_all[qi], skus_all[qi]
            if ids[0] < 0 or ds[0] > MAX_HAMMING:
                continue
            s0 = skus[0]
            other = np.nonzero((skus != s0) & (ids >= 0))[0]
            if len(other) and not ds[0] < SKU_RATIO * ds[other[0]]:
                continue
            sku = self.skus[s0]
            votes[sku] = votes.get(sku, 0) + 1
            seen: set[int] = set()
            for j in range(len(ids)):
                o = int(owners[j])
                if ids[j] < 0 or skus[j] != s0 or o in seen:
                    continue
                seen.add(o)  # the nearest descriptor in each of this product's pictures
                found.setdefault(sku, {}).setdefault(o, []).append((qi, int(ids[j] - self._offset[o])))
        keep = sorted((s for s in votes if votes[s] >= MIN_VOTES), key=lambda s: -votes[s])[:SHORTLIST]
        return {s: found[s] for s in keep}

    def _verify(self, q: QueryFeatures, i: int, pairs: list[tuple[int, int]]) -> Candidate | None:
        r = self.refs[i]
        # One query keypoint per reference keypoint (repeated patterns otherwise inflate the count).
        by_ref: dict[int, int] = {}
        for qi, ri in pairs:
            by_ref.setdefault(ri, qi)
        if len(by_ref) < 6:
            return Candidate(r.sku, r.variant, 0.0, "orb", inliers=0, good=len(by_ref), ref_index=i)
        ris = np.fromiter(by_ref.keys(), np.int64)
        qis = np.fromiter(by_ref.values(), np.int64)
        src = q.kps[qis].reshape(-1, 1, 2)
        dst = r.kps[ris].reshape(-1, 1, 2)
        # Inliers are counted under a similarity transform (rotation, uniform scale, shift: 4 degrees of
        # freedom): screenshots, crops, rotations and zooms are exactly that, and chance alignments of
        # unrelated features are far rarer than under a full homography (8). A photo's perspective is
        # absorbed by the 8-px tolerance; the warp used for colour is refined to a homography below.
        A, mask = cv2.estimateAffinePartial2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=8.0, maxIters=2000, confidence=0.995
        )
        if A is None or mask is None:
            return Candidate(r.sku, r.variant, 0.0, "orb", inliers=0, good=len(by_ref), ref_index=i)
        inl = mask.ravel().astype(bool)
        n = int(inl.sum())
        H = np.vstack([A, [0.0, 0.0, 1.0]])
        if not _sane_homography(H, q.gray.shape, r.size):
            n = min(n, 3)
        cov = _coverage(dst.reshape(-1, 2)[inl], r.size) if n >= 4 else 0.0
        if n >= 12:
            Hh, hmask = cv2.findHomography(src[inl], dst[inl], cv2.RANSAC, 4.0)
            if Hh is not None and _sane_homography(Hh, q.gray.shape, r.size) and cov >= 0.25:
                H = Hh
        return Candidate(
            r.sku, r.variant, 0.0, "orb", inliers=n, good=len(by_ref), coverage=cov, ref_index=i, homography=H
        )


_omp_lock = threading.Lock()
FLAT_MAX = 20_000  # descriptors; past this an inverted-file index (approximate, ~97% exact NN) is used


def _binary_index(des: np.ndarray) -> faiss.IndexBinary:
    """Exact Hamming search for small catalogs; IVF (k-means cells, nprobe ≈ 10% of them) for large ones:
    ~4x faster at 57k descriptors (the demo catalog), and the gap grows with the catalog."""
    des = np.ascontiguousarray(des)
    n = len(des)
    if n <= FLAT_MAX:
        flat = faiss.IndexBinaryFlat(256)
        if n:
            flat.add(des)
        return flat
    nlist = int(min(4096, max(64, np.sqrt(n))))
    quantizer = faiss.IndexBinaryFlat(256)
    ivf = faiss.IndexBinaryIVF(quantizer, 256, nlist)
    with _omp_lock:
        prev = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            ivf.train(des)
            ivf.add(des)
        finally:
            faiss.omp_set_num_threads(prev)
    ivf.nprobe = max(8, nlist // 10)
    ivf._quantizer_ref = quantizer  # keep the quantizer alive as long as the index
    return ivf


def _search_one_thread(index: faiss.IndexBinary, des: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss on one OpenMP thread: on a shared 2-core machine, OpenMP's spinning threads make a
    search ~6x slower under load, and one query is small enough for one core (~50 ms)."""
    with _omp_lock:
        prev = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return index.search(des, k)
        finally:
            faiss.omp_set_num_threads(prev)


def ref_image(sku: str, variant: str | None, path: Path, img: Image.Image) -> RefImage:
    rgb, _, _, pts, des = _features(img, REF_SIDE, REF_FEATURES)
    ph, dh = _hashes(img)
    return RefImage(
        sku=sku,
        variant=variant,
        path=path,
        size=(rgb.shape[1], rgb.shape[0]),
        phash=ph,
        dhash=dh,
        kps=pts,
        des=des,
        rgb=rgb,
    )


def _sane_homography(H: np.ndarray, qshape: tuple[int, ...], ref_size: tuple[int, int]) -> bool:
    """Reference corners mapped back into the query must form a convex, non-flipped, non-tiny quad."""
    try:
        Hi = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return False
    w, h = ref_size
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    quad = cv2.perspectiveTransform(corners, Hi).reshape(-1, 2)
    if not np.all(np.isfinite(quad)):
        return False
    if not cv2.isContourConvex(quad.astype(np.float32)):
        return False
    area = cv2.contourArea(quad.astype(np.float32), oriented=True)
    qh, qw = qshape[:2]
    # Not mirrored: the mapped corners keep the orientation (winding) the reference corners have.
    ref_sign = np.sign(cv2.contourArea(corners.reshape(-1, 2), oriented=True))
    if np.sign(area) != ref_sign:
        return False
    a = abs(area)
    if a < 0.01 * qw * qh or a > 25 * qw * qh:
        return False
    # No extreme anisotropy: the mapped sides keep their proportions within ×4.
    sides = np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)
    if sides.min() < 1e-3 or sides.max() / sides.min() > 4 * max(w, h) / min(w, h):
        return False
    return True


def _coverage(pts: np.ndarray, size: tuple[int, int]) -> float:
    if len(pts) < 3:
        return 0.0
    hull = cv2.convexHull(pts.astype(np.float32))
    return float(min(1.0, cv2.contourArea(hull) / float(size[0] * size[1])))


def _feature_vector(c: Candidate, second_inliers: int) -> tuple[float, ...]:
    ratio = c.inliers / c.good if c.good else 0.0
    # log(coverage): a dozen inliers packed into 3% of the picture (a shared cap, a crimp, a logo) is weak.
    return (
        math.log1p(c.inliers),
        math.log(c.coverage + 0.01),
        ratio,
        math.log1p(c.inliers) - math.log1p(second_inliers),
    )


def _calibrated(x: Sequence[float]) -> float:
    b = CALIBRATION
    z = b[0] + sum(w * v for w, v in zip(b[1:], x))
    return float(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))))


# --- per-merchant cache ---------------------------------------------------------------------------


class IndexCache:
    """One index per (merchant, KB version, picture files); rebuilt only when one of those changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_merchant: dict[str, tuple[str, ProductImageIndex]] = {}

    def get(
        self, merchant: str, version: str, products: Sequence[Any], image_dirs: Sequence[Path]
    ) -> ProductImageIndex:
        key = version + ":" + ProductImageIndex.signature_of(products, image_dirs)
        with self._lock:
            hit = self._by_merchant.get(merchant)
            if hit and hit[0] == key:
                return hit[1]
            idx = ProductImageIndex.build(products, image_dirs)
            self._by_merchant[merchant] = (key, idx)
            return idx

    def clear(self) -> None:
        with self._lock:
            self._by_merchant.clear()
