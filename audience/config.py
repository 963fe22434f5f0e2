"""Where the audience database lives.

`LIVEROOM_DATABASE_URL` selects it (e.g. ``postgresql://user@host/db`` for multi-worker
deployments); the default is an embedded SQLite file ``<LIVEROOM_DATA_DIR>/liveroom.db``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

MERCHANT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def normalize_url(url: str) -> str:
    """Use psycopg (v3) for PostgreSQL whatever spelling the URL came in."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def database_url(settings=None) -> str:
    """`LIVEROOM_DATABASE_URL`, else `settings.database_url` if the settings have one, else SQLite."""
    url = os.environ.get("LIVEROOM_DATABASE_URL") or getattr(settings, "database_url", None)
    if url:
        return normalize_url(str(url))
    if settings is None:
        from liveroom.settings import Settings

        settings = Settings()
    data_dir = Path(settings.data_dir)
    return f"sqlite:///{data_dir / 'liveroom.db'}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL (None for PostgreSQL or in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[1] if "///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def check_merchant(merchant: str) -> str:
    if not isinstance(merchant, str) or not MERCHANT_RE.match(merchant):
        raise ValueError(f"invalid merchant id {merchant!r}: use 1-64 letters, digits, '-' or '_'")
    return merchant
