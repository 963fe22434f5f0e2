"""One migration tree for the whole database (audience/migrations): every store's tables, on SQLite and
PostgreSQL — built from empty equal to the stores' metadata, adopted from a database `create_all` made
before the tables were migrated, and safe when several workers open a fresh database at once."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Float, Index, MetaData, String, Table, func, select

from audience import db
from audience.db import alembic_config, current_revision, make_engine, migrate, write_tx
from tests.support.audience import app_metadata, backends, store_url, temp_engine

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture(params=backends())
def backend(request):
    return request.param


def _diffs(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), app_metadata())


def test_an_empty_database_migrates_to_exactly_the_stores_tables(backend, tmp_path):
    with temp_engine(backend, tmp_path) as engine:
        migrate(engine)
        assert current_revision(engine) == HEAD
        assert _diffs(engine) == []


def _old_rooms(md: MetaData) -> Table:  # con_rooms as it first shipped (before status, rundown, origins)
    return Table(
        "con_rooms",
        md,
        Column("room_id", String(64), primary_key=True),
        Column("merchant", String(64), nullable=False),
        Column("title", String(128), nullable=False),
        Column("created_by", String(96), nullable=False),
        Column("created_at", Float, nullable=False),
        Index("ix_con_rooms_merchant", "merchant"),
    )


def test_tables_made_by_create_all_are_adopted_with_their_rows(backend, tmp_path):
    """A merchant upgrading: the audience schema at 0001, the other tables from the old `create_all`
    (and an old con_rooms). The upgrade keeps every row and leaves the schema equal to a fresh one."""
    from audience.rooms import RoomRegistry
    from console import db as con
    from console.auth import Accounts
    from copywriting.store import CopyStore
    from copywriting.store import metadata as copy_md

    with temp_engine(backend, tmp_path) as engine:
        migrate(engine, "0001_initial")
        old = MetaData()
        rooms = _old_rooms(old)
        for md in (con.metadata, copy_md):
            md.create_all(engine)
        old.create_all(engine)
        with write_tx(engine) as conn:
            conn.execute(rooms.insert().values(room_id="r1", merchant="m", title="t", created_by="x", created_at=1.0))
            conn.execute(con.merchants.insert().values(merchant="m", name="M", created_at=1.0))
        assert current_revision(engine) == "0001_initial"

        migrate(engine)
        assert current_revision(engine) == HEAD
        assert _diffs(engine) == []
        room = RoomRegistry(engine).get("r1")
        assert room is not None and room.status == "open" and room.allowed_origins == () and room.merchant == "m"
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(con.merchants)).scalar_one() == 1
        Accounts(engine).create_user("m", "alice", "correct-horse-1", "owner")  # the stores work on it
        assert CopyStore(engine).put_campaign("m", "c1", {"x": 1}) == "created"


def test_each_store_migrates_a_fresh_database_once_per_engine(backend, tmp_path, monkeypatch):
    from audience.identity import ViewerTokens
    from audience.rooms import RoomRegistry
    from copywriting.store import CopyStore

    calls = []
    real = db.migrate
    monkeypatch.setattr(db, "migrate", lambda engine, revision="head": (calls.append(engine), real(engine, revision)))
    with temp_engine(backend, tmp_path) as engine:
        CopyStore(engine)  # first: it brings the whole schema to head
        assert current_revision(engine) == HEAD
        RoomRegistry(engine).create("m", "r1", "t")
        ViewerTokens(engine).rotate("m")
        CopyStore(engine)
        assert calls == [engine]
    with temp_engine(backend, tmp_path, "other.db") as other:  # another engine: migrated on its own
        RoomRegistry(other)
        assert len(calls) == 2 and current_revision(other) == HEAD


def _open_stores(url: str, barrier) -> None:  # child: a worker opening the stores on a fresh database
    from audience.identity import ViewerTokens
    from audience.rooms import RoomRegistry
    from copywriting.store import CopyStore

    barrier.wait()
    engine = make_engine(url)
    CopyStore(engine)
    RoomRegistry(engine)
    ViewerTokens(engine)
    engine.dispose()
    os._exit(0)


def test_workers_opening_the_stores_together_migrate_once(backend, tmp_path):
    with store_url(backend, tmp_path, "fresh.db") as url:
        ctx = mp.get_context("fork")
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open_stores, args=(url, barrier)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        engine = make_engine(url)
        try:
            assert current_revision(engine) == HEAD and _diffs(engine) == []
        finally:
            engine.dispose()
