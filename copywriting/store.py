"""Storage for campaigns, generated variants, deliveries, A/B experiments, assignments and events.

SQLAlchemy Core on the audience database (the same engine when the audience service is there: SQLite
WAL or PostgreSQL), else an SQLite file ``<data_dir>/copywriting.db``. The tables (prefixed ``copy_`` /
``ab_``) are in the app's Alembic migrations (audience/migrations, revision 0002): a change here needs a
new revision there.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    select,
    update,
)

from audience.db import ensure_schema, make_engine

metadata = MetaData()
M, ID = 64, 128

campaigns = Table(
    "copy_campaigns",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("status", String(16), nullable=False),  # created | running | done | failed
    Column("stats", Text, nullable=False, server_default="{}"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

variants = Table(
    "copy_variants",
    metadata,  # one generated copy per group of similar viewers
    Column("merchant", String(M), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("group_key", String(200), primary_key=True),
    Column("variant", String(64), nullable=False, server_default=""),  # A/B arm ("" without an experiment)
    Column("segment", String(64), nullable=False, server_default=""),
    Column("sku", String(64), nullable=False),
    Column("angle", String(16), nullable=False),
    Column("viewers", Integer, nullable=False),
    Column("piece", Text, nullable=False),  # CopyPiece JSON
    Column("source", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)

deliveries = Table(
    "copy_deliveries",
    metadata,  # which copy each viewer gets, and when
    Column("merchant", String(M), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("viewer_id", String(ID), primary_key=True),
    Column("group_key", String(200), nullable=False),
    Column("variant", String(64), nullable=False, server_default=""),
    Column("send_at", Float),  # epoch seconds; NULL = don't send (no allowed time)
    Column("send_reason", String(200), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Index(None, "merchant", "campaign_id", "group_key"),
)

experiments = Table(
    "ab_experiments",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("experiment_id", String(64), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("status", String(16), nullable=False),  # running | stopped
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

assignments = Table(
    "ab_assignments",
    metadata,  # first assignment wins: sticky even if weights change later
    Column("merchant", String(M), primary_key=True),
    Column("experiment_id", String(64), primary_key=True),
    Column("viewer_id", String(ID), primary_key=True),
    Column("variant", String(64), nullable=False),
    Column("assigned_at", Float, nullable=False),
)

ab_events = Table(
    "ab_events",
    metadata,
    Column("merchant", String(M), primary_key=True),
    Column("event_id", String(ID), primary_key=True),
    Column("experiment_id", String(64), nullable=False),
    Column("viewer_id", String(ID), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # exposure | click | conversion
    Column("ts", Float, nullable=False),
    Column("value", Float),  # order value for conversions
    Column("source", String(16), nullable=False, server_default="api"),  # api | events (attributed)
    Index(None, "merchant", "experiment_id", "kind"),
)


def _sqlite_engine(path: Path) -> Engine:
    return make_engine(f"sqlite:///{path}")


RUN_OPTIONS = ("use_llm", "max_llm_groups")  # how to run, not what: may change between runs


def _core(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in RUN_OPTIONS}


class CopyStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._lock = threading.Lock() if engine.dialect.name == "sqlite" else None
        ensure_schema(engine)  # locked: two processes starting at once upgrade one after the other

    @classmethod
    def for_container(cls, container) -> CopyStore:
        aud = None
        try:
            aud = container.audience
        except Exception:  # noqa: BLE001 — no audience database: a file of our own
            aud = None
        if aud is not None and getattr(aud, "engine", None) is not None:
            return cls(aud.engine)
        return cls(_sqlite_engine(Path(container.settings.data_dir) / "copywriting.db"))

    @classmethod
    def sqlite(cls, path: Path) -> CopyStore:
        return cls(_sqlite_engine(Path(path)))

    @property
    def sqlite_backend(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Any]:
        def tx():
            conn = self.engine.connect()
            if self.sqlite_backend:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            return conn

        if self._lock is not None:
            with self._lock:
                with tx() as conn, conn.begin():
                    yield conn
            return
        with tx() as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def insert(self, conn):
        if conn.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert

    # --- campaigns -------------------------------------------------------------------------------
    def get_campaign(self, merchant: str, cid: str) -> dict | None:
        with self.read() as conn:
            r = conn.execute(
                select(campaigns).where(campaigns.c.merchant == merchant, campaigns.c.campaign_id == cid)
            ).first()
        if r is None:
            return None
        return {
            "campaign_id": r.campaign_id,
            "merchant": r.merchant,
            "spec": json.loads(r.spec),
            "status": r.status,
            "stats": json.loads(r.stats or "{}"),
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        }

    def put_campaign(self, merchant: str, cid: str, spec: dict) -> str:
        """Create, or accept an identical re-create; returns "created" / "exists"; raises on a different spec."""
        now = time.time()
        with self.write() as conn:
            # insert-or-nothing, then compare: on PostgreSQL a concurrent create may win between a check and
            # an insert (SQLite's write lock serializes them anyway)
            won = conn.execute(
                self.insert(conn)(campaigns)
                .values(
                    merchant=merchant,
                    campaign_id=cid,
                    spec=json.dumps(spec, ensure_ascii=False),
                    status="created",
                    stats="{}",
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
                .returning(campaigns.c.campaign_id)  # (rowcount is not reported for an INSERT on every driver)
            ).first()
            if won is not None:
                return "created"
            stored = conn.execute(
                select(campaigns.c.spec).where(campaigns.c.merchant == merchant, campaigns.c.campaign_id == cid)
            ).scalar_one()
        if _core(json.loads(stored)) != _core(spec):
            raise ValueError(f"campaign {cid!r} exists with a different spec")
        return "exists"

    def set_campaign(self, merchant: str, cid: str, status: str, stats: dict | None = None) -> None:
        vals: dict[str, Any] = {"status": status, "updated_at": time.time()}
        if stats is not None:
            vals["stats"] = json.dumps(stats, ensure_ascii=False)
        with self.write() as conn:
            conn.execute(
                update(campaigns).where(campaigns.c.merchant == merchant, campaigns.c.campaign_id == cid).values(**vals)
            )

    def done_groups(self, merchant: str, cid: str) -> dict[str, dict]:
        with self.read() as conn:
            rows = conn.execute(
                select(variants.c.group_key, variants.c.piece).where(
                    variants.c.merchant == merchant, variants.c.campaign_id == cid
                )
            ).all()
        return {r.group_key: json.loads(r.piece) for r in rows}

    def delivered(self, merchant: str, cid: str) -> set[str]:
        with self.read() as conn:
            return set(
                conn.execute(
                    select(deliveries.c.viewer_id).where(
                        deliveries.c.merchant == merchant, deliveries.c.campaign_id == cid
                    )
                ).scalars()
            )

    def save_group(self, merchant: str, cid: str, key: str, meta: dict, piece: dict, rows: list[dict]) -> None:
        """A group's copy and its viewers' deliveries in one transaction (the unit of resumption)."""
        now = time.time()
        with self.write() as conn:
            ins = self.insert(conn)
            conn.execute(
                ins(variants)
                .values(
                    merchant=merchant,
                    campaign_id=cid,
                    group_key=key,
                    variant=meta.get("variant", ""),
                    segment=meta.get("segment", ""),
                    sku=meta["sku"],
                    angle=piece["angle"],
                    viewers=len(rows),
                    piece=json.dumps(piece, ensure_ascii=False),
                    source=piece["source"],
                    created_at=now,
                )
                .on_conflict_do_nothing()
            )
            for i in range(0, len(rows), 500):
                chunk = [
                    {"merchant": merchant, "campaign_id": cid, "group_key": key, "created_at": now, **r}
                    for r in rows[i : i + 500]
                ]
                if chunk:
                    conn.execute(ins(deliveries).on_conflict_do_nothing(), chunk)

    def results(self, merchant: str, cid: str, offset: int = 0, limit: int = 100) -> list[dict]:
        with self.read() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.viewer_id,
                    deliveries.c.variant,
                    deliveries.c.send_at,
                    deliveries.c.send_reason,
                    variants.c.piece,
                )
                .join(
                    variants,
                    and_(
                        variants.c.merchant == deliveries.c.merchant,
                        variants.c.campaign_id == deliveries.c.campaign_id,
                        variants.c.group_key == deliveries.c.group_key,
                    ),
                )
                .where(deliveries.c.merchant == merchant, deliveries.c.campaign_id == cid)
                .order_by(deliveries.c.viewer_id)
                .offset(offset)
                .limit(limit)
            ).all()
        out = []
        for r in rows:
            p = json.loads(r.piece)
            out.append(
                {
                    "viewer_id": r.viewer_id,
                    "variant": r.variant,
                    "send_at": r.send_at,
                    "send_reason": r.send_reason,
                    "text": p["text"],
                    "angle": p["angle"],
                    "sku": p["sku"],
                }
            )
        return out

    def groups(self, merchant: str, cid: str) -> list[dict]:
        with self.read() as conn:
            rows = conn.execute(
                select(variants)
                .where(variants.c.merchant == merchant, variants.c.campaign_id == cid)
                .order_by(variants.c.group_key)
            ).all()
        return [
            {
                "group_key": r.group_key,
                "variant": r.variant,
                "segment": r.segment,
                "sku": r.sku,
                "angle": r.angle,
                "viewers": r.viewers,
                "source": r.source,
                "piece": json.loads(r.piece),
            }
            for r in rows
        ]

    def count_deliveries(self, merchant: str, cid: str) -> int:
        with self.read() as conn:
            return conn.execute(
                select(func.count())
                .select_from(deliveries)
                .where(deliveries.c.merchant == merchant, deliveries.c.campaign_id == cid)
            ).scalar_one()

    # --- experiments -----------------------------------------------------------------------------
    def get_experiment(self, merchant: str, eid: str) -> dict | None:
        with self.read() as conn:
            r = conn.execute(
                select(experiments).where(experiments.c.merchant == merchant, experiments.c.experiment_id == eid)
            ).first()
        return None if r is None else {"spec": json.loads(r.spec), "status": r.status, "created_at": r.created_at}

    def put_experiment(self, merchant: str, eid: str, spec: dict) -> str:
        now = time.time()
        with self.write() as conn:  # insert-or-nothing, then compare (see put_campaign)
            won = conn.execute(
                self.insert(conn)(experiments)
                .values(
                    merchant=merchant,
                    experiment_id=eid,
                    spec=json.dumps(spec, ensure_ascii=False),
                    status="running",
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
                .returning(experiments.c.experiment_id)
            ).first()
            if won is not None:
                return "created"
            stored = conn.execute(
                select(experiments.c.spec).where(experiments.c.merchant == merchant, experiments.c.experiment_id == eid)
            ).scalar_one()
        if json.loads(stored) != spec:
            raise ValueError(f"experiment {eid!r} exists with a different spec")
        return "exists"

    def update_experiment(self, merchant: str, eid: str, spec: dict | None = None, status: str | None = None) -> None:
        vals: dict[str, Any] = {"updated_at": time.time()}
        if spec is not None:
            vals["spec"] = json.dumps(spec, ensure_ascii=False)
        if status is not None:
            vals["status"] = status
        with self.write() as conn:
            conn.execute(
                update(experiments)
                .where(experiments.c.merchant == merchant, experiments.c.experiment_id == eid)
                .values(**vals)
            )

    def assignments_of(self, merchant: str, eid: str, viewer_ids: Iterable[str]) -> dict[str, str]:
        ids = list(viewer_ids)
        out: dict[str, str] = {}
        with self.read() as conn:
            for i in range(0, len(ids), 500):
                out.update(
                    conn.execute(
                        select(assignments.c.viewer_id, assignments.c.variant).where(
                            assignments.c.merchant == merchant,
                            assignments.c.experiment_id == eid,
                            assignments.c.viewer_id.in_(ids[i : i + 500]),
                        )
                    ).all()
                )
        return out

    def add_assignments(self, merchant: str, eid: str, pairs: dict[str, str]) -> dict[str, str]:
        """Insert first assignments (existing ones win) and return what is stored for these viewers."""
        if not pairs:
            return {}
        now = time.time()
        rows = [
            {"merchant": merchant, "experiment_id": eid, "viewer_id": v, "variant": a, "assigned_at": now}
            for v, a in pairs.items()
        ]
        with self.write() as conn:
            ins = self.insert(conn)
            for i in range(0, len(rows), 500):
                conn.execute(ins(assignments).on_conflict_do_nothing(), rows[i : i + 500])
        return self.assignments_of(merchant, eid, pairs)

    def add_events(self, merchant: str, rows: list[dict]) -> int:
        if not rows:
            return 0
        with self.write() as conn:
            ins = self.insert(conn)
            n = 0
            for i in range(0, len(rows), 500):
                res = conn.execute(
                    ins(ab_events).on_conflict_do_nothing().returning(ab_events.c.event_id),
                    [{"merchant": merchant, **r} for r in rows[i : i + 500]],
                )
                n += len(res.scalars().all())
        return n

    def events(self, merchant: str, eid: str) -> list[Any]:
        with self.read() as conn:
            return conn.execute(
                select(
                    ab_events.c.viewer_id,
                    ab_events.c.variant,
                    ab_events.c.kind,
                    ab_events.c.ts,
                    ab_events.c.value,
                    ab_events.c.event_id,
                ).where(ab_events.c.merchant == merchant, ab_events.c.experiment_id == eid)
            ).all()
