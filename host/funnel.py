"""The live funnel: per room, per minute — viewers in, watch time, product clicks, add-to-cart,
orders, GMV, coupon claims and uses, danmaku and questions.

Stable API for the console (charts)::

    store = FunnelStore()                       # one per process (``HostHub.funnel``)
    store.record(merchant, room_id, event)      # a ``host.frames.RoomEvent``
    store.series(merchant, room_id, minutes=60) # → list[FunnelMinute], oldest first, gaps filled with zeros
    store.totals(merchant, room_id)             # → FunnelTotals since the room started

Minutes are aligned to the show clock (``floor(ts / 60) * 60``). Memory is bounded: a room keeps
``keep_minutes`` (default 26 h) of buckets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from audience import metrics
from host.frames import RoomEvent
from host.mix import Presence

SHORT_STAY_S = 30.0


class FunnelMinute(BaseModel):
    minute: float = Field(description="start of the minute, epoch seconds (show clock)")
    exposures: int = 0  # exposure events (the room / a product shown to a viewer)
    entries: int = 0  # viewers in
    leaves: int = 0
    online: int = 0  # viewers present at the end of the minute
    active_viewers: int = 0  # distinct viewers with any event in the minute
    watch_seconds: float = 0.0  # sum of watch heartbeats
    avg_watch_s: float = 0.0  # watch_seconds / distinct watchers
    avg_stay_s: float | None = None  # mean stay of the viewers who left in this minute
    short_stays: int = 0  # of those, how many stayed under 30 s
    product_clicks: int = 0
    add_to_cart: int = 0
    orders: int = 0
    gmv: float = 0.0
    coupon_claims: int = 0
    coupon_uses: int = 0
    danmaku: int = 0
    questions: int = 0
    conversion: float = 0.0  # orders / active viewers (activity, not CVR: see FunnelTotals.cvr)


class FunnelTotals(BaseModel):
    minutes: int = 0
    exposures: int = 0
    exposed_viewers: int = 0
    entries: int = 0
    unique_viewers: int = 0
    peak_online: int = 0
    product_clicks: int = 0
    add_to_cart: int = 0
    orders: int = 0
    gmv: float = 0.0
    coupon_claims: int = 0
    coupon_uses: int = 0
    danmaku: int = 0
    questions: int = 0
    # audience/metrics.py: per exposed viewer, with the Wilson 95% interval; None without exposures
    ctr: dict | None = Field(None, description="viewers who clicked a product / exposed viewers")
    cvr: dict | None = Field(None, description="viewers who ordered / exposed viewers")


@dataclass
class _Bucket:
    minute: float
    exposures: int = 0
    entries: int = 0
    leaves: int = 0
    online: int = 0
    active: set = field(default_factory=set)
    watchers: set = field(default_factory=set)
    watch_s: float = 0.0
    stay_sum: float = 0.0
    stay_n: int = 0
    short: int = 0
    clicks: int = 0
    carts: int = 0
    orders: int = 0
    gmv: float = 0.0
    claims: int = 0
    uses: int = 0
    danmaku: int = 0
    questions: int = 0

    def out(self) -> FunnelMinute:
        n_active = len(self.active)
        return FunnelMinute(
            minute=self.minute,
            exposures=self.exposures,
            entries=self.entries,
            leaves=self.leaves,
            online=self.online,
            active_viewers=n_active,
            watch_seconds=round(self.watch_s, 1),
            avg_watch_s=round(self.watch_s / len(self.watchers), 1) if self.watchers else 0.0,
            avg_stay_s=round(self.stay_sum / self.stay_n, 1) if self.stay_n else None,
            short_stays=self.short,
            product_clicks=self.clicks,
            add_to_cart=self.carts,
            orders=self.orders,
            gmv=round(self.gmv, 2),
            coupon_claims=self.claims,
            coupon_uses=self.uses,
            danmaku=self.danmaku,
            questions=self.questions,
            conversion=round(self.orders / n_active, 4) if n_active else 0.0,
        )

    def compact(self) -> None:
        """A closed minute keeps counts, not viewer sets (bounded memory over 24 h)."""
        if isinstance(self.active, set):
            self.active = _Count(len(self.active))
            self.watchers = _Count(len(self.watchers))


def _add(viewers: set[str], viewer_id: str) -> None:
    if len(viewers) < 1_000_000:
        viewers.add(viewer_id)


class _Count:
    """A frozen set size (len() only)."""

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def add(self, _x) -> None:  # a late event for a closed minute still counts
        self.n += 1

    def __bool__(self) -> bool:
        return self.n > 0


class Funnel:
    """One room's per-minute funnel."""

    def __init__(self, keep_minutes: int = 26 * 60, presence: Presence | None = None):
        self.keep = keep_minutes
        self.presence = presence or Presence()
        self._b: OrderedDict[float, _Bucket] = OrderedDict()
        self._lock = threading.Lock()
        self._viewers_seen = 0
        self._seen_set: set[str] = set()
        # viewer sets behind CTR / CVR (bounded like _seen_set)
        self._exposed: set[str] = set()
        self._clickers: set[str] = set()
        self._buyers: set[str] = set()
        self._peak = 0
        self._tot = _Bucket(0.0)

    def _bucket(self, ts: float) -> _Bucket:
        m = float(int(ts // 60) * 60)
        b = self._b.get(m)
        if b is None:
            b = self._b[m] = _Bucket(m)
            if len(self._b) > 1:  # keep time order even when a late event opens an old minute
                for k in [k for k in self._b if k > m]:
                    self._b.move_to_end(k)
            for old in list(self._b.values())[:-2]:
                old.compact()
            while len(self._b) > self.keep:
                self._b.popitem(last=False)
        return b

    def record(self, ev: RoomEvent) -> None:
        with self._lock:
            b = self._bucket(ev.ts)
            stay = self.presence.record(ev) if ev.type != metrics.EXPOSURE else None  # shown ≠ in the room
            t = ev.type
            if t != metrics.EXPOSURE:  # being shown is not activity
                b.active.add(ev.viewer_id)
            if t == metrics.EXPOSURE:
                b.exposures += 1
                self._tot.exposures += 1
                _add(self._exposed, ev.viewer_id)
            elif t == "enter":
                b.entries += 1
                self._tot.entries += 1
                if len(self._seen_set) < 1_000_000:
                    self._seen_set.add(ev.viewer_id)
            elif t == "leave":
                b.leaves += 1
                if stay is not None:
                    b.stay_sum += stay
                    b.stay_n += 1
                    if stay < SHORT_STAY_S:
                        b.short += 1
            elif t == "watch":
                b.watch_s += ev.seconds or 0.0
                b.watchers.add(ev.viewer_id)
            elif t == "product_click":
                b.clicks += 1
                self._tot.clicks += 1
                _add(self._clickers, ev.viewer_id)
            elif t == "add_to_cart":
                b.carts += 1
                self._tot.carts += 1
            elif t == "purchase":
                b.orders += 1
                b.gmv += ev.amount or 0.0
                self._tot.orders += 1
                self._tot.gmv += ev.amount or 0.0
                _add(self._buyers, ev.viewer_id)
                if ev.coupon_used:
                    b.uses += 1
                    self._tot.uses += 1
            elif t == "coupon_claim":
                b.claims += 1
                self._tot.claims += 1
            elif t == "coupon_use":
                b.uses += 1
                self._tot.uses += 1
            b.online = len(self.presence)
            self._peak = max(self._peak, b.online)

    def record_danmaku(self, ts: float, question: bool) -> None:
        with self._lock:
            b = self._bucket(ts)
            b.danmaku += 1
            self._tot.danmaku += 1
            if question:
                b.questions += 1
                self._tot.questions += 1

    def record_coupon_issued(self, ts: float) -> None:
        """A coupon the host issued through the ledger (a claim the event stream may not carry)."""
        with self._lock:
            self._bucket(ts).claims += 1
            self._tot.claims += 1

    def tick(self, now: float) -> None:
        """Expire idle viewers and carry the online count into the current minute."""
        with self._lock:
            self.presence.expire(now)
            b = self._bucket(now)
            b.online = len(self.presence)

    def series(self, minutes: int = 60, now: float | None = None) -> list[FunnelMinute]:
        with self._lock:
            if not self._b and now is None:
                return []
            last = float(int(now // 60) * 60) if now is not None else next(reversed(self._b))
            out = []
            prev_online = 0
            for i in range(minutes - 1, -1, -1):
                m = last - 60 * i
                b = self._b.get(m)
                if b is None:
                    out.append(FunnelMinute(minute=m, online=prev_online))
                else:
                    fm = b.out()
                    prev_online = fm.online
                    out.append(fm)
            return out

    def totals(self) -> FunnelTotals:
        with self._lock:
            t = self._tot
            ex = self._exposed
            return FunnelTotals(
                minutes=len(self._b),
                exposures=t.exposures,
                exposed_viewers=len(ex),
                ctr=metrics.ctr(len(self._clickers & ex), len(ex)).dump() if ex else None,
                cvr=metrics.cvr(len(self._buyers & ex), len(ex)).dump() if ex else None,
                entries=t.entries,
                unique_viewers=len(self._seen_set),
                peak_online=self._peak,
                product_clicks=t.clicks,
                add_to_cart=t.carts,
                orders=t.orders,
                gmv=round(t.gmv, 2),
                coupon_claims=t.claims,
                coupon_uses=t.uses,
                danmaku=t.danmaku,
                questions=t.questions,
            )

    @property
    def online(self) -> int:
        return len(self.presence)


class FunnelStore:
    """Every room's funnel in this process, by (merchant, room_id)."""

    def __init__(self, keep_minutes: int = 26 * 60, max_rooms: int = 1000):
        self.keep, self.max_rooms = keep_minutes, max_rooms
        self._rooms: OrderedDict[tuple[str, str], Funnel] = OrderedDict()
        self._lock = threading.Lock()

    def room(self, merchant: str, room_id: str, create: bool = True) -> Funnel | None:
        key = (merchant, room_id)
        with self._lock:
            f = self._rooms.get(key)
            if f is None and create:
                f = self._rooms[key] = Funnel(self.keep)
                while len(self._rooms) > self.max_rooms:
                    self._rooms.popitem(last=False)
            return f

    def record(self, merchant: str, room_id: str, ev: RoomEvent) -> None:
        self.room(merchant, room_id).record(ev)  # type: ignore[union-attr]

    def series(self, merchant: str, room_id: str, minutes: int = 60, now: float | None = None) -> list[FunnelMinute]:
        f = self.room(merchant, room_id, create=False)
        return f.series(minutes, now) if f else []

    def totals(self, merchant: str, room_id: str) -> FunnelTotals:
        f = self.room(merchant, room_id, create=False)
        return f.totals() if f else FunnelTotals()

    def rooms(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._rooms)


def series(store: FunnelStore, merchant: str, room_id: str, minutes: int = 60) -> list[FunnelMinute]:
    """``funnel.series(store, merchant, room_id, minutes)`` — the console's entry point."""
    return store.series(merchant, room_id, minutes)
