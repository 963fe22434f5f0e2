"""Live rooms and the merchant each belongs to.

A room is created in the console (or with ``liveroom rooms create``); every public channel takes the
merchant from the room, never from the client. Room ids are globally unique (the public room URL has no
merchant). A closed room answers nobody (404 on every public channel) but keeps its history.

The table is ``con_rooms`` (it predates this module; the console's own tables live in console/db.py).
The app's migrations create it (audience/migrations, revision 0002, which also adds the columns older
databases lack: status, rundown, allowed origins, closed_at).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Column, Engine, Float, Index, MetaData, String, Table, Text, select, update

from audience.db import ensure_schema, insert_for, read_tx, write_tx
from core.errors import BadRequest, Conflict, NotFound
from core.ids import MERCHANT_RE, ROOM_RE

metadata = MetaData()

rooms = Table(
    "con_rooms",
    metadata,
    Column("room_id", String(64), primary_key=True),  # globally unique: the public room URL has no merchant
    Column("merchant", String(64), nullable=False),
    Column("title", String(128), nullable=False),
    Column("created_by", String(96), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("status", String(16), nullable=False, server_default="open"),  # open | closed
    Column("rundown", String(256), nullable=False, server_default=""),  # path of the show's rundown (YAML)
    Column("allowed_origins", Text, nullable=False, server_default="[]"),  # JSON list; [] = any origin
    Column("closed_at", Float),
    Index("ix_con_rooms_merchant", "merchant"),
)

RoomStatus = Literal["open", "closed"]
CACHE_TTL_S = 5.0  # a room closed in another worker stops answering within this


class RoomNotFound(NotFound):
    code = "room_not_found"


class RoomError(BadRequest):
    code = "bad_room"


@dataclass(frozen=True)
class Room:
    room_id: str
    merchant: str
    title: str
    status: RoomStatus = "open"
    rundown: str = ""
    allowed_origins: tuple[str, ...] = ()
    created_by: str = ""
    created_at: float = 0.0
    closed_at: float | None = None

    @property
    def open(self) -> bool:
        return self.status == "open"

    def origin_allowed(self, origin: str | None) -> bool:
        """No list = any origin; else a browser's ``Origin`` must be in it (non-browser clients send none)."""
        if not self.allowed_origins or not origin:
            return True
        return origin.rstrip("/").lower() in self.allowed_origins

    def to_dict(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "merchant": self.merchant,
            "title": self.title,
            "status": self.status,
            "rundown": self.rundown,
            "allowed_origins": list(self.allowed_origins),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "closed_at": self.closed_at,
        }


