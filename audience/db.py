"""Engines and transactions for SQLite (WAL, `BEGIN IMMEDIATE` writers) and PostgreSQL (psycopg 3).

Writers on SQLite take the database's write lock when their transaction starts (`BEGIN IMMEDIATE`,
set by a SQLAlchemy "begin" hook), so a read-check-write sequence inside one transaction is
serialized across threads *and* processes, and a lock wait happens up front (busy_timeout) instead
of as a deadlock-ish SQLITE_BUSY on upgrade. Readers use plain deferred `BEGIN` and, thanks to WAL,
never wait for writers. On PostgreSQL the code uses conditional UPDATEs, upserts and row locks.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from audience.config import normalize_url, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATE_LOCK = 0x4C52_4155  # pg_advisory_xact_lock key: one migrator at a time


def make_engine(
    url: str, *, synchronous: str = "FULL", busy_timeout_s: float = 60.0, pool_size: int = 5, max_overflow: int = 10
) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
                pool_size=pool_size,
                max_overflow=max_overflow,
            )
        else:  # in-memory: one shared connection
            engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        _sqlite_hooks(engine, synchronous, busy_timeout_s)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)


def _set_wal(cur, timeout_s: float) -> None:
    """``PRAGMA journal_mode=WAL`` needs the database to itself and SQLite does not wait on its busy
    handler for it: workers opening a fresh file at once see "database is locked". WAL persists in the
    file, so retrying until the first one has switched it is enough."""
    import sqlite3
    import time

    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(0.2, delay * 2)


def _sqlite_hooks(engine: Engine, synchronous: str, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        _set_wal(cur, busy_timeout_s)
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA cache_size=-32768")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def is_sqlite(engine_or_conn) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction: commit on success, roll back on any exception (crash = rollback by the DB)."""
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        with conn.begin():
            yield conn


def insert_for(conn_or_engine):
    """The dialect's INSERT (with on_conflict_do_nothing / do_update)."""
    if is_sqlite(conn_or_engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


def alembic_config(url: str | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema (every table of the app: one migration tree, see migrations/versions/0002);
    safe when several processes start at once (one migrates, the rest wait, then find nothing to do)."""
    from alembic import command

    cfg = alembic_config()
    with write_tx(engine) as conn:
        if not is_sqlite(conn):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATE_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    if revision == "head":
        with _migrated_lock:
            _migrated.add(engine)


_migrated: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines this process has brought to head
_migrated_lock = threading.Lock()


def ensure_schema(engine: Engine) -> None:
    """The schema at head, migrating at most once per engine in this process: each store on a shared
    engine calls this, the first one (usually the audience service) does the upgrade."""
    with _migrated_lock:
        done = engine in _migrated
    if not done:
        migrate(engine)


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def pg_temp_schema(url: str, prefix: str = "tmp") -> Iterator[str]:
    """A throwaway PostgreSQL schema: yields a URL whose connections use it (search_path), drops it after."""
    import uuid

    from sqlalchemy.engine import make_url

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    base = make_url(normalize_url(url))
    admin = create_engine(base, poolclass=None)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
