"""Soak: a signed-webhook source feeding a real server for hours of show time, with injected disconnects,
bursts and malformed events; sampling RSS, open fds, asyncio tasks and threads.

    python -m benchmarks.connectors_soak [--hours 8] [--speed 30] [--json]

One process, one event loop: the app (server.create_app, uvicorn on a loopback port) and the sender (the
merchant's middleware, httpx). The sender plays ``sim.live_session.generate`` (the demo catalog, ~2 events
per show second) on a clock running ``speed`` × real time, one signed POST per show second, and:

- every ~50 show minutes the network drops for 3-12 show minutes: the sender's connection is closed, it
  buffers, then reconnects (a new connection) and sends the backlog in one burst of batches, re-sending
  the batch it never saw acknowledged (the server drops those by msg_id);
- every ~10 show minutes a malformed body (dead-lettered, 400) and now and then a forged one (401).

Connector health runs on the show clock (quiet after 60 show seconds while live). Meanwhile the soak
reads ``GET /api/merchants/demo/connectors`` — what the dashboard shows — every show minute, and checks
that each disconnect was shown (``lagging``) and recovered (``connected``), and that the room raised a
``connector_lagging`` alert. Reports JSON: events, answers and latency, every outage, resources.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
M, ROOM, CID = "demo", "soak-room", "soak-webhook"


def _prepare(data_dir: Path) -> None:
    from knowledge.embedder import UseEmbedder
    from knowledge.store import KnowledgeBase

    kb = KnowledgeBase(data_dir / "kb", UseEmbedder(threads=1))
    if kb.active_version(M) is None:
        demo = ROOT / "knowledge" / "demo"
        files = sorted(p for p in demo.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
        kb.import_files(M, files)


def _port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _batches(events: list[dict]) -> list[tuple[int, list[dict]]]:
    """Events grouped per show second (``t`` kept: the platform timestamp is set when the show starts)."""
    out: dict[int, list[dict]] = {}
    for e in events:
        out.setdefault(int(e["t"]), []).append(dict(e))
    return sorted(out.items())


def _stamp(evs: list[dict], t0: float) -> list[dict]:
    """The platform's timestamps, in show time: the moment each event happened on the platform."""
    return [{**{k: v for k, v in e.items() if k != "t"}, "ts": round(t0 + e["t"], 3)} for e in evs]


