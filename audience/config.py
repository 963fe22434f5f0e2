"""Where the audience database lives.

`LIVEROOM_DATABASE_URL` selects it (e.g. ``postgresql://user@host/db`` for multi-worker
deployments); the default is an embedded SQLite file ``<LIVEROOM_DATA_DIR>/liveroom.db``.
"""

from __future__ import annotations

from pathlib import Path

from core.ids import MERCHANT_RE, check_merchant
from core.settings import Settings

__all__ = ["MERCHANT_RE", "check_merchant", "database_url", "normalize_url", "sqlite_path"]


def normalize_url(url: str) -> str:
    """Use psycopg (v3) for PostgreSQL whatever spelling the URL came in."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url(settings: Settings) -> str:
    """`settings.database_url` (`LIVEROOM_DATABASE_URL`), else SQLite in the data dir."""
    if settings.database_url:
        return normalize_url(settings.database_url)
    return f"sqlite:///{Path(settings.data_dir) / 'liveroom.db'}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL (None for PostgreSQL or in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[1] if "///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)
