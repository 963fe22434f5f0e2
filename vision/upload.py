"""Validate and sanitise a viewer's uploaded picture before anything else looks at it.

Order matters (cheapest and safest first):

1. byte size limit (``MAX_UPLOAD_BYTES``), empty input;
2. magic-byte sniffing: only JPEG, PNG and WebP go on; GIF, SVG/XML/HTML, archives (zip bombs),
   PDF and everything else are rejected with a clear message *without* being parsed;
3. Pillow opens the header only (restricted to those three decoders) and the pixel count is checked
   from the header size, before any pixel is decoded: PNG/WebP over ``MAX_PIXELS`` are rejected
   (decompression bombs are tiny files that claim huge sizes); a large JPEG (phone photos, up to
   ``MAX_JPEG_PIXELS``) is decoded at 1/2, 1/4 or 1/8 scale by the JPEG decoder itself (``draft``),
   so a 50-megapixel photo never costs 150 MB of memory;
4. decode (truncated/corrupt data → rejected), first frame only for animated PNG/WebP, EXIF
   orientation applied, alpha flattened on white, downscaled to ``MAX_SIDE``;
5. re-encode as a fresh baseline JPEG with no metadata at all (EXIF incl. GPS, XMP, ICC, comments).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageFile, ImageOps

from core.errors import BadRequest

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 24_000_000  # PNG / WebP, decoded at full size
MAX_JPEG_PIXELS = 64_000_000  # JPEG, decoded at a reduced scale by the decoder when over MAX_PIXELS
MAX_DIMENSION = 16_384  # either side
MIN_DIMENSION = 16
MAX_SIDE = 2048  # stored / analysed pictures are at most this long on their long side
JPEG_QUALITY = 90

_ALLOWED = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

# Pillow's own guard: raise (not warn) past this many pixels, in case a code path slips past ours.
if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_JPEG_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_JPEG_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageRejected(BadRequest):
    """An upload we will not process. ``code`` is stable for API clients; ``message`` is for people."""

    def __init__(self, code: str, message: str, viewer_message: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.viewer_message = viewer_message or "图片无法识别，请发送 JPG、PNG 或 WebP 格式的图片（8MB 以内）"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "viewer_message": self.viewer_message}


@dataclass
class SanitizedImage:
    """A clean picture: ``data`` is a metadata-free JPEG; ``image`` the same pixels, decoded (RGB)."""

    data: bytes
    image: Image.Image = field(repr=False)
    width: int
    height: int
    source_format: str  # JPEG | PNG | WEBP
    source_bytes: int
    source_width: int
    source_height: int
    sha256: str  # of ``data``
    mime: str = "image/jpeg"
    downscaled: bool = False
    had_metadata: bool = False  # the upload carried EXIF/XMP/ICC/text metadata (now removed)
    frames: int = 1

    @property
    def data_url(self) -> str:
        import base64

        return f"data:{self.mime};base64," + base64.b64encode(self.data).decode("ascii")


def sniff(data: bytes) -> str:
    """A short format name from the first bytes: jpeg, png, webp, gif, svg, zip, ... or 'unknown'."""
    head = data[:512]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[:3] == b"\x1f\x8b\x08":
        return "gzip"
    if head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[:6] == b"7z\xbc\xaf\x27\x1c" or head[:4] == b"Rar!":
        return "archive"
    if head[:4] == b"%PDF":
        return "pdf"
    if head[:2] in (b"BM",):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif", b"ftyphevc", b"ftypmsf1"):
        return "heif"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<?xml", b"<svg", b"<!doctype", b"<html", b"<!--")) or b"<svg" in text:
        return "svg" if b"<svg" in data[:4096].lower() else "xml/html"
    return "unknown"


_REJECT_FORMAT = {
    "gif": (
        "unsupported_format",
        "GIF is not accepted (animated images are not analysed); send a JPEG, PNG or WebP",
        "暂不支持 GIF 动图，请发送 JPG/PNG 截图或照片",
    ),
    "svg": (
        "unsupported_format",
        "SVG is not accepted (vector files can carry scripts); send a JPEG, PNG or WebP",
        "暂不支持 SVG 文件，请发送 JPG/PNG 截图或照片",
    ),
    "xml/html": ("unsupported_format", "markup (XML/HTML) is not an image; send a JPEG, PNG or WebP", None),
    "zip": ("unsupported_format", "archives are not accepted; send a single JPEG, PNG or WebP picture", None),
    "gzip": ("unsupported_format", "compressed archives are not accepted; send a JPEG, PNG or WebP picture", None),
    "archive": ("unsupported_format", "archives are not accepted; send a JPEG, PNG or WebP picture", None),
    "pdf": ("unsupported_format", "PDF is not accepted; send a JPEG, PNG or WebP picture", None),
    "heif": (
        "unsupported_format",
        "HEIC/AVIF is not accepted yet; send a JPEG, PNG or WebP (phones can export JPEG)",
        "暂不支持 HEIC 格式，请在手机里选择“兼容格式”或发送截图",
    ),
}


def sanitize_image(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES, max_side: int = MAX_SIDE) -> SanitizedImage:
    """Validate an upload and return a re-encoded, metadata-free copy; raise ``ImageRejected`` if unsafe."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageRejected("bad_input", "expected the image file's bytes")
    data = bytes(data)
    if not data:
        raise ImageRejected("empty", "the upload is empty")
    if len(data) > max_bytes:
        raise ImageRejected(
            "too_large",
            f"the file is {len(data) / 1048576:.1f} MiB; the limit is {max_bytes / 1048576:.0f} MiB",
            "图片太大了，请发送 8MB 以内的图片",
        )
    kind = sniff(data)
    if kind in _REJECT_FORMAT:
        code, msg, vmsg = _REJECT_FORMAT[kind]
        raise ImageRejected(code, msg, vmsg)
    if kind not in ("jpeg", "png", "webp"):
        raise ImageRejected(
            "unsupported_format", f"unsupported or unrecognised file type ({kind}); send a JPEG, PNG or WebP picture"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=["JPEG", "PNG", "WEBP"])
        except Image.DecompressionBombError as e:
            raise ImageRejected(
                "too_many_pixels", f"image dimensions are too large ({e})", "图片分辨率太高了，请截图或压缩后再发"
            ) from None
        except Image.DecompressionBombWarning as e:
            raise ImageRejected(
                "too_many_pixels", f"image dimensions are too large ({e})", "图片分辨率太高了，请截图或压缩后再发"
            ) from None
        except Exception as e:  # noqa: BLE001 - any parser failure means "not a valid image"
            raise ImageRejected(
                "corrupt",
                f"the file could not be read as a {kind.upper()} image ({type(e).__name__})",
                "图片文件已损坏，请重新发送",
            ) from None
        return _decode(im, data, kind, max_side)