async def soak(hours: float, speed: float, seed: int = 3) -> dict[str, Any]:
    import httpx
    import uvicorn

    from connectors.store import ConnectorConfig, ConnectorStore
    from connectors.webhook import sign
    from core.clock import ScaledClock
    from core.settings import Settings
    from host.resources import ResourceSampler
    from liveroom.container import Container
    from server import create_app
    from sim.live_session import generate

    settings = Settings()
    c = Container(settings)
    c.rooms.ensure(M, ROOM, "connector soak", "soak")
    store = ConnectorStore(settings.data_dir / "connectors")
    try:
        cfg = store.get(CID)
        secret = cfg.secret
    except Exception:
        _, secret = store.create(
            ConnectorConfig(connector_id=CID, merchant=M, room_id=ROOM, kind="webhook", platform="soak")
        )
    from host.room import HostHub

    clock = ScaledClock(speed)
    app = create_app(c, start_llm=False)
    app.state.host_hub = HostHub.from_container(c, clock=clock)  # rooms (and their alerts) on the show clock
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    srv_task = asyncio.create_task(server.serve(), name="soak-server")
    while not server.started:
        await asyncio.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    from console.service import get_console

    _, api_token = get_console(app).accounts.create_token(M, "soak", "operator", "soak")
    auth = {"Authorization": f"Bearer {api_token}"}

    rng = random.Random(seed)
    events = generate(int(hours * 60), seed=seed)
    batches = _batches(events)
    # the service exists after the first request; put its health on the show clock
    async with httpx.AsyncClient(base_url=base, timeout=30) as probe:
        assert (await probe.get(f"/api/merchants/{M}/connectors", headers=auth)).status_code == 200
        svc = app.state.connectors
        rt = svc.hub.runtime(CID)
        rt.health.clock = clock.now
        rt.health.started_at = clock.now()
        rt.health.quiet_after_s = 60.0
        rt.health.live = True
        room = svc._host_room(M, ROOM)
        alerts: list[Any] = []
        room.bus.hook(
            lambda topic, a: alerts.append(a) if topic == "alert" and a.kind.startswith("connector_") else None
        )

        # disconnects: every ~50 show minutes, 3-12 show minutes long
        partitions: list[tuple[float, float]] = []
        t = rng.uniform(20, 40) * 60
        while t < hours * 3600 - 15 * 60:
            length = rng.uniform(3, 12) * 60
            partitions.append((t, t + length))
            t += length + rng.uniform(40, 60) * 60
        malformed_at = {int(x) for x in range(300, int(hours * 3600), 600)}
        forged_at = {int(x) for x in range(450, int(hours * 3600), 1800)}

        sampler = ResourceSampler(clock, every_s=600)
        dash: list[dict[str, Any]] = []  # what the dashboard API showed, every show minute

        async def watch() -> None:
            while True:
                r = await probe.get(f"/api/merchants/{M}/connectors", headers=auth)
                h = next(x for x in r.json()["connectors"] if x["connector_id"] == CID)["health"]
                dash.append({"show_s": round(clock.now() - t0, 1), "state": h["state"], "age": h["last_event_age_s"]})
                await clock.sleep(60)

        sent = {"requests": 0, "events": 0, "resent_events": 0, "malformed": 0, "forged": 0, "failed_posts": 0}
        client = httpx.AsyncClient(base_url=base, timeout=30)

        async def post(body: bytes, sig: str | None = None) -> int:
            ts = str(int(time.time()))
            h = {"X-LiveRoom-Timestamp": ts, "X-LiveRoom-Signature": sig or sign(secret, ts, body)}
            sent["requests"] += 1
            try:
                return (await client.post(f"/connectors/webhook/{CID}", content=body, headers=h)).status_code
            except httpx.HTTPError:
                sent["failed_posts"] += 1
                return 0

        clock.restart()
        t0 = clock.now()
        watcher = asyncio.create_task(watch())
        sampler_task = asyncio.create_task(sampler.run())
        backlog: list[list[dict]] = []
        last_batch: list[dict] = []
        down = False
        wall0 = time.perf_counter()
        for sec, raw in batches:
            evs = _stamp(raw, t0)
            show = clock.now() - t0
            if sec > show:
                await clock.sleep(sec - show)
            in_partition = any(a <= sec < b for a, b in partitions)
            if in_partition and not down:
                down = True
                await client.aclose()  # the connection drops
            if in_partition:
                backlog.append(evs)
                continue
            if down:  # back: a new connection, the unacknowledged batch again, then the backlog in a burst
                down = False
                client = httpx.AsyncClient(base_url=base, timeout=30)
                sent["resent_events"] += len(last_batch)
                if last_batch:
                    await post(json.dumps({"events": last_batch}, ensure_ascii=False).encode())
                for i in range(0, len(backlog), 20):
                    chunk = [e for b in backlog[i : i + 20] for e in b]
                    if chunk:
                        await post(json.dumps({"events": chunk}, ensure_ascii=False).encode())
                        sent["events"] += len(chunk)
                backlog = []
            if sec in malformed_at:
                sent["malformed"] += 1
                await post(rng.choice([b"{broken", b'{"events": [{"kind": "comment", "user_id": "u"}]}']))
            if sec in forged_at:
                sent["forged"] += 1
                await post(b'{"events": []}', sig="sha256=" + "0" * 64)
            body = json.dumps({"events": evs}, ensure_ascii=False).encode()
            await post(body)
            sent["events"] += len(evs)
            last_batch = evs
        await svc.hub.drain(timeout=600)
        rt.health.live = False  # the show is over: the source going quiet now is expected
        rt.health.state()
        await asyncio.sleep(3)  # the watchdog's last pass
        watcher.cancel()
        sampler_task.cancel()
        sampler.sample()
        await client.aclose()
        wall = time.perf_counter() - wall0
        health = rt.health.snapshot()
        outages = [o for o in rt.health.outages]

    def shown(a: float, b: float) -> bool:
        return any(a <= d["show_s"] <= b + 60 and d["state"] == "lagging" for d in dash)

    def recovered_after(a: float, b: float) -> bool:  # an outage over the partition that ended after it
        return any(o["from"] - t0 <= b + 120 and (o["to"] or 1e18) - t0 >= a and o["to"] is not None for o in outages)

    outside = [d for d in dash if not any(a - 60 <= d["show_s"] <= b + 180 for a, b in partitions)]
    recovered = all(o["to"] is not None for o in outages)
    stats = svc.hub.stats.as_dict()
    out = {
        "show_hours": hours,
        "speed": speed,
        "wall_s": round(wall, 1),
        "sent": sent,
        "hub": {k: stats[k] for k in ("events", "answered", "dropped", "duplicates", "failed", "answer_latency_ms")},
        "health": {k: health[k] for k in ("state", "events", "duplicates", "dead_letters", "rejected", "outages")},
        "disconnects": len(partitions),
        "disconnects_shown_on_dashboard": sum(shown(a, b) for a, b in partitions),
        "disconnects_recovered": sum(recovered_after(a, b) for a, b in partitions),
        "outages": len(outages),
        "all_recovered": recovered and health["state"] == "connected",
        "outage_minutes": [round((o["to"] - o["from"]) / 60, 1) if o["to"] else None for o in outages],
        "injected_minutes": [round((b - a) / 60, 1) for a, b in partitions],
        "dashboard_samples": len(dash),
        "dashboard_connected_outside_disconnects": f"{sum(d['state'] == 'connected' for d in outside)}/{len(outside)}",
        "connector_alerts": len(alerts),
        "resources": sampler.summary(skip=2),
    }
    server.should_exit = True
    await srv_task
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--speed", type=float, default=30.0)
    ap.add_argument("--data-dir", default=None, help="reuse a data dir (default: a fresh temp dir)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    data_dir = Path(a.data_dir or tempfile.mkdtemp(prefix="liveroom-csoak-"))
    os.environ["LIVEROOM_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("LIVEROOM_EMBED_THREADS", "1")
    os.environ.setdefault("LIVEROOM_LLM_AUTOSTART", "false")
    _prepare(data_dir)
    res = asyncio.run(soak(a.hours, a.speed))
    if a.json:
        sys.stdout.write(json.dumps(res, ensure_ascii=False) + "\n")
    else:
        print(json.dumps(res, ensure_ascii=False, indent=1))
    ok = (
        res["all_recovered"]
        and res["hub"]["dropped"] == 0
        and res["disconnects_shown_on_dashboard"] == res["disconnects"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
