"""A container with one merchant's small hand-written catalog imported, as the understanding tests use."""

from __future__ import annotations

import json
from pathlib import Path

from agent.core import AgentConfig
from core.settings import Settings
from liveroom.container import Container


def catalog_container(root: Path, merchant: str, products: list[dict], docs: dict[str, str] | None = None) -> Container:
    """``products`` written as products.json and each ``docs`` name → markdown beside it, imported as
    ``merchant`` into a container under ``root`` (no model, a rate limit no test reaches)."""
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    files = [src / "products.json"]
    files[0].write_text(json.dumps(products, ensure_ascii=False), encoding="utf-8")
    for name, text in (docs or {}).items():
        files.append(src / name)
        files[-1].write_text(text, encoding="utf-8")
    c = Container(Settings(data_dir=root / "data", llm_autostart=False), AgentConfig(rate=(1000, 1.0)))
    c.kb.import_files(merchant, files)
    return c
