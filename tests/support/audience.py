"""Test helpers: a store on SQLite (always) or PostgreSQL (when `LIVEROOM_TEST_PG_URL` is set).

`scripts/start_postgres.sh` starts a throwaway cluster on loopback and prints the URL to export.
Each PostgreSQL store lives in its own schema, dropped afterwards, so tests never see each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_ENV = "LIVEROOM_TEST_PG_URL"


def pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def backends() -> list:
    """pytest params: sqlite always, pg (skipped without a server) as a second parameter."""
    import pytest

    return ["sqlite", pytest.param("pg", marks=pytest.mark.skipif(not pg_url(), reason=f"{PG_ENV} not set"))]


def app_metadata() -> list:
    """Every MetaData of the app's tables: what the one migration tree (audience/migrations) must build."""
    from audience.identity import metadata as identity
    from audience.models import metadata as audience
    from audience.rooms import metadata as rooms
    from console.db import metadata as console
    from copywriting.store import metadata as copy

    return [audience, rooms, identity, console, copy]


@contextmanager
def store_url(backend: str, tmp_path: Path, name: str = "audience.db") -> Iterator[str]:
    """A fresh database: an SQLite file ``tmp_path / name``, or a throwaway schema on the test server."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / name}"
        return
    from audience.db import pg_temp_schema

    url = pg_url()
    assert url, f"{PG_ENV} not set"
    with pg_temp_schema(url, prefix="test") as u:
        yield u


@contextmanager
def temp_engine(backend: str, tmp_path: Path, name: str = "store.db"):
    """An engine on a fresh database (see `store_url`), disposed afterwards; the stores migrate it."""
    from audience.db import make_engine

    with store_url(backend, tmp_path, name) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def temp_service(backend: str, tmp_path: Path, **kw):
    from audience.service import AudienceService

    with store_url(backend, tmp_path) as url:
        svc = AudienceService(url, **kw)
        try:
            yield svc
        finally:
            svc.close()


class Clock:
    """A settable clock for the service (decay, validity windows)."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
