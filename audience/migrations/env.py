"""Alembic environment for the audience schema.

Used two ways: programmatically by `audience.db.migrate` (which passes an open connection inside
a locked transaction), and by the alembic CLI via the repo's alembic.ini
(`alembic upgrade head`), which connects to `LIVEROOM_DATABASE_URL` / the default SQLite file.
"""

from __future__ import annotations

from alembic import context

config = context.config
if config.config_file_name:  # the alembic CLI: log as alembic.ini says
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from audience.config import database_url
    from core.settings import Settings

    return database_url(Settings())  # the alembic CLI is its own composition root


def _target_metadata() -> list:
    """Every table of the app (one migration tree for the whole database, see versions/0002), for
    `alembic revision --autogenerate` and `alembic check`. The upgrade itself never compares, so
    `audience.db.migrate` loads only audience's models; the CLI is a composition root and may load the
    stores above audience (console, copywriting) by name."""
    import importlib

    from audience.models import metadata

    if config.attributes.get("connection") is not None:
        return [metadata]
    names = ("audience.rooms", "audience.identity", "console.db", "copywriting.store")
    return [metadata, *(importlib.import_module(n).metadata for n in names)]


metadata = _target_metadata()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:  # audience.db.migrate: already in a (locked) transaction, which it commits
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from audience.db import make_engine

    engine = make_engine(_url())
    try:
        with engine.connect() as c:
            context.configure(connection=c, target_metadata=metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
