"""Audience data layer (千人千面): viewers, behaviour events, real-time profiles and a coupon ledger.

The agent sees only `tools.contracts` shapes: `AudienceService.lookup` returns a privacy-filtered
`ProfileView`; `eligible_offers` / `issue` implement `CouponLedger`. Storage is SQLAlchemy Core over
SQLite (WAL, the embedded default) or PostgreSQL (`LIVEROOM_DATABASE_URL`), migrated with Alembic.
"""

from __future__ import annotations

__all__ = ["AudienceService"]


def __getattr__(name: str):  # lazy: `import audience.config` must not pull in the whole service
    if name == "AudienceService":
        from audience.service import AudienceService

        return AudienceService
    raise AttributeError(name)
