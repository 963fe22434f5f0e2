"""Schema (SQLAlchemy Core). Migrations in audience/migrations mirror it; a test checks they agree.

Money is stored in fen (integer cents) so budget arithmetic is exact; times are epoch seconds.
Personal data (real name, phone, address) lives only in `aud_viewer_pii`, which the profile and
coupon code paths never read.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

M = 64  # merchant id length
ID = 128  # viewer / event / idempotency key length

viewers = Table(
    "aud_viewers",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("viewer_id", String(ID), primary_key=True),
    Column("age_band", String(16)),  # "18-24", "25-34", ...
    Column("gender", String(8)),  # "female" / "male" / "other"
    Column("city_tier", SmallInteger),  # 1..5
    Column("member", Boolean, nullable=False, server_default=false()),
    Column("member_level", String(32)),
    Column("hist_orders", Integer, nullable=False, server_default="0"),  # imported purchase history
    Column("hist_spent_fen", BigInteger, nullable=False, server_default="0"),
    Column("hist_coupon_orders", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

viewer_pii = Table(
    "aud_viewer_pii",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("viewer_id", String(ID), primary_key=True),
    Column("real_name", String(64)),
    Column("phone", String(32)),
    Column("address", String(256)),
    Column("updated_at", Float, nullable=False),
    ForeignKeyConstraint(
        ["merchant", "viewer_id"], ["aud_viewers.merchant", "aud_viewers.viewer_id"], ondelete="CASCADE"
    ),
)

profiles = Table(
    "aud_profiles",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("viewer_id", String(ID), primary_key=True),
    Column("state", Text, nullable=False),  # JSON, see audience.profile.ProfileState
    Column("tier", String(8), nullable=False, server_default="路过"),  # as of the last event (for analytics)
    Column("ref_ts", Float, nullable=False, server_default="0"),  # newest event time folded in
    Column("events", Integer, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False),
    ForeignKeyConstraint(
        ["merchant", "viewer_id"], ["aud_viewers.merchant", "aud_viewers.viewer_id"], ondelete="CASCADE"
    ),
)

products = Table(
    "aud_products",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("name", String(256)),
    Column("category", String(64)),
    Column("price_fen", BigInteger),
    Column("updated_at", Float, nullable=False),
)

events = Table(
    "aud_events",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("event_id", String(ID), primary_key=True),
    Column("viewer_id", String(ID), nullable=False),
    Column("type", String(16), nullable=False),
    Column("ts", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("sku", String(64)),
    Column("category", String(64)),
    Column("seconds", Float),
    Column("amount_fen", BigInteger),
    Column("campaign_id", String(64)),
    Column("coupon_id", String(64)),
    Column("order_id", String(ID)),
    Column("session_id", String(ID)),
    Index(None, "merchant", "viewer_id", "ts"),
)

rules = Table(
    "aud_rules",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("rules", Text, nullable=False),  # JSON overrides merged over the defaults
    Column("updated_at", Float, nullable=False),
)

seeds = Table(
    "aud_seeds",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("info", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

campaigns = Table(
    "aud_coupon_campaigns",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("title", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # amount | discount
    Column("amount_fen", BigInteger),  # kind=amount: fen off
    Column("discount", Float),  # kind=discount: 0.9 = 10% off
    Column("max_off_fen", BigInteger),  # kind=discount: cap per coupon (its face value for the money cap)
    Column("threshold_fen", BigInteger, nullable=False, server_default="0"),
    Column("budget_count", Integer, nullable=False),
    Column("budget_money_fen", BigInteger),  # null = no money cap
    Column("per_viewer_limit", Integer, nullable=False, server_default="1"),
    Column("eligible_tiers", Text, nullable=False, server_default="[]"),  # JSON lists; empty = any
    Column("eligible_tags", Text, nullable=False, server_default="[]"),
    Column("skus", Text, nullable=False, server_default="[]"),  # empty = store-wide
    Column("members_only", Boolean, nullable=False, server_default=false()),
    Column("valid_from", Float),
    Column("valid_until", Float),
    Column("stackable", Boolean, nullable=False, server_default=false()),
    Column("status", String(16), nullable=False, server_default="active"),  # active | paused | ended
    Column("issued_count", Integer, nullable=False, server_default="0"),
    Column("issued_value_fen", BigInteger, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # The database itself refuses to go over budget, whatever the code above it does.
    CheckConstraint("issued_count >= 0 AND issued_count <= budget_count", name="within_count"),
    CheckConstraint("budget_money_fen IS NULL OR issued_value_fen <= budget_money_fen", name="within_money"),
    CheckConstraint("per_viewer_limit >= 1", name="limit_positive"),
)

coupons = Table(
    "aud_coupons",
    metadata,
    Column("coupon_id", String(40), primary_key=True),
    Column("merchant", String(M), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("viewer_id", String(ID), nullable=False),
    Column("idempotency_key", String(ID), nullable=False),
    Column("face_value_fen", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, server_default="issued"),  # issued | redeemed
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("redeemed_at", Float),
    Column("order_id", String(ID)),
    UniqueConstraint("merchant", "campaign_id", "idempotency_key"),
    Index(None, "merchant", "viewer_id"),
    ForeignKeyConstraint(
        ["merchant", "campaign_id"], ["aud_coupon_campaigns.merchant", "aud_coupon_campaigns.campaign_id"]
    ),
)

claims = Table(
    "aud_coupon_claims",
    metadata,  # coupons held per (campaign, viewer): the per-viewer limit's counter
    Column("merchant", String(M), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("viewer_id", String(ID), primary_key=True),
    Column("n", Integer, nullable=False),
    CheckConstraint("n >= 0", name="n_positive"),
)

ledger = Table(
    "aud_coupon_ledger",
    metadata,  # append-only (UPDATE/DELETE raise: triggers in the migration)
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("merchant", String(M), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("coupon_id", String(40), nullable=False),
    Column("viewer_id", String(ID), nullable=False),
    Column("op", String(16), nullable=False),  # issue | redeem
    Column("value_fen", BigInteger, nullable=False),
    Column("idempotency_key", String(ID)),
    Column("order_id", String(ID)),
    Column("at", Float, nullable=False),
    UniqueConstraint("coupon_id", "op"),  # a coupon is issued once and redeemed at most once
    Index(None, "merchant", "campaign_id"),
)
