"""The sandbox: where simulated and accelerated shows keep their audience data.

A simulated audience or a show clock running faster than wall time produces events a merchant must
never see in their numbers (thousands of synthetic viewers, timestamps ahead of the real clock). Such a
run gets its own database file, ``<data_dir>/sandbox/<merchant>.db``, rebuilt at the start of each run
and flagged ``sandbox`` everywhere it is reported. The real database is only read, for the set-up the
show needs: the merchant's products, rules and coupon campaigns (copied with nothing issued, so a
simulated show can never spend a real budget).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from audience import models as t
from audience.config import check_merchant
from audience.db import read_tx, write_tx
from audience.service import AudienceService
from core.settings import Settings


def sandbox_path(settings: Settings, merchant: str) -> Path:
    return Path(settings.data_dir) / "sandbox" / f"{check_merchant(merchant)}.db"


def needs_sandbox(*, simulated: bool, speed: float) -> bool:
    """A simulated audience, or show time that is not wall time, never touches real data."""
    return simulated or speed != 1.0


def open_sandbox(
    settings: Settings, merchant: str, real: AudienceService | None, clock: Callable[[], float]
) -> AudienceService:
    """A fresh sandbox for ``merchant`` with the real set-up copied in (``real`` is only read)."""
    path = sandbox_path(settings, merchant)
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)
    svc = AudienceService(f"sqlite:///{path}", clock=clock)
    svc.sandbox = True
    if real is not None:
        copy_setup(real, svc, merchant)
    return svc


def copy_setup(real: AudienceService, sandbox: AudienceService, merchant: str) -> int:
    """Products, rules and campaigns (issued counts zeroed) of one merchant; returns rows copied."""
    n = 0
    with read_tx(real.engine) as src:
        rows = {
            tbl: [dict(r._mapping) for r in src.execute(select(tbl).where(tbl.c.merchant == merchant))]
            for tbl in (t.products, t.rules, t.campaigns)
        }
    for r in rows[t.campaigns]:
        r.update(issued_count=0, issued_value_fen=0)
    with write_tx(sandbox.engine) as dst:
        for tbl, rs in rows.items():
            if rs:
                dst.execute(tbl.insert(), rs)
                n += len(rs)
    return n
