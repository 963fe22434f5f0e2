"""The rest of the app's tables: console, rooms, viewer-token secrets, copywriting and A/B.

Console: merchants, users, sessions, tokens, audit, feedback, rooms; viewer-token secrets; copywriting:
campaigns, variants, deliveries; A/B: experiments, assignments, events.

One migration tree for the whole database: every store shares LIVEROOM_DATABASE_URL (the audience engine),
so one ``alembic_version`` row says what the whole schema is, one advisory-locked upgrade brings every table
along at start-up, and a revision may touch tables of several stores at once. The tables are declared here
as they were at this revision (not imported: audience sits below console and copywriting, and a migration
must not change when the models do).

Before this revision these tables were made by ``metadata.create_all`` on first use, so a merchant's
database may already hold some or all of them. Each is created only when missing; an existing one is
adopted as it is, with the columns and indexes added since it first shipped (con_rooms gained status,
rundown, allowed_origins, closed_at) filled in.

Revision ID: 0002_app_tables
Revises: 0001_initial
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_app_tables"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

M, ID = 64, 128


def _tables() -> list[tuple[sa.Table, list[sa.Index]]]:
    md = sa.MetaData()

    def table(name: str, *cols, indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> tuple:
        t = sa.Table(name, md, *cols)
        return t, [sa.Index(ix, *(t.c[c] for c in on)) for ix, on in indexes]

    return [
        # --- console (console/db.py) ---
        table(
            "con_merchants",
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("name", sa.String(128), nullable=False, server_default=""),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("merchant", name="pk_con_merchants"),
        ),
        table(
            "con_users",
            sa.Column("user_id", sa.String(32), nullable=False),
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("display_name", sa.String(64), nullable=False, server_default=""),
            sa.Column("password_hash", sa.String(255), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("user_id", name="pk_con_users"),
            sa.UniqueConstraint("username", name="uq_con_users_username"),
            indexes=(("ix_con_users_merchant", ("merchant",)),),
        ),
        table(
            "con_sessions",
            sa.Column("sid_hash", sa.String(64), nullable=False),
            sa.Column("user_id", sa.String(32), nullable=False),
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("csrf", sa.String(64), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("expires_at", sa.Float(), nullable=False),
            sa.Column("last_seen", sa.Float(), nullable=False),
            sa.Column("ip", sa.String(64), nullable=False, server_default=""),
            sa.PrimaryKeyConstraint("sid_hash", name="pk_con_sessions"),
            indexes=(("ix_con_sessions_user_id", ("user_id",)),),
        ),
        table(
            "con_tokens",
            sa.Column("token_id", sa.String(24), nullable=False),
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("secret_hash", sa.String(64), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("created_by", sa.String(64), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("last_used", sa.Float()),
            sa.Column("revoked_at", sa.Float()),
            sa.PrimaryKeyConstraint("token_id", name="pk_con_tokens"),
            indexes=(("ix_con_tokens_merchant", ("merchant",)),),
        ),
        table(
            "con_audit",
            sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("actor", sa.String(96), nullable=False),
            sa.Column("action", sa.String(64), nullable=False),
            sa.Column("target", sa.String(256), nullable=False, server_default=""),
            sa.Column("before", sa.Text()),
            sa.Column("after", sa.Text()),
            sa.Column("at", sa.Float(), nullable=False),
            sa.Column("ip", sa.String(64), nullable=False, server_default=""),
            sa.PrimaryKeyConstraint("id", name="pk_con_audit"),
            indexes=(("ix_con_audit_merchant_at", ("merchant", "at")),),
        ),
        table(
            "con_feedback",
            sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("room_id", sa.String(64), nullable=False),
            sa.Column("answer_id", sa.String(32), nullable=False),
            sa.Column("question", sa.Text(), nullable=False),
            sa.Column("answer", sa.Text(), nullable=False),
            sa.Column("citations", sa.Text(), nullable=False, server_default="[]"),
            sa.Column("kb_version", sa.String(16)),
            sa.Column("reason", sa.String(500), nullable=False, server_default=""),
            sa.Column("status", sa.String(16), nullable=False, server_default="open"),
            sa.Column("filed_by", sa.String(96), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.Column("resolved_by", sa.String(96)),
            sa.Column("resolved_at", sa.Float()),
            sa.PrimaryKeyConstraint("id", name="pk_con_feedback"),
            indexes=(("ix_con_feedback_merchant_status", ("merchant", "status")),),
        ),
        # --- rooms (audience/rooms.py) and viewer-token secrets (audience/identity.py) ---
        table(
            "con_rooms",
            sa.Column("room_id", sa.String(64), nullable=False),
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("title", sa.String(128), nullable=False),
            sa.Column("created_by", sa.String(96), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("status", sa.String(16), nullable=False, server_default="open"),
            sa.Column("rundown", sa.String(256), nullable=False, server_default=""),
            sa.Column("allowed_origins", sa.Text(), nullable=False, server_default="[]"),
            sa.Column("closed_at", sa.Float()),
            sa.PrimaryKeyConstraint("room_id"),
            indexes=(("ix_con_rooms_merchant", ("merchant",)),),
        ),
        table(
            "aud_viewer_secrets",
            sa.Column("secret_id", sa.String(24), nullable=False),
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("secret", sa.String(128), nullable=False),
            sa.Column("created_by", sa.String(96), nullable=False, server_default=""),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("retired_at", sa.Float()),
            sa.PrimaryKeyConstraint("secret_id"),
            indexes=(("ix_aud_viewer_secrets_merchant", ("merchant",)),),
        ),
        # --- copywriting and A/B (copywriting/store.py) ---
        table(
            "copy_campaigns",
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("campaign_id", sa.String(64), nullable=False),
            sa.Column("spec", sa.Text(), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("stats", sa.Text(), nullable=False, server_default="{}"),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("merchant", "campaign_id"),
        ),
        table(
            "copy_variants",
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("campaign_id", sa.String(64), nullable=False),
            sa.Column("group_key", sa.String(200), nullable=False),
            sa.Column("variant", sa.String(64), nullable=False, server_default=""),
            sa.Column("segment", sa.String(64), nullable=False, server_default=""),
            sa.Column("sku", sa.String(64), nullable=False),
            sa.Column("angle", sa.String(16), nullable=False),
            sa.Column("viewers", sa.Integer(), nullable=False),
            sa.Column("piece", sa.Text(), nullable=False),
            sa.Column("source", sa.String(16), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("merchant", "campaign_id", "group_key"),
        ),
        table(
            "copy_deliveries",
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("campaign_id", sa.String(64), nullable=False),
            sa.Column("viewer_id", sa.String(ID), nullable=False),
            sa.Column("group_key", sa.String(200), nullable=False),
            sa.Column("variant", sa.String(64), nullable=False, server_default=""),
            sa.Column("send_at", sa.Float()),
            sa.Column("send_reason", sa.String(200), nullable=False, server_default=""),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("merchant", "campaign_id", "viewer_id"),
            indexes=(("ix_copy_deliveries_merchant", ("merchant", "campaign_id", "group_key")),),
        ),
        table(
            "ab_experiments",
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("experiment_id", sa.String(64), nullable=False),
            sa.Column("spec", sa.Text(), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("merchant", "experiment_id"),
        ),
        table(
            "ab_assignments",
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("experiment_id", sa.String(64), nullable=False),
            sa.Column("viewer_id", sa.String(ID), nullable=False),
            sa.Column("variant", sa.String(64), nullable=False),
            sa.Column("assigned_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("merchant", "experiment_id", "viewer_id"),
        ),
        table(
            "ab_events",
            sa.Column("merchant", sa.String(M), nullable=False),
            sa.Column("event_id", sa.String(ID), nullable=False),
            sa.Column("experiment_id", sa.String(64), nullable=False),
            sa.Column("viewer_id", sa.String(ID), nullable=False),
            sa.Column("variant", sa.String(64), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("ts", sa.Float(), nullable=False),
            sa.Column("value", sa.Float()),
            sa.Column("source", sa.String(16), nullable=False, server_default="api"),
            sa.PrimaryKeyConstraint("merchant", "event_id"),
            indexes=(("ix_ab_events_merchant", ("merchant", "experiment_id", "kind")),),
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    existing = set(insp.get_table_names())
    for t, indexes in _tables():
        if t.name not in existing:
            t.create(bind)  # with its indexes
            continue
        # adopted from create_all: add what later versions of the store added to it
        have = {c["name"] for c in insp.get_columns(t.name)}
        for col in t.columns:
            if col.name not in have:
                default = col.server_default.arg if col.server_default is not None else None
                op.add_column(t.name, sa.Column(col.name, col.type, nullable=col.nullable, server_default=default))
        have_ix = {i["name"] for i in insp.get_indexes(t.name)}
        for ix in indexes:
            if ix.name not in have_ix:
                ix.create(bind)


def downgrade() -> None:
    for t, _ in reversed(_tables()):
        op.drop_table(t.name)
