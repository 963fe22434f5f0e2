"""Viewer pictures in the live room: upload safety, per-room storage, offline understanding.

The agent's entry point is ``VisionService`` (``vision.service``); the pieces are usable alone:
``sanitize_image`` (upload.py), ``ImageStore`` (store.py), ``analyze_image`` / ``query_text``
(analyze.py), ``ProductImageIndex`` (matcher.py), ``run_ocr`` (ocr.py). See docs/images.md.
"""

from vision.analyze import ImageAnalysis, ProductMatch, analyze_image, query_text, retrieval_skus
from vision.service import VisionService, default_image_dirs
from vision.store import ImageNotFound, ImageStore, StoredImage
from vision.upload import MAX_UPLOAD_BYTES, ImageRejected, SanitizedImage, sanitize_image

__all__ = [
    "ImageAnalysis",
    "ProductMatch",
    "analyze_image",
    "query_text",
    "retrieval_skus",
    "VisionService",
    "default_image_dirs",
    "ImageNotFound",
    "ImageStore",
    "StoredImage",
    "MAX_UPLOAD_BYTES",
    "ImageRejected",
    "SanitizedImage",
    "sanitize_image",
]
