"""The one object the agent and the API use for pictures: upload → store → analyse → retrieve.

vision = VisionService(kb, ImageStore(settings.data_dir / "images"))
analysis = vision.ingest("demo", room_id, upload_bytes, viewer_text="这个多少钱")   # may raise ImageRejected
version, hits = vision.retrieve("demo", analysis, "这个多少钱")                    # KB facts to cite
parts = vision.model_content(room_id, analysis.image_id, "这个多少钱", analysis)   # vision-model message
vision.purge_room(room_id)                                                        # end of session
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from vision.analyze import ImageAnalysis, analyze_image, query_text, retrieval_skus
from vision.matcher import IndexCache, ProductImageIndex
from vision.store import ImageStore
from vision.upload import SanitizedImage, sanitize_image

DEMO_IMAGES = Path(__file__).resolve().parent.parent / "knowledge" / "demo" / "images"


def default_image_dirs(kb_root: Path, demo_merchant: str = "demo") -> Callable[[str], list[Path]]:
    """Where a merchant's product pictures live: ``<kb root>/<merchant>/images``; the demo merchant also
    gets the pictures shipped in ``knowledge/demo/images``."""

    def dirs(merchant: str) -> list[Path]:
        out = [Path(kb_root) / merchant / "images"]
        if merchant == demo_merchant:
            out.append(DEMO_IMAGES)
        return out

    return dirs


class VisionService:
    def __init__(
        self, kb: Any, store: ImageStore, image_dirs: Callable[[str], Sequence[Path]] | None = None, ocr: bool = True
    ):
        self.kb = kb
        self.store = store
        self.image_dirs = image_dirs or default_image_dirs(Path(kb.root))
        self.ocr = ocr
        self._indexes = IndexCache()
        self._lock = threading.Lock()

    # --- the calls the agent / API make ------------------------------------------------------
    def ingest(
        self, merchant: str, room_id: str, data: bytes, viewer_text: str = "", viewer_id: str | None = None
    ) -> ImageAnalysis:
        """Sanitise an upload (raises ``ImageRejected``), analyse it, store it (ephemerally if it may
        show a person) and return the analysis with its ``image_id``."""
        clean = sanitize_image(data)
        analysis = self.analyze(merchant, clean, viewer_text)
        stored = self.store.put(room_id, clean, ephemeral=analysis.ephemeral, viewer_id=viewer_id)
        analysis.image_id = stored.image_id
        return analysis

    def analyze(
        self, merchant: str, image: SanitizedImage | Image.Image, viewer_text: str = "", image_id: str | None = None
    ) -> ImageAnalysis:
        snap = self.kb.snapshot(merchant)
        index = self.index(merchant)
        return analyze_image(
            image,
            products=snap.catalog.products,
            index=index,
            viewer_text=viewer_text,
            image_id=image_id,
            run_ocr=self.ocr,
        )

    def analyze_stored(self, merchant: str, room_id: str, image_id: str, viewer_text: str = "") -> ImageAnalysis:
        """Re-analyse a stored picture (a follow-up question about an earlier picture)."""
        import io

        meta = self.store.meta(room_id, image_id)
        img = Image.open(io.BytesIO(self.store.get(room_id, image_id)))
        img.load()
        a = self.analyze(merchant, img.convert("RGB"), viewer_text, image_id=image_id)
        if meta.ephemeral and not a.ephemeral:
            a.ephemeral, a.person_reason, a.colour, a.palette = True, "stored as ephemeral", None, []
        return a

    def retrieve(self, merchant: str, analysis: ImageAnalysis, viewer_text: str, k: int = 5):
        """``(version, hits)`` from the knowledge base for the picture + words: cite these, not the picture."""
        return self.kb.search(merchant, query_text(analysis, viewer_text), k=k, skus=retrieval_skus(analysis))

    def model_content(
        self, room_id: str, image_id: str, viewer_text: str, analysis: ImageAnalysis | None = None, detail: str = "low"
    ) -> list[dict[str, Any]]:
        """OpenAI-style user content for a vision model: the viewer's words, the offline findings and
        the sanitised picture as a ``data:`` URL (``image_url`` part). Product facts still come from
        retrieval; the findings carry the guardrail."""
        import base64

        meta = self.store.meta(room_id, image_id)
        data = self.store.get(room_id, image_id)
        parts: list[dict[str, Any]] = [{"type": "text", "text": viewer_text or "（观众发送了一张图片）"}]
        if analysis is not None:
            parts.append({"type": "text", "text": analysis.prompt_block()})
        parts.append(
            {
                "type": "image_url",
                "image_url": {
                    "url": f"data:{meta.mime};base64," + base64.b64encode(data).decode("ascii"),
                    "detail": detail,
                },
            }
        )
        return parts

    def purge_room(self, room_id: str) -> int:
        return self.store.purge_room(room_id)

    # --- internals ---------------------------------------------------------------------------
    def index(self, merchant: str) -> ProductImageIndex:
        snap = self.kb.snapshot(merchant)
        return self._indexes.get(merchant, snap.version, snap.catalog.products, list(self.image_dirs(merchant)))
