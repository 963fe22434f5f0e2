"""Replay a recorded session (JSONL) into a room, at real or accelerated speed.

File format, one JSON object a line (``sim/live_session.py`` writes them; docs/connectors.md):

    {"session": {"title": "...", "merchant": "demo", "minutes": 60, "events": 4210}}     optional header
    {"t": 12.4, "kind": "comment", "msg_id": "c-1", "user_id": "u-17", "nickname": "...", "text": "..."}
    {"t": 12.9, "kind": "gift", "msg_id": "g-1", "user_id": "u-3", "gift": "rose", "count": 1}

``t`` is seconds from the session start; the event's ``ts`` becomes the replay's start + ``t`` (show
time). Lines that cannot be read are dead-lettered with their line number and the replay goes on.
``replay()`` is what ``liveroom connectors replay`` runs: a container's agent on the fast path, the
room's host pipeline on a clock running ``speed`` × real time, every event through the hub.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.events import LiveEvent, MalformedEvent, parse_event
from connectors.hub import ConnectorHub


def read_session(path: Path) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """(header, [(line number, raw line)]) — parsing is per line, at play time."""
    header: dict[str, Any] = {}
    lines = []
    with Path(path).open(encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            raw = raw.strip()
            if not raw:
                continue
            if n == 1 and raw.startswith('{"session"'):
                header = json.loads(raw)["session"]
                continue
            lines.append((n, raw))
    return header, lines


def parse_line(raw: str, start: float, platform: str = "replay") -> tuple[float, LiveEvent]:
    try:
        d = json.loads(raw)
    except json.JSONDecodeError as e:
        raise MalformedEvent(f"not JSON: {e.msg} at {e.pos}") from None
    if not isinstance(d, dict):
        raise MalformedEvent("a line is a JSON object")
    t = d.pop("t", None)
    if not isinstance(t, (int, float)) or t < 0:
        raise MalformedEvent("'t' (seconds from the session start) is missing or negative")
    d.setdefault("ts", start + float(t))
    return float(t), parse_event(d, platform=platform)


def batches(
    lines: list[tuple[int, str]], start: float
) -> Iterator[tuple[float, list[LiveEvent], list[tuple[int, str, str]]]]:
    """Events grouped by their ``t`` (same instant = one batch), with the lines that failed."""
    cur_t: float | None = None
    evs: list[LiveEvent] = []
    bad: list[tuple[int, str, str]] = []
    for n, raw in lines:
        try:
            t, ev = parse_line(raw, start)
        except MalformedEvent as e:
            bad.append((n, raw, e.message))
            continue
        if cur_t is not None and t != cur_t:
            yield cur_t, evs, bad
            evs, bad = [], []
        cur_t = t
        evs.append(ev)
    if evs or bad:
        yield cur_t or 0.0, evs, bad


async def play(
    hub: ConnectorHub, connector_id: str, lines: list[tuple[int, str]], *, speed: float, start: float
) -> dict[str, int]:
    """Submit the session's events on schedule (``t`` / ``speed`` after now); returns counts."""
    t0 = time.monotonic()
    sent = bad_lines = 0
    for t, evs, bad in batches(lines, start):
        delay = t / speed - (time.monotonic() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
        for n, raw, reason in bad:
            hub.dead_letter(connector_id, f"line {n}: {reason}", raw)
            bad_lines += 1
        if evs:
            hub.submit(connector_id, evs)
            sent += len(evs)
    return {"sent": sent, "malformed": bad_lines}


async def replay(
    container: Any, path: Path, room_id: str, *, speed: float = 20.0, merchant: str | None = None
) -> dict[str, Any]:
    """Play ``path`` into ``room_id`` through the full pipeline; the figures ``--json`` prints."""
    from connectors.store import ConnectorConfig
    from core.clock import ScaledClock
    from host.room import HostHub

    c = container
    header, lines = read_session(path)
    merchant = merchant or header.get("merchant") or c.settings.default_merchant
    clock = ScaledClock(speed)
    host = HostHub.from_container(c, clock=clock)
    hub = ConnectorHub(c.agent, lambda m, r: host.room(m, r), clock=clock.now)
    cfg = ConnectorConfig(connector_id=f"replay-{room_id}", merchant=merchant, room_id=room_id, kind="replay")
    rt = hub.register(cfg)
    # Warm-up before the show clock starts: the KB, lexicon and intent model, the room, the encoder.
    await asyncio.to_thread(c.agent.prepare_sync, merchant)
    room = host.room(merchant, room_id)
    await asyncio.to_thread(c.embedder.encode, ["预热"])
    await c.agent.answer(_warm(merchant, room_id))
    clock.restart()
    rt.health.started_at = clock.now()
    rt.health.live = True
    wall0 = time.perf_counter()
    try:
        counts = await play(hub, cfg.connector_id, lines, speed=speed, start=clock.now())
        await hub.drain(timeout=600)
    finally:
        await hub.aclose()
        await host.aclose()
    out = hub.stats.as_dict()
    out.update(
        {
            "malformed": counts["malformed"],
            "session_minutes": header.get("minutes"),
            "speed": speed,
            "wall_s": round(time.perf_counter() - wall0, 1),
            "late": sum(ln.late for ln in hub.lanes.values()),
            "health": rt.health.snapshot() | {"recent_outages": None},
            "room": {"replies": room.stats["replies"], "suggestions": len(room.suggestions.recent(1000))},
        }
    )
    return out


def _warm(merchant: str, room_id: str) -> Any:
    from agent.messages import ViewerMessage

    return ViewerMessage(
        merchant=merchant, room_id=room_id, viewer_id="anon-warmup", text="包邮吗", channel="connector"
    )
