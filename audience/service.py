"""`AudienceService`: viewers, event ingest with real-time profiles, and the coupon ledger.

Implements `tools.contracts.ProfileStore` (`lookup`) and `CouponLedger` (`eligible_offers`, `issue`).
Thread-safe; several processes may share one database (SQLite WAL or PostgreSQL).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, select, update

from audience import models as t
from audience.config import check_merchant, database_url
from audience.coupons import CouponMixin
from audience.db import insert_for, is_sqlite, make_engine, migrate, read_tx, write_tx
from audience.events import EventError, ParsedEvent, parse_event
from audience.profile import Decay, ProfileState, ViewerFacts
from audience.rules import AudienceRules, rules_from_overrides
from audience.schemas import IngestResult, ItemError, ItemResult, ProductIn, ViewerIn
from core.errors import BadRequest
from core.settings import Settings
from tools.contracts import ProfileView

MAX_BATCH = 1000  # events per POST /api/events
MAX_BODY_BYTES = 2 * 1024 * 1024
RULES_TTL_S = 5.0  # rules changed by another worker are picked up within this


class BatchTooLarge(BadRequest):
    code = "batch_too_large"
    http_status = 413


class AudienceService(CouponMixin):
    def __init__(
        self,
        url: str,
        *,
        auto_migrate: bool = True,
        clock: Callable[[], float] = time.time,
        max_batch: int = MAX_BATCH,
        max_body_bytes: int = MAX_BODY_BYTES,
        synchronous: str = "FULL",
        pool_size: int = 5,
    ):
        self.url = url
        self.sandbox = False  # set by audience.sandbox: simulated / accelerated data, never a merchant's own
        self.engine: Engine = make_engine(url, synchronous=synchronous, pool_size=pool_size)
        self.clock = clock
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self._rules: dict[str, tuple[float, AudienceRules, Decay]] = {}
        self._rules_lock = threading.Lock()
        self._fault: Callable[[str], None] | None = None  # crash-test hook (see tests)
        self._known: set[tuple[str, str]] = set()  # viewers ensure_viewer has seen exist
        # SQLite allows one writer at a time anyway; queueing this process's writers on a lock wakes the
        # next one as soon as the last commits (SQLite's busy handler would poll with sleeps instead).
        self._local_writer = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        if auto_migrate:
            migrate(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> AudienceService:
        return cls(database_url(settings), **kw)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._local_writer is None:
            with write_tx(self.engine) as conn:
                yield conn
            return
        with self._local_writer:
            with write_tx(self.engine) as conn:
                yield conn

    def _fire(self, point: str) -> None:
        if self._fault is not None:
            self._fault(point)

    # --- rules ---------------------------------------------------------------------------------
    def rules(self, merchant: str) -> AudienceRules:
        return self._rules_and_decay(merchant)[0]

    def _rules_and_decay(self, merchant: str) -> tuple[AudienceRules, Decay]:
        now = time.monotonic()
        hit = self._rules.get(merchant)
        if hit and now - hit[0] < RULES_TTL_S:
            return hit[1], hit[2]
        with read_tx(self.engine) as conn:
            raw = conn.execute(select(t.rules.c.rules).where(t.rules.c.merchant == merchant)).scalar()
        r = rules_from_overrides(json.loads(raw) if raw else None)
        d = Decay(r)
        with self._rules_lock:
            self._rules[merchant] = (now, r, d)
        return r, d

    def rule_overrides(self, merchant: str) -> dict:
        check_merchant(merchant)
        with read_tx(self.engine) as conn:
            raw = conn.execute(select(t.rules.c.rules).where(t.rules.c.merchant == merchant)).scalar()
        return json.loads(raw) if raw else {}

    def set_rules(self, merchant: str, overrides: dict[str, Any]) -> AudienceRules:
        """Replace the merchant's overrides (validated against the defaults; raises ValueError)."""
        check_merchant(merchant)
        r = rules_from_overrides(overrides)
        ins = insert_for(self.engine)(t.rules).values(
            merchant=merchant, rules=json.dumps(overrides, ensure_ascii=False), updated_at=self.clock()
        )
        with self._write() as conn:
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["merchant"],
                    set_={"rules": ins.excluded.rules, "updated_at": ins.excluded.updated_at},
                )
            )
        with self._rules_lock:
            self._rules.pop(merchant, None)
        return r

    # --- viewers & products ----------------------------------------------------------------
    def ensure_viewer(self, merchant: str, viewer_id: str) -> bool:
        """Create a viewer the store has never seen (a verified viewer on first contact), with
        defaults; an existing one is left as it is. True if it was created."""
        check_merchant(merchant)
        key = (merchant, viewer_id)
        if key in self._known:
            return False
        now = self.clock()
        q = insert_for(self.engine)(t.viewers).values(
            merchant=merchant, viewer_id=viewer_id, member=False, created_at=now, updated_at=now
        )
        ins = insert_for(self.engine)
        with self._write() as conn:
            n = conn.execute(q.on_conflict_do_nothing(index_elements=["merchant", "viewer_id"])).rowcount
            conn.execute(
                ins(t.profiles)
                .values(
                    merchant=merchant, viewer_id=viewer_id, state="", tier="路过", ref_ts=0.0, events=0, updated_at=now
                )
                .on_conflict_do_nothing()
            )
        if len(self._known) > 100_000:
            self._known.clear()
        self._known.add(key)
        return bool(n)

    def upsert_viewers(self, merchant: str, viewers: Iterable[ViewerIn | dict]) -> int:
        check_merchant(merchant)
        vs = [v if isinstance(v, ViewerIn) else ViewerIn.model_validate(v) for v in viewers]
        if not vs:
            return 0
        now = self.clock()
        ins = insert_for(self.engine)
        vrows = [
            {
                "merchant": merchant,
                "viewer_id": v.viewer_id,
                "age_band": v.age_band,
                "gender": v.gender,
                "city_tier": v.city_tier,
                "member": v.member,
                "member_level": v.member_level,
                "hist_orders": v.orders,
                "hist_spent_fen": round(v.spent * 100),
                "hist_coupon_orders": v.coupon_orders,
                "created_at": now,
                "updated_at": now,
            }
            for v in vs
        ]
        pii = [
            {
                "merchant": merchant,
                "viewer_id": v.viewer_id,
                "real_name": v.real_name,
                "phone": v.phone,
                "address": v.address,
                "updated_at": now,
            }
            for v in vs
            if v.real_name or v.phone or v.address
        ]
        with self._write() as conn:
            for chunk in _chunks(vrows, 500):
                q = ins(t.viewers)
                conn.execute(
                    q.on_conflict_do_update(
                        index_elements=["merchant", "viewer_id"],
                        set_={
                            c: q.excluded[c]
                            for c in (
                                "age_band",
                                "gender",
                                "city_tier",
                                "member",
                                "member_level",
                                "hist_orders",
                                "hist_spent_fen",
                                "hist_coupon_orders",
                                "updated_at",
                            )
                        },
                    ),
                    chunk,
                )
                conn.execute(
                    ins(t.profiles).on_conflict_do_nothing(),
                    [
                        {
                            "merchant": merchant,
                            "viewer_id": r["viewer_id"],
                            "state": "",
                            "tier": "路过",
                            "ref_ts": 0.0,
                            "events": 0,
                            "updated_at": now,
                        }
                        for r in chunk
                    ],
                )
            for chunk in _chunks(pii, 500):
                q = ins(t.viewer_pii)
                conn.execute(
                    q.on_conflict_do_update(
                        index_elements=["merchant", "viewer_id"],
                        set_={c: q.excluded[c] for c in ("real_name", "phone", "address", "updated_at")},
                    ),
                    chunk,
                )
        return len(vs)

    def upsert_products(self, merchant: str, products: Iterable[ProductIn | dict]) -> int:
        """Sku → category/price, so events that carry only a sku still feed interest tags."""
        check_merchant(merchant)
        ps = [p if isinstance(p, ProductIn) else ProductIn.model_validate(p) for p in products]
        if not ps:
            return 0
        now = self.clock()
        q = insert_for(self.engine)(t.products)
        rows = [
            {
                "merchant": merchant,
                "sku": p.sku,
                "name": p.name,
                "category": p.category,
                "price_fen": None if p.price is None else round(p.price * 100),
                "updated_at": now,
            }
            for p in ps
        ]
        with self._write() as conn:
            conn.execute(
                q.on_conflict_do_update(
                    index_elements=["merchant", "sku"],
                    set_={c: q.excluded[c] for c in ("name", "category", "price_fen", "updated_at")},
                ),
                rows,
            )
        return len(ps)

    def viewer_count(self, merchant: str) -> int:
        from sqlalchemy import func

        with read_tx(self.engine) as conn:
            return conn.execute(
                select(func.count()).select_from(t.viewers).where(t.viewers.c.merchant == merchant)
            ).scalar_one()

    # --- events ----------------------------------------------------------------------------------
    def ingest(self, merchant: str, items: Sequence[Any], *, now: float | None = None) -> IngestResult:
        """Store a batch of events and fold the new ones into the viewers' profiles, in one transaction.

        Per-item results: ``accepted``, ``duplicate`` (event id seen before: ignored) or ``rejected``
        with an error code and message; one bad item never sinks the batch.
        """
        check_merchant(merchant)
        if len(items) > self.max_batch:
            raise BatchTooLarge(
                f"batch of {len(items)} events exceeds the limit of {self.max_batch}; split it into smaller batches"
            )
        now = self.clock() if now is None else now
        rules, decay = self._rules_and_decay(merchant)
        results: list[ItemResult | None] = [None] * len(items)
        parsed: list[tuple[int, ParsedEvent]] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            try:
                ev = parse_event(item, merchant, rules, now)
            except EventError as e:
                eid = item.get("event_id") if isinstance(item, dict) else None
                results[i] = ItemResult(
                    index=i,
                    event_id=str(eid) if eid is not None else None,
                    status="rejected",
                    error=ItemError(code=e.code, message=e.message),
                )
                continue
            if ev.event_id in seen:
                results[i] = ItemResult(index=i, event_id=ev.event_id, status="duplicate")
                continue
            seen.add(ev.event_id)
            parsed.append((i, ev))
        if parsed:
            for attempt in range(3):
                try:
                    with self._write() as conn:
                        self._ingest_tx(conn, merchant, rules, decay, parsed, results, now)
                    break
                except Exception as e:  # deadlock / serialization on PostgreSQL: retry the batch
                    if attempt == 2 or not _retryable(e):
                        raise
                    time.sleep(0.05 * (attempt + 1))
        out = IngestResult(merchant=merchant, results=[r for r in results if r is not None])
        for r in out.results:
            if r.status == "accepted":
                out.accepted += 1
            elif r.status == "duplicate":
                out.duplicates += 1
            else:
                out.rejected += 1
        return out

    def _ingest_tx(
        self,
        conn,
        merchant: str,
        rules: AudienceRules,
        decay: Decay,
        parsed: list[tuple[int, ParsedEvent]],
        results: list,
        now: float,
    ) -> None:
        ins = insert_for(conn)
        vids = sorted({ev.viewer_id for _, ev in parsed})
        loaded = self._load_states(conn, merchant, vids)
        register = {ev.viewer_id for _, ev in parsed if ev.type in rules.events.register_on} - loaded.keys()
        if register:
            new = sorted(register)
            conn.execute(
                ins(t.viewers).on_conflict_do_nothing(),
                [
                    {
                        "merchant": merchant,
                        "viewer_id": v,
                        "member": False,
                        "hist_orders": 0,
                        "hist_spent_fen": 0,
                        "hist_coupon_orders": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for v in new
                ],
            )
            conn.execute(
                ins(t.profiles).on_conflict_do_nothing(),
                [
                    {
                        "merchant": merchant,
                        "viewer_id": v,
                        "state": "",
                        "tier": "路过",
                        "ref_ts": 0.0,
                        "events": 0,
                        "updated_at": now,
                    }
                    for v in new
                ],
            )
            loaded.update(self._load_states(conn, merchant, new))
        fresh: list[tuple[int, ParsedEvent]] = []
        for i, ev in parsed:
            if ev.viewer_id in loaded:
                fresh.append((i, ev))
            else:
                results[i] = ItemResult(
                    index=i,
                    event_id=ev.event_id,
                    status="rejected",
                    error=ItemError(
                        code="unknown_viewer",
                        message=f"unknown viewer {ev.viewer_id!r}: send an 'enter' event first or register the viewer",
                    ),
                )
        if not fresh:
            return
        rows = [ev.row(merchant, now) for _, ev in fresh]
        stmt = (
            ins(t.events).on_conflict_do_nothing(index_elements=["merchant", "event_id"]).returning(t.events.c.event_id)
        )
        inserted: set[str] = set()
        for chunk in _chunks(rows, 500):
            inserted.update(conn.execute(stmt, chunk).scalars().all())
        applied: list[ParsedEvent] = []
        for i, ev in fresh:
            if ev.event_id in inserted:
                results[i] = ItemResult(index=i, event_id=ev.event_id, status="accepted")
                applied.append(ev)
            else:
                results[i] = ItemResult(index=i, event_id=ev.event_id, status="duplicate")
        if not applied:
            return
        cats = self._categories(conn, merchant, rules, {ev.sku for ev in applied if ev.sku and not ev.category})
        by_viewer: dict[str, list[ParsedEvent]] = defaultdict(list)
        for ev in sorted(applied, key=lambda e: e.ts):
            by_viewer[ev.viewer_id].append(ev)
        updates = []
        for vid, evs in by_viewer.items():
            raw, count, facts = loaded[vid]
            st = ProfileState.loads(raw)
            for ev in evs:
                st.apply(ev, ev.category or cats.get(ev.sku), rules, decay)
            st.prune(rules, decay)
            updates.append(
                {
                    "m": merchant,
                    "v": vid,
                    "state": st.dumps(),
                    "tier": st.tier(facts, rules, decay, now),
                    "ref_ts": st.t,
                    "events": count + len(evs),
                    "updated_at": now,
                }
            )
        conn.execute(
            update(t.profiles)
            .where(and_(t.profiles.c.merchant == bindparam("m"), t.profiles.c.viewer_id == bindparam("v")))
            .values(
                state=bindparam("state"),
                tier=bindparam("tier"),
                ref_ts=bindparam("ref_ts"),
                events=bindparam("events"),
                updated_at=bindparam("updated_at"),
            ),
            updates,
        )

    def _load_states(self, conn, merchant: str, vids: list[str]) -> dict[str, tuple[str, int, ViewerFacts]]:
        p, v = t.profiles, t.viewers
        out: dict[str, tuple[str, int, ViewerFacts]] = {}
        for chunk in _chunks(vids, 500):
            q = (
                select(
                    p.c.viewer_id,
                    p.c.state,
                    p.c.events,
                    v.c.member,
                    v.c.hist_orders,
                    v.c.hist_spent_fen,
                    v.c.hist_coupon_orders,
                )
                .join(v, and_(v.c.merchant == p.c.merchant, v.c.viewer_id == p.c.viewer_id))
                .where(p.c.merchant == merchant, p.c.viewer_id.in_(chunk))
                .order_by(p.c.viewer_id)
            )
            if not is_sqlite(conn):
                q = q.with_for_update(of=p)  # concurrent batches for one viewer apply one after the other
            for row in conn.execute(q):
                out[row.viewer_id] = (
                    row.state,
                    row.events,
                    ViewerFacts(bool(row.member), row.hist_orders, row.hist_spent_fen, row.hist_coupon_orders),
                )
        return out

    def _categories(self, conn, merchant: str, rules: AudienceRules, skus: set[str]) -> dict[str, str]:
        """sku → interest category (keyword group of the product name, else its catalog category)."""
        if not skus:
            return {}
        out = {}
        for chunk in _chunks(sorted(skus), 500):
            for r in conn.execute(
                select(t.products.c.sku, t.products.c.name, t.products.c.category).where(
                    t.products.c.merchant == merchant, t.products.c.sku.in_(chunk)
                )
            ):
                cat = rules.interest.interest_category(r.name, r.category)
                if cat:
                    out[r.sku] = cat
        return out

    # --- profiles (ProfileStore) ---------------------------------------------------------------
    def lookup(self, merchant: str, viewer_id: str) -> ProfileView | None:
        """The privacy-filtered profile (no personal data, no raw events), decayed to now; None if unknown."""
        check_merchant(merchant)
        with read_tx(self.engine) as conn:
            return self._profile(conn, merchant, viewer_id)

    def _profile(self, conn, merchant: str, viewer_id: str, now: float | None = None) -> ProfileView | None:
        p, v = t.profiles, t.viewers
        row = conn.execute(
            select(p.c.state, v.c.member, v.c.hist_orders, v.c.hist_spent_fen, v.c.hist_coupon_orders)
            .join(v, and_(v.c.merchant == p.c.merchant, v.c.viewer_id == p.c.viewer_id))
            .where(p.c.merchant == merchant, p.c.viewer_id == viewer_id)
        ).first()
        if row is None:
            return None
        rules, decay = self._rules_and_decay(merchant)
        facts = ViewerFacts(bool(row.member), row.hist_orders, row.hist_spent_fen, row.hist_coupon_orders)
        return ProfileState.loads(row.state).view(viewer_id, facts, rules, decay, self.clock() if now is None else now)

    def profiles(self, merchant: str, viewer_ids: list[str]) -> dict[str, ProfileView]:
        check_merchant(merchant)
        with read_tx(self.engine) as conn:
            out = {}
            for vid in viewer_ids:
                pv = self._profile(conn, merchant, vid)
                if pv is not None:
                    out[vid] = pv
            return out

    def seeded(self, merchant: str, name: str) -> dict | None:
        with read_tx(self.engine) as conn:
            raw = conn.execute(
                select(t.seeds.c.info).where(t.seeds.c.merchant == merchant, t.seeds.c.name == name)
            ).scalar()
        return json.loads(raw) if raw else None

    def mark_seeded(self, merchant: str, name: str, info: dict) -> None:
        with self._write() as conn:
            conn.execute(
                insert_for(conn)(t.seeds).on_conflict_do_nothing(),
                [
                    {
                        "merchant": merchant,
                        "name": name,
                        "info": json.dumps(info, ensure_ascii=False),
                        "created_at": self.clock(),
                    }
                ],
            )


def _chunks(xs: list, n: int):
    for i in range(0, len(xs), n):
        yield xs[i : i + n]


def _retryable(e: Exception) -> bool:
    s = str(getattr(e, "orig", e)).lower()
    return any(k in s for k in ("deadlock", "could not serialize", "database is locked"))


__all__ = ["AudienceService", "BatchTooLarge", "MAX_BATCH", "MAX_BODY_BYTES"]
