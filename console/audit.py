"""The audit log: who changed what, when, with the state before and after (per merchant)."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Engine, func, select

from audience.db import read_tx, write_tx
from console import db as t

MAX_SNAPSHOT = 64 * 1024


def _dump(x: Any) -> str | None:
    if x is None:
        return None
    s = x if isinstance(x, str) else json.dumps(x, ensure_ascii=False, default=str, sort_keys=True)
    return s if len(s) <= MAX_SNAPSHOT else s[:MAX_SNAPSHOT] + "…（已截断）"


class AuditLog:
    def __init__(self, engine: Engine):
        self.engine = engine

    def record(
        self,
        merchant: str,
        actor: str,
        action: str,
        target: str = "",
        before: Any = None,
        after: Any = None,
        ip: str = "",
    ) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(
                t.audit.insert().values(
                    merchant=merchant,
                    actor=actor[:96],
                    action=action[:64],
                    target=str(target)[:256],
                    before=_dump(before),
                    after=_dump(after),
                    at=time.time(),
                    ip=(ip or "")[:64],
                )
            )

    def list(self, merchant: str, limit: int = 100, offset: int = 0, action: str | None = None) -> dict:
        q = select(t.audit).where(t.audit.c.merchant == merchant)
        c = select(func.count()).select_from(t.audit).where(t.audit.c.merchant == merchant)
        if action:
            q = q.where(t.audit.c.action == action)
            c = c.where(t.audit.c.action == action)
        with read_tx(self.engine) as conn:
            rows = conn.execute(q.order_by(t.audit.c.id.desc()).limit(limit).offset(offset)).all()
            total = conn.execute(c).scalar_one()
        return {
            "total": total,
            "items": [
                {
                    "id": r.id,
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "before": _load(r.before),
                    "after": _load(r.after),
                    "at": r.at,
                    "ip": r.ip,
                }
                for r in rows
            ],
        }


def _load(s: str | None) -> Any:
    if s is None:
        return None
    try:
        return json.loads(s)
    except ValueError:
        return s
