"""Audience schema: viewers, PII, profiles, products, events, rules, seeds, coupon campaigns/coupons/claims/ledger.

Revision ID: 0001_initial
Revises:
Create Date: 2025-06-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

M, ID = 64, 128


def _viewer_fk():
    return sa.ForeignKeyConstraint(["merchant", "viewer_id"], ["aud_viewers.merchant", "aud_viewers.viewer_id"],
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "aud_viewers",
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("viewer_id", sa.String(ID), nullable=False),
        sa.Column("age_band", sa.String(16)),
        sa.Column("gender", sa.String(8)),
        sa.Column("city_tier", sa.SmallInteger()),
        sa.Column("member", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("member_level", sa.String(32)),
        sa.Column("hist_orders", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("hist_spent_fen", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("hist_coupon_orders", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("merchant", "viewer_id", name="pk_aud_viewers"),
    )
    op.create_table(
        "aud_viewer_pii",
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("viewer_id", sa.String(ID), nullable=False),
        sa.Column("real_name", sa.String(64)),
        sa.Column("phone", sa.String(32)),
        sa.Column("address", sa.String(256)),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("merchant", "viewer_id", name="pk_aud_viewer_pii"),
        sa.ForeignKeyConstraint(["merchant", "viewer_id"], ["aud_viewers.merchant", "aud_viewers.viewer_id"],
                                ondelete="CASCADE", name="fk_aud_viewer_pii_merchant_viewer_id"),
    )
    op.create_table(
        "aud_profiles",
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("viewer_id", sa.String(ID), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False, server_default="路过"),
        sa.Column("ref_ts", sa.Float(), nullable=False, server_default="0"),
        sa.Column("events", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("merchant", "viewer_id", name="pk_aud_profiles"),
        sa.ForeignKeyConstraint(["merchant", "viewer_id"], ["aud_viewers.merchant", "aud_viewers.viewer_id"],
                                ondelete="CASCADE", name="fk_aud_profiles_merchant_viewer_id"),
    )
    op.create_table(
        "aud_products",
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256)),
        sa.Column("category", sa.String(64)),
        sa.Column("price_fen", sa.BigInteger()),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("merchant", "sku", name="pk_aud_products"),
    )
    op.create_table(
        "aud_events",
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("event_id", sa.String(ID), nullable=False),
        sa.Column("viewer_id", sa.String(ID), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("sku", sa.String(64)),
        sa.Column("category", sa.String(64)),
        sa.Column("seconds", sa.Float()),
        sa.Column("amount_fen", sa.BigInteger()),
        sa.Column("campaign_id", sa.String(64)),
        sa.Column("coupon_id", sa.String(64)),
        sa.Column("order_id", sa.String(ID)),
        sa.Column("session_id", sa.String(ID)),
        sa.PrimaryKeyConstraint("merchant", "event_id", name="pk_aud_events"),
    )
    op.create_index("ix_aud_events_merchant_viewer_id_ts", "aud_events", ["merchant", "viewer_id", "ts"])
    op.create_table(
        "aud_rules",
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("merchant", name="pk_aud_rules"),
    )
    op.create_table(
        "aud_seeds",
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("info", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("merchant", "name", name="pk_aud_seeds"),
    )
    op.create_table(
        "aud_coupon_campaigns",
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger()),
        sa.Column("discount", sa.Float()),
        sa.Column("max_off_fen", sa.BigInteger()),
        sa.Column("threshold_fen", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("budget_count", sa.Integer(), nullable=False),
        sa.Column("budget_money_fen", sa.BigInteger()),
        sa.Column("per_viewer_limit", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("eligible_tiers", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("eligible_tags", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("skus", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("members_only", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("valid_from", sa.Float()),
        sa.Column("valid_until", sa.Float()),
        sa.Column("stackable", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("issued_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("issued_value_fen", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("merchant", "campaign_id", name="pk_aud_coupon_campaigns"),
        sa.CheckConstraint("issued_count >= 0 AND issued_count <= budget_count",
                           name="ck_aud_coupon_campaigns_within_count"),
        sa.CheckConstraint("budget_money_fen IS NULL OR issued_value_fen <= budget_money_fen",
                           name="ck_aud_coupon_campaigns_within_money"),
        sa.CheckConstraint("per_viewer_limit >= 1", name="ck_aud_coupon_campaigns_limit_positive"),
    )
    op.create_table(
        "aud_coupons",
        sa.Column("coupon_id", sa.String(40), nullable=False),
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("viewer_id", sa.String(ID), nullable=False),
        sa.Column("idempotency_key", sa.String(ID), nullable=False),
        sa.Column("face_value_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="issued"),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float()),
        sa.Column("redeemed_at", sa.Float()),
        sa.Column("order_id", sa.String(ID)),
        sa.PrimaryKeyConstraint("coupon_id", name="pk_aud_coupons"),
        sa.UniqueConstraint("merchant", "campaign_id", "idempotency_key",
                            name="uq_aud_coupons_merchant_campaign_id_idempotency_key"),
        sa.ForeignKeyConstraint(["merchant", "campaign_id"],
                                ["aud_coupon_campaigns.merchant", "aud_coupon_campaigns.campaign_id"],
                                name="fk_aud_coupons_merchant_campaign_id"),
    )
    op.create_index("ix_aud_coupons_merchant_viewer_id", "aud_coupons", ["merchant", "viewer_id"])
    op.create_table(
        "aud_coupon_claims",
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("viewer_id", sa.String(ID), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("merchant", "campaign_id", "viewer_id", name="pk_aud_coupon_claims"),
        sa.CheckConstraint("n >= 0", name="ck_aud_coupon_claims_n_positive"),
    )
    op.create_table(
        "aud_coupon_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True),
        sa.Column("merchant", sa.String(M), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("coupon_id", sa.String(40), nullable=False),
        sa.Column("viewer_id", sa.String(ID), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(ID)),
        sa.Column("order_id", sa.String(ID)),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_aud_coupon_ledger"),
        sa.UniqueConstraint("coupon_id", "op", name="uq_aud_coupon_ledger_coupon_id_op"),
    )
    op.create_index("ix_aud_coupon_ledger_merchant_campaign_id", "aud_coupon_ledger", ["merchant", "campaign_id"])

    # The ledger is append-only: the database refuses UPDATE and DELETE on it.
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER aud_coupon_ledger_no_{verb.lower()} BEFORE {verb} ON aud_coupon_ledger "
                       f"BEGIN SELECT RAISE(ABORT, 'aud_coupon_ledger is append-only'); END")
    else:
        op.execute("CREATE FUNCTION aud_coupon_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   "BEGIN RAISE EXCEPTION 'aud_coupon_ledger is append-only'; END $$")
        op.execute("CREATE TRIGGER aud_coupon_ledger_append_only BEFORE UPDATE OR DELETE ON aud_coupon_ledger "
                   "FOR EACH ROW EXECUTE FUNCTION aud_coupon_ledger_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS aud_coupon_ledger_no_update")
        op.execute("DROP TRIGGER IF EXISTS aud_coupon_ledger_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS aud_coupon_ledger_append_only ON aud_coupon_ledger")
        op.execute("DROP FUNCTION IF EXISTS aud_coupon_ledger_append_only()")
    for t in ("aud_coupon_ledger", "aud_coupon_claims", "aud_coupons", "aud_coupon_campaigns", "aud_seeds",
              "aud_rules", "aud_events", "aud_products", "aud_profiles", "aud_viewer_pii", "aud_viewers"):
        op.drop_table(t)
