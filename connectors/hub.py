"""The connector hub: normalised live events from every connector into the room's pipeline.

    adapter ─▶ hub.submit(connector, events) ─▶ dedup by (connector, msg_id) ─▶ per-room lane (ordered)
                 │                                                             │
                 └─ health counters                                            ▼
                                     comment: HostRoom.ingest (triage, clusters, hot questions, the
                                              virtual host's interruptions) → question / coupon request:
                                              Agent.answer (the room socket's agent, channel "connector",
                                              verified only if the platform signed the identity)
                                     gift / like / follow / enter / share / order / fan_club:
                                              HostRoom.ingest_event (funnel, greeter, alerts)
                                     answers ─▶ sinks (the overlay always; a platform reply API, dry-run)

One lane per LiveRoom room: events of a room are handled one at a time in the order they were accepted
(a batch is first sorted by platform timestamp, so a push that arrives shuffled enters in order; an event
older than the last one handled is still handled, and counted as ``late``). Lanes of different rooms run
concurrently. A lane never stops: a failing event is logged and counted, and the lane goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.messages import ViewerMessage
from connectors.deadletter import DeadLetters
from connectors.events import LiveEvent, viewer_for
from connectors.health import Health
from connectors.store import ConnectorConfig
from host.frames import RoomEvent

log = logging.getLogger("liveroom.connectors")

ANSWER_KINDS = ("question", "coupon_request")
# live-event kind → the host funnel's event type (None: counted by the connector only)
FUNNEL_TYPE = {"enter": "enter", "like": "like", "share": "share", "order": "purchase", "comment": "comment"}


class SharedSeen(Protocol):
    """De-duplication shared by the workers (state/dedup.py): True only for the first sighting."""

    def first_many(self, source: str, msg_ids: list[str], ttl_s: float) -> list[bool]: ...


class Sink(Protocol):
    name: str

    async def send(self, cfg: ConnectorConfig, ev: LiveEvent, answer: dict[str, Any]) -> None: ...


class DryRunSink:
    """A platform reply API in dry-run mode: what would have been sent, kept for the console."""

    name = "dry_run"

    def __init__(self, keep: int = 200):
        self.sent: deque[dict[str, Any]] = deque(maxlen=keep)

    async def send(self, cfg: ConnectorConfig, ev: LiveEvent, answer: dict[str, Any]) -> None:
        self.sent.append({"connector_id": cfg.connector_id, "msg_id": ev.msg_id, "answer": answer["answer"]})


@dataclass
class Runtime:
    """A connector while the app runs: its configuration, health and recent message ids."""

    cfg: ConnectorConfig
    health: Health
    seen: OrderedDict[str, float] = field(default_factory=OrderedDict)
    sinks: list[Sink] = field(default_factory=list)


@dataclass
class Lane:
    merchant: str
    room_id: str
    queue: asyncio.Queue
    task: asyncio.Task | None = None
    last_ts: float = 0.0
    handled: int = 0
    late: int = 0


class Stats:
    def __init__(self, keep: int = 20_000):
        self.events = 0
        self.accepted = 0
        self.duplicates = 0
        self.dropped = 0
        self.failed = 0
        self.answered = 0
        self.by_kind: dict[str, int] = {}
        self.triage: dict[str, int] = {}
        self.latency_ms: deque[float] = deque(maxlen=keep)

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latency_ms)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

        return {
            "events": self.events,
            "answered": self.answered,
            "dropped": self.dropped,
            "duplicates": self.duplicates,
            "answer_latency_ms": {"p50": q(0.5), "p95": q(0.95), "max": round(lat[-1], 1) if lat else None},
            "failed": self.failed,
            "by_kind": dict(self.by_kind),
            "triage": dict(self.triage),
        }


class ConnectorHub:
    def __init__(
        self,
        agent: Any,
        host_room: Callable[[str, str], Any] | None = None,
        dead: DeadLetters | None = None,
        *,
        clock: Callable[[], float] = time.time,
        queue_max: int = 20_000,
        dedup_keep: int = 200_000,
        dedup_ttl_s: float = 86_400.0,
        sinks: list[Sink] | None = None,
        shared_seen: SharedSeen | None = None,
    ):
        """``agent``: answers questions (the app's agent); ``host_room(merchant, room_id)``: the room's
        ``HostRoom`` (triage, clusters, funnel), or None to answer every comment directly; ``shared_seen``:
        de-duplication in Redis with several workers (a platform's retry may land on another one), else
        the connector's own recent ids in this process."""
        self.agent = agent
        self.host_room = host_room
        self.dead = dead or DeadLetters(None)
        self.clock = clock
        self.queue_max, self.dedup_keep, self.dedup_ttl_s = queue_max, dedup_keep, dedup_ttl_s
        self.default_sinks = list(sinks or [])
        self.shared_seen = shared_seen
        self.connectors: dict[str, Runtime] = {}
        self.lanes: dict[tuple[str, str], Lane] = {}
        self.stats = Stats()
        self.answer_hooks: list[Callable[[LiveEvent, dict[str, Any]], None]] = []
        self.event_hooks: list[Callable[[LiveEvent], None]] = []

    # --- connectors --------------------------------------------------------------------------------
    def register(self, cfg: ConnectorConfig, health: Health | None = None) -> Runtime:
        rt = self.connectors.get(cfg.connector_id)
        if rt is None:
            rt = Runtime(cfg, health or Health(cfg.connector_id, clock=self.clock), sinks=list(self.default_sinks))
            self.connectors[cfg.connector_id] = rt
        else:
            rt.cfg = cfg
        return rt

    def runtime(self, connector_id: str) -> Runtime | None:
        return self.connectors.get(connector_id)

    def set_live(self, merchant: str, room_id: str, live: bool) -> None:
        """The show is on air in this room: a quiet connector is now a problem (health ``lagging``)."""
        for rt in self.connectors.values():
            if rt.cfg.merchant == merchant and rt.cfg.room_id == room_id:
                rt.health.live = live

    def dead_letter(self, connector_id: str, reason: str, raw: bytes | str, headers: dict | None = None) -> dict:
        """Keep input that could not be read; it is counted on the connector's health."""
        entry = self.dead.add(connector_id, reason, raw, headers)
        rt = self.connectors.get(connector_id)
        if rt is not None:
            rt.health.dead_letters += 1
            rt.health.on_failure(f"malformed: {reason}")
        log.warning("connector %s: dead-lettered %s (%s)", connector_id, entry["dl_id"], reason)
        return entry

    # --- in ------------------------------------------------------------------------------------------
    def submit(self, connector_id: str, events: list[LiveEvent]) -> dict[str, int]:
        """Accept a batch from a connector (synchronous, never blocks): dedup, map viewers, enqueue."""
        rt = self.connectors[connector_id]
        cfg = rt.cfg
        now = self.clock()
        accepted = dup = dropped = 0
        newest = None
        ordered = sorted(events, key=lambda e: e.ts)
        first = self._first_shared(connector_id, [ev.msg_id for ev in ordered])
        for i, ev in enumerate(ordered):
            self.stats.events += 1
            if (not first[i]) if first is not None else self._seen(rt, ev.msg_id, now):
                dup += 1
                continue
            verified = bool(ev.signed_identity)
            ev = ev.model_copy(
                update={
                    "room_id": cfg.room_id,
                    "verified": verified,
                    "viewer_id": viewer_for(cfg.merchant, ev.platform, ev.user_id, verified),
                }
            )
            lane = self._lane(cfg.merchant, cfg.room_id)
            try:
                lane.queue.put_nowait((ev, time.perf_counter(), connector_id))
            except asyncio.QueueFull:
                dropped += 1
                self.dead_letter(connector_id, "room queue full", ev.model_dump_json())
                continue
            accepted += 1
            newest = ev.ts if newest is None else max(newest, ev.ts)
            self.stats.by_kind[ev.kind] = self.stats.by_kind.get(ev.kind, 0) + 1
        self.stats.accepted += accepted
        self.stats.duplicates += dup
        self.stats.dropped += dropped
        rt.health.duplicates += dup
        if accepted or dup:
            rt.health.on_events(accepted + dup, newest)
        return {"accepted": accepted, "duplicates": dup, "dropped": dropped}

    def _first_shared(self, connector_id: str, msg_ids: list[str]) -> list[bool] | None:
        """Which ids no worker has seen (one round trip per batch); None: use this process's ids (no
        shared store, or it failed: a Redis outage must not drop every comment)."""
        if self.shared_seen is None or not msg_ids:
            return None
        try:
            return self.shared_seen.first_many(connector_id, msg_ids, self.dedup_ttl_s)
        except Exception as e:  # noqa: BLE001 - any client error: de-duplicate locally for this batch
            log.warning("shared de-duplication unavailable (%s); this worker's own ids used", e)
            return None

    def _seen(self, rt: Runtime, msg_id: str, now: float) -> bool:
        seen = rt.seen
        if msg_id in seen:
            if now - seen[msg_id] <= self.dedup_ttl_s:
                return True
        seen[msg_id] = now
        seen.move_to_end(msg_id)
        while len(seen) > self.dedup_keep or (seen and now - next(iter(seen.values())) > self.dedup_ttl_s):
            seen.popitem(last=False)
        return False

    def _lane(self, merchant: str, room_id: str) -> Lane:
        key = (merchant, room_id)
        lane = self.lanes.get(key)
        if lane is None:
            lane = Lane(merchant, room_id, asyncio.Queue(self.queue_max))
            self.lanes[key] = lane
        if lane.task is None or lane.task.done():
            if lane.task is not None and lane.task.done() and not lane.task.cancelled():
                log.error("connector lane %s/%s had stopped (%r); restarted", merchant, room_id, lane.task.exception())
            lane.task = asyncio.get_running_loop().create_task(self._run_lane(lane), name=f"connector-lane:{room_id}")
        return lane

    # --- the lane --------------------------------------------------------------------------------------
    async def _run_lane(self, lane: Lane) -> None:
        while True:
            ev, t_in, connector_id = await lane.queue.get()
            try:
                if ev.ts < lane.last_ts:
                    lane.late += 1
                lane.last_ts = max(lane.last_ts, ev.ts)
                await self._handle(lane, ev, t_in, self.connectors.get(connector_id))
            except asyncio.CancelledError:
                raise
            except Exception:  # one event must not stop the room
                self.stats.failed += 1
                log.exception("connector event %s in %s failed", ev.msg_id, lane.room_id)
            finally:
                lane.handled += 1
                lane.queue.task_done()

    async def _handle(self, lane: Lane, ev: LiveEvent, t_in: float, rt: Runtime | None) -> None:
        for h in self.event_hooks:
            h(ev)
        room = self.host_room(lane.merchant, lane.room_id) if self.host_room is not None else None
        if ev.kind != "comment":
            if room is not None:
                room.ingest_event(
                    RoomEvent(
                        type=FUNNEL_TYPE.get(ev.kind, ev.kind),
                        viewer_id=ev.viewer_id,
                        ts=room.clock.now(),
                        sku=ev.sku,
                        amount=ev.amount,
                        event_id=f"{ev.platform}:{ev.msg_id}",
                        extra={"count": ev.count, "gift": ev.gift} if ev.kind in ("gift", "like") else {},
                    )
                )
            return
        context_sku = None
        if room is not None:
            room.ingest_event(RoomEvent(type="comment", viewer_id=ev.viewer_id, ts=room.clock.now()))
            t = room.ingest(ev.viewer_id, ev.text, verified=ev.verified, reply=False)
            self.stats.triage[t.kind] = self.stats.triage.get(t.kind, 0) + 1
            if t.kind not in ANSWER_KINDS:
                return
            context_sku = t.sku
        msg = ViewerMessage(
            merchant=lane.merchant,
            room_id=lane.room_id,
            viewer_id=ev.viewer_id,
            verified=ev.verified,
            text=ev.text,
            context_sku=context_sku,
            channel="connector",
        )
        ans = await self.agent.answer(msg)
        self.stats.answered += 1
        self.stats.latency_ms.append((time.perf_counter() - t_in) * 1000)
        out = {
            "msg_id": ev.msg_id,
            "question": ev.text,
            "nickname": ev.nickname,
            "answer": ans.answer,
            "label": ans.label,
            "path": ans.path,
            "refused": ans.refused,
        }
        for h in self.answer_hooks:
            h(ev, out)
        if rt is not None:
            for s in rt.sinks:
                try:
                    await s.send(rt.cfg, ev, out)
                except Exception:
                    log.exception("connector sink %s failed", s.name)

    # --- lifecycle ----------------------------------------------------------------------------------------
    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every accepted event has been handled."""
        lanes = list(self.lanes.values())
        await asyncio.wait_for(asyncio.gather(*(ln.queue.join() for ln in lanes)), timeout)

    def pending(self) -> int:
        return sum(ln.queue.qsize() for ln in self.lanes.values())

    async def aclose(self) -> None:
        for ln in self.lanes.values():
            if ln.task is not None:
                ln.task.cancel()
        for ln in self.lanes.values():
            if ln.task is not None:
                try:
                    await ln.task
                except (asyncio.CancelledError, Exception):
                    pass
            ln.task = None

    def health(self, merchant: str | None = None) -> list[dict[str, Any]]:
        out = []
        for rt in self.connectors.values():
            if merchant is not None and rt.cfg.merchant != merchant:
                continue
            out.append(rt.cfg.public() | {"health": rt.health.snapshot()})
        return out