def _decode(im: Image.Image, data: bytes, kind: str, max_side: int) -> SanitizedImage:
    fmt = (im.format or kind).upper()
    if fmt not in _ALLOWED:
        raise ImageRejected("unsupported_format", f"unsupported image format {fmt}")
    w, h = im.size
    if w < MIN_DIMENSION or h < MIN_DIMENSION:
        raise ImageRejected(
            "too_small",
            f"image is {w}x{h}; at least {MIN_DIMENSION}x{MIN_DIMENSION} is needed",
            "图片太小了，看不清，请发清晰一点的图片",
        )
    if w > MAX_DIMENSION or h > MAX_DIMENSION:
        raise ImageRejected(
            "too_many_pixels",
            f"image is {w}x{h}; sides over {MAX_DIMENSION} px are not accepted",
            "图片分辨率太高了，请截图或压缩后再发",
        )
    pixels = w * h
    is_jpeg = fmt in ("JPEG", "MPO")
    if pixels > (MAX_JPEG_PIXELS if is_jpeg else MAX_PIXELS):
        limit = MAX_JPEG_PIXELS if is_jpeg else MAX_PIXELS
        raise ImageRejected(
            "too_many_pixels",
            f"image is {w}x{h} ({pixels / 1e6:.0f} MP); the limit for {fmt} is {limit / 1e6:.0f} MP",
            "图片分辨率太高了，请截图或压缩后再发",
        )
    had_meta = bool(
        im.info.get("exif")
        or im.info.get("icc_profile")
        or im.info.get("xmp")
        or any(k in im.info for k in ("comment", "XML:com.adobe.xmp", "Raw profile type exif"))
    )
    frames = int(getattr(im, "n_frames", 1) or 1)
    downscaled = False
    try:
        if is_jpeg and max(w, h) > max_side:
            # Ask libjpeg for a DCT-scaled decode no smaller than the target: 1/2, 1/4 or 1/8 of the pixels
            # are produced, so the full-size raster is never allocated.
            im.draft("RGB", (max(1, w * max_side // max(w, h)), max(1, h * max_side // max(w, h))))
            downscaled = True
        if frames > 1:
            im.seek(0)
        im.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageRejected("too_many_pixels", f"image dimensions are too large ({e})") from None
    except Exception as e:  # noqa: BLE001 - truncated data, bad chunks, CRC errors, libjpeg errors
        raise ImageRejected(
            "corrupt", f"the image data is corrupt or truncated ({type(e).__name__}: {e})", "图片文件已损坏，请重新发送"
        ) from None

    try:
        exif_orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF: ignore it, it is being dropped anyway
        exif_orientation = 1
    if exif_orientation and exif_orientation != 1:
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # noqa: BLE001
            pass
    rgb = _flatten(im)
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        downscaled = True
    out = io.BytesIO()
    # A fresh encoder call with no exif/icc/comment arguments writes no metadata segments at all.
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    blob = out.getvalue()
    clean = Image.open(io.BytesIO(blob))
    clean.load()
    return SanitizedImage(
        data=blob,
        image=clean.convert("RGB"),
        width=clean.width,
        height=clean.height,
        source_format="JPEG" if is_jpeg else fmt,
        source_bytes=len(data),
        source_width=w,
        source_height=h,
        sha256=hashlib.sha256(blob).hexdigest(),
        downscaled=downscaled,
        had_metadata=had_meta or exif_orientation != 1,
        frames=frames,
    )


def _flatten(im: Image.Image) -> Image.Image:
    """Any mode → RGB; transparency composited on white (screenshots with alpha, stickers)."""
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if im.mode.startswith("I;16") or im.mode == "I":
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L").convert("RGB")
    return im.convert("RGB")  # L, P, CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr, 1, F
