"""Per-merchant answer styles, versioned like prompts: published versions 1, 2, … and restore.

Layout under ``<data_dir>/styles/``::

    <merchant>.json   {"versions": [{version, style, author, at, note}], "published": 3 | null}

A style is stored as a plain dict; its shape is checked by ``agent.style.MerchantStyle`` at the console
edge before publishing and again when the agent loads it. Files are replaced atomically
(``os.replace``, one writer per merchant with the directory lock); readers check the file's mtime, so a
publish in another worker takes effect everywhere without a restart.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from core.filelock import dir_lock
from core.ids import MERCHANT_RE
from prompts.loader import PromptError


class StyleStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def _file(self, merchant: str) -> Path:
        if not isinstance(merchant, str) or not MERCHANT_RE.match(merchant):
            raise PromptError(f"invalid merchant id {merchant!r}")
        return self.root / f"{merchant}.json"

    def _state(self, merchant: str) -> dict[str, Any]:
        try:
            return json.loads(self._file(merchant).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"versions": [], "published": None}

    def published(self, merchant: str) -> dict[str, Any] | None:
        """The merchant's published style (None: no style)."""
        path = self._file(merchant)
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        hit = self._cache.get(merchant)
        if hit and hit[0] == mtime:
            return hit[1]
        st = self._state(merchant)
        style = next((v["style"] for v in st["versions"] if v["version"] == st.get("published")), None)
        with self._lock:
            self._cache[merchant] = (mtime, style)
        return style

    def published_version(self, merchant: str) -> int:
        return self._state(merchant).get("published") or 0

    def history(self, merchant: str) -> list[dict[str, Any]]:
        st = self._state(merchant)
        return [{**v, "published": v["version"] == st.get("published")} for v in reversed(st["versions"])]

    def publish(self, merchant: str, style: dict[str, Any], author: str, note: str = "") -> int:
        """Publish ``style`` (already validated) as a new version; returns its number."""
        path = self._file(merchant)
        self.root.mkdir(parents=True, exist_ok=True)
        with dir_lock(self.root):
            st = self._state(merchant)
            n = max((v["version"] for v in st["versions"]), default=0) + 1
            st["versions"].append({"version": n, "style": style, "author": author, "at": time.time(), "note": note})
            st["published"] = n
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps(st, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(tmp, path)
        with self._lock:
            self._cache.pop(merchant, None)
        return n

    def version(self, merchant: str, version: int) -> dict[str, Any]:
        for v in self._state(merchant)["versions"]:
            if v["version"] == version:
                return dict(v["style"])
        raise PromptError(f"style has no version {version}")