def _origins(raw: list[str] | tuple[str, ...] | str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [x for x in (raw.split(",") if isinstance(raw, str) else raw)]
    out = []
    for o in items:
        o = str(o).strip().rstrip("/").lower()
        if not o:
            continue
        if not (o.startswith("http://") or o.startswith("https://")) or len(o) > 200:
            raise RoomError(f"allowed origin must look like https://shop.example.com, not {o!r}")
        out.append(o)
    if len(out) > 20:
        raise RoomError("at most 20 allowed origins")
    return tuple(dict.fromkeys(out))


@dataclass
class RoomRegistry:
    engine: Engine
    _cache: dict[str, tuple[float, Room | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        ensure_schema(self.engine)

    # --- reads -------------------------------------------------------------------------------
    def get(self, room_id: str) -> Room | None:
        """The room (open or closed), cached for a few seconds; None if nobody created it."""
        if not isinstance(room_id, str) or not ROOM_RE.match(room_id):
            return None
        now = time.monotonic()
        hit = self._cache.get(room_id)
        if hit and now - hit[0] < CACHE_TTL_S:
            return hit[1]
        with read_tx(self.engine) as conn:
            r = conn.execute(select(rooms).where(rooms.c.room_id == room_id)).first()
        room = _room(r) if r is not None else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[room_id] = (now, room)
        return room

    def merchant_of(self, room_id: str) -> str | None:
        room = self.get(room_id)
        return room.merchant if room else None

    def open_room(self, room_id: str) -> Room:
        """The open room, else ``RoomNotFound`` (unknown and closed rooms look the same to the public)."""
        room = self.get(room_id)
        if room is None or not room.open:
            raise RoomNotFound("直播间不存在或已关闭")
        return room

    def list(self, merchant: str, *, include_closed: bool = True) -> list[Room]:
        q = select(rooms).where(rooms.c.merchant == merchant)
        if not include_closed:
            q = q.where(rooms.c.status == "open")
        with read_tx(self.engine) as conn:
            return [_room(r) for r in conn.execute(q.order_by(rooms.c.created_at.desc())).all()]

    def of(self, merchant: str, room_id: str) -> Room | None:
        room = self.get(room_id)
        return room if room is not None and room.merchant == merchant else None

    # --- writes ------------------------------------------------------------------------------
    def create(
        self,
        merchant: str,
        room_id: str,
        title: str = "",
        actor: str = "",
        *,
        rundown: str = "",
        allowed_origins: list[str] | tuple[str, ...] | str | None = None,
    ) -> Room:
        if not MERCHANT_RE.match(merchant or ""):
            raise RoomError(f"invalid merchant id {merchant!r}")
        if not ROOM_RE.match(room_id or ""):
            raise RoomError("直播间ID只能包含字母、数字、- 和 _（1-64位）")
        title = (title or "").strip()[:128] or room_id
        origins = _origins(allowed_origins)
        with write_tx(self.engine) as conn:
            # SQLite's write lock makes the check and the insert one step; on PostgreSQL a concurrent
            # create of the same id can slip between them, so the insert itself must not overwrite it
            won = conn.execute(
                insert_for(conn)(rooms)
                .values(
                    room_id=room_id,
                    merchant=merchant,
                    title=title,
                    created_by=(actor or "")[:96],
                    created_at=time.time(),
                    status="open",
                    rundown=(rundown or "")[:256],
                    allowed_origins=json.dumps(list(origins)),
                )
                .on_conflict_do_nothing()
                .returning(rooms.c.room_id)  # (rowcount is not reported for an INSERT on every driver)
            ).first()
            if won is None:
                raise Conflict(f"直播间ID {room_id} 已被占用", code="room_taken")
        self._forget(room_id)
        room = self.get(room_id)
        assert room is not None
        return room

    def ensure(self, merchant: str, room_id: str, title: str = "", actor: str = "", **kw: Any) -> Room:
        """The room, created (open) if missing; a room of another merchant is a ``Conflict``."""
        room = self.get(room_id)
        if room is None:
            try:
                return self.create(merchant, room_id, title, actor, **kw)
            except Conflict:
                self._forget(room_id)
                room = self.get(room_id)
                assert room is not None
        if room.merchant != merchant:
            raise Conflict(f"直播间ID {room_id} 已被占用", code="room_taken")
        return room

    def set_status(self, merchant: str, room_id: str, status: RoomStatus) -> Room:
        if status not in ("open", "closed"):
            raise RoomError(f"status must be open or closed, not {status!r}")
        with write_tx(self.engine) as conn:
            n = conn.execute(
                update(rooms)
                .where(rooms.c.merchant == merchant, rooms.c.room_id == room_id)
                .values(status=status, closed_at=time.time() if status == "closed" else None)
            ).rowcount
        self._forget(room_id)
        if not n:
            raise RoomNotFound("直播间不存在")
        room = self.get(room_id)
        assert room is not None
        return room

    def close(self, merchant: str, room_id: str) -> Room:
        return self.set_status(merchant, room_id, "closed")

    def update(
        self,
        merchant: str,
        room_id: str,
        *,
        title: str | None = None,
        rundown: str | None = None,
        allowed_origins: list[str] | tuple[str, ...] | str | None = None,
    ) -> Room:
        vals: dict[str, Any] = {}
        if title is not None:
            vals["title"] = title.strip()[:128] or room_id
        if rundown is not None:
            vals["rundown"] = rundown[:256]
        if allowed_origins is not None:
            vals["allowed_origins"] = json.dumps(list(_origins(allowed_origins)))
        if vals:
            with write_tx(self.engine) as conn:
                n = conn.execute(
                    update(rooms).where(rooms.c.merchant == merchant, rooms.c.room_id == room_id).values(**vals)
                ).rowcount
            if not n:
                raise RoomNotFound("直播间不存在")
        self._forget(room_id)
        room = self.of(merchant, room_id)
        if room is None:
            raise RoomNotFound("直播间不存在")
        return room

    def _forget(self, room_id: str) -> None:
        with self._lock:
            self._cache.pop(room_id, None)


def _room(r: Any) -> Room:
    try:
        origins = tuple(json.loads(r.allowed_origins or "[]"))
    except ValueError:
        origins = ()
    return Room(
        room_id=r.room_id,
        merchant=r.merchant,
        title=r.title,
        status="closed" if r.status == "closed" else "open",
        rundown=r.rundown or "",
        allowed_origins=origins,
        created_by=r.created_by,
        created_at=r.created_at,
        closed_at=r.closed_at,
    )
