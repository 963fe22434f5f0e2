"""Console tables (SQLAlchemy Core) in the app's database (the audience database: SQLite or PostgreSQL).

Every table that holds merchant data has a ``merchant`` column and every query in this package filters
on it. The schema is migrated with Alembic (audience/migrations, one tree for the whole database:
revision 0002 made these tables); a change here needs a new revision there.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, false

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

M = 64

merchants = Table(
    "con_merchants",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("name", String(128), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
)

users = Table(
    "con_users",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("merchant", String(M), nullable=False),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(64), nullable=False, server_default=""),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),  # owner | operator | viewer
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index(None, "merchant"),
)

sessions = Table(
    "con_sessions",
    metadata,
    Column("sid_hash", String(64), primary_key=True),  # sha256 of the cookie value; the value is never stored
    Column("user_id", String(32), nullable=False),
    Column("merchant", String(M), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("ip", String(64), nullable=False, server_default=""),
    Index(None, "user_id"),
)

tokens = Table(
    "con_tokens",
    metadata,
    Column("token_id", String(24), primary_key=True),
    Column("merchant", String(M), nullable=False),
    Column("name", String(64), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("role", String(16), nullable=False),  # operator | viewer
    Column("created_by", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used", Float),
    Column("revoked_at", Float),
    Index(None, "merchant"),
)

audit = Table(
    "con_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("merchant", String(M), nullable=False),
    Column("actor", String(96), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False, server_default=""),
    Column("before", Text),
    Column("after", Text),
    Column("at", Float, nullable=False),
    Column("ip", String(64), nullable=False, server_default=""),
    Index(None, "merchant", "at"),
)

from audience.rooms import rooms  # noqa: E402,F401 - the room registry's table (created by audience/rooms.py)

feedback = Table(
    "con_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("merchant", String(M), nullable=False),
    Column("room_id", String(64), nullable=False),
    Column("answer_id", String(32), nullable=False),
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("citations", Text, nullable=False, server_default="[]"),
    Column("kb_version", String(16)),
    Column("reason", String(500), nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="open"),  # open | resolved
    Column("filed_by", String(96), nullable=False),
    Column("at", Float, nullable=False),
    Column("resolved_by", String(96)),
    Column("resolved_at", Float),
    Index(None, "merchant", "status"),
)
