"""The connector core: the event shape and viewer mapping, the hub (dedup, per-room order, lanes that never
stop), health states and outages, the reconnect supervisor, the Bilibili normaliser over blivedm-shaped
commands, the session generator, and a real replay of a short generated session through the whole
pipeline (demo catalog, host room, agent). The 60-minute replay at 20× is the CLI's job (slow-marked here;
the figures are in docs/connectors.md)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from connectors.events import LiveEvent, MalformedEvent, parse_event, viewer_for
from connectors.health import Health
from connectors.hub import ConnectorHub
from connectors.store import ConnectorConfig
from connectors.supervisor import Supervisor

ROOT = Path(__file__).resolve().parent.parent
SESSION = ROOT / "sim" / "sessions" / "demo-60min.jsonl"


def ev(msg_id: str, ts: float, text: str = "包邮吗", kind: str = "comment", user: str = "u1") -> LiveEvent:
    return LiveEvent(kind=kind, platform="test", msg_id=msg_id, user_id=user, text=text, ts=1e9 + ts)  # type: ignore[arg-type]


class FakeAgent:
    def __init__(self, fail_on: str | None = None):
        self.asked: list = []
        self.fail_on = fail_on

    async def answer(self, msg):
        await asyncio.sleep(0)
        if msg.text == self.fail_on:
            raise RuntimeError("boom")
        self.asked.append(msg)
        return SimpleNamespace(answer=f"答：{msg.text}", label="AI生成", path="fast", refused=False)


def cfg(cid: str = "c1", room: str = "r1", kind: str = "webhook") -> ConnectorConfig:
    return ConnectorConfig(connector_id=cid, merchant="demo", room_id=room, kind=kind, platform="test")  # type: ignore[arg-type]


def test_parse_event_names_what_is_wrong():
    ok = parse_event({"kind": "comment", "msg_id": 17, "user_id": 42, "text": "包邮吗", "ts": 1.5e9}, platform="t")
    assert ok.msg_id == "17" and ok.user_id == "42" and not ok.signed_identity
    for bad, why in [
        ([], "JSON object"),
        ({"kind": "shout", "msg_id": "1", "user_id": "u"}, "unknown event kind"),
        ({"kind": "comment", "msg_id": "1", "user_id": "u", "text": " "}, "non-empty 'text'"),
        ({"kind": "gift", "user_id": "u"}, "msg_id"),
        ({"kind": "like", "msg_id": "1", "user_id": "u", "count": -1}, "count"),
        ({"kind": "comment", "msg_id": "1", "user_id": "u", "text": "x" * 5000}, "text"),
    ]:
        with pytest.raises(MalformedEvent) as e:
            parse_event(bad, platform="test")
        assert why in e.value.message, (bad, e.value.message)
    # a sender cannot claim a signed identity or a viewer id
    forged = parse_event(
        {"kind": "comment", "msg_id": "1", "user_id": "u", "text": "hi", "signed_identity": True}, platform="t"
    )
    assert forged.signed_identity is False and forged.viewer_id == ""


def test_viewer_ids_are_per_merchant_and_anonymous_unless_signed():
    a = viewer_for("demo", "douyin", "open-1", verified=False)
    assert a.startswith("anon-douyin-") and "open-1" not in a
    assert a != viewer_for("other", "douyin", "open-1", verified=False)  # per merchant
    assert a == viewer_for("demo", "douyin", "open-1", verified=False)  # stable
    assert viewer_for("demo", "douyin", "open-1", verified=True).startswith("douyin.")


async def test_hub_dedups_keeps_room_order_and_never_stops():
    agent = FakeAgent(fail_on="坏")
    hub = ConnectorHub(agent)
    hub.register(cfg("c1", "r1"))
    hub.register(cfg("c2", "r2"))
    order: dict[str, list[str]] = {"r1": [], "r2": []}
    hub.event_hooks.append(lambda e: order[e.room_id].append(e.msg_id))
    batch = [ev("m3", 3), ev("m1", 1), ev("m2", 2, text="坏")]  # shuffled; one makes the agent fail
    assert hub.submit("c1", batch) == {"accepted": 3, "duplicates": 0, "dropped": 0}
    assert hub.submit("c1", [ev("m1", 1), ev("m4", 4)]) == {"accepted": 1, "duplicates": 1, "dropped": 0}
    hub.submit("c1", [ev("m0", 0.5)])  # arrives late: still handled, counted
    hub.submit("c2", [ev("m1", 1)])  # the same msg_id from another connector is another message
    await hub.drain(timeout=5)
    assert order == {"r1": ["m1", "m2", "m3", "m4", "m0"], "r2": ["m1"]}
    s = hub.stats.as_dict()
    assert s["events"] == 7 and s["duplicates"] == 1 and s["dropped"] == 0 and s["failed"] == 1
    assert s["answered"] == 5  # the failing one is logged and counted; the lane went on
    assert hub.lanes[("demo", "r1")].late == 1
    assert all(not m.verified and m.channel == "connector" for m in agent.asked)
    assert hub.runtime("c1").health.snapshot()["duplicates"] == 1
    await hub.aclose()


async def test_a_full_room_queue_dead_letters_instead_of_losing():
    hub = ConnectorHub(FakeAgent(), queue_max=2)
    hub.register(cfg())
    out = hub.submit("c1", [ev(f"m{i}", i) for i in range(4)])
    assert out == {"accepted": 2, "duplicates": 0, "dropped": 2}
    assert len(hub.dead.list("c1")) == 2 and "queue full" in hub.dead.list("c1")[0]["reason"]
    await hub.drain(timeout=5)
    await hub.aclose()


def test_health_states_and_outages():
    now = [1000.0]
    h = Health("c1", clock=lambda: now[0], quiet_after_s=60, fail_after=3)
    assert h.state() == "connected"  # not live: quiet is fine
    h.live = True
    now[0] += 61
    assert h.state() == "lagging"
    h.on_events(5, newest_ts=now[0])
    assert h.state() == "connected" and h.outages[-1]["to"] == now[0]
    for _ in range(3):
        h.on_failure("bad signature")
    assert h.state() == "failing"
    h.on_events(1, newest_ts=now[0])
    h.on_down("ConnectionResetError", 2.0)
    snap = h.snapshot()
    assert snap["state"] == "failing" and snap["backoff_s"] == 2.0 and snap["last_error"] == "ConnectionResetError"
    h.on_up()
    assert h.state() == "connected" and h.reconnects == 1
    assert [o["state"] for o in h.outages] == ["lagging", "failing", "failing"]
    assert all(o["to"] is not None for o in h.outages)
    now[0] += 5
    h.on_events(1, newest_ts=now[0] - 45)  # the platform delivers 45 s late
    assert h.state() == "lagging"


async def test_supervisor_reconnects_with_growing_backoff():
    h = Health("bili")
    waits: list[float] = []
    attempts = {"n": 0}

    async def fake_sleep(s: float) -> None:
        waits.append(s)

    sup = Supervisor(h, base_s=1, max_s=8, sleep=fake_sleep, rng=random.Random(1))

    async def session() -> None:
        attempts["n"] += 1
        if attempts["n"] <= 5:
            raise ConnectionResetError("peer went away")
        sup.stop()

    await asyncio.wait_for(sup.run(session), 5)
    assert attempts["n"] == 6 and len(waits) == 5
    steps = [1, 2, 4, 8, 8]  # doubled, capped, with 50-100 % jitter
    assert all(s / 2 <= w <= s for w, s in zip(waits, steps, strict=True)), waits
    assert h.reconnects == 5 and h.last_error.startswith("ConnectionResetError") and h.state() == "stopped"


DANMU = {"cmd": "DANMU_MSG", "info": [[0, 1, 25, 16777215, 1700000000123, 0], "小蓝瓶多少钱", [12345, "阿B"], [], []]}
GIFT = {"cmd": "SEND_GIFT", "data": {"uid": 7, "uname": "送礼人", "giftName": "小心心", "num": 2, "price": 5000, "timestamp": 1700000001, "tid": "t-1"}}  # fmt: skip


async def test_bilibili_commands_and_a_dropped_connection():
    from connectors.bilibili import BilibiliSource, normalise

    c = normalise(DANMU, "22824550")[0]
    assert (c.kind, c.text, c.user_id, c.ts, c.signed_identity) == (
        "comment",
        "小蓝瓶多少钱",
        "12345",
        1700000000.123,
        False,
    )
    assert normalise(DANMU, "1")[0].msg_id == c.msg_id  # a re-sent danmaku has the same id
    g = normalise(GIFT, "1")[0]
    assert (g.kind, g.count, g.amount, g.msg_id) == ("gift", 2, 10.0, "t-1")
    assert (
        normalise({"cmd": "INTERACT_WORD", "data": {"uid": 1, "msg_type": 2, "timestamp": 1}}, "1")[0].kind == "follow"
    )
    assert normalise({"cmd": "ONLINE_RANK_COUNT", "data": {}}, "1") == []
    with pytest.raises(MalformedEvent):
        normalise({"cmd": "DANMU_MSG", "info": []}, "1")

    hub = ConnectorHub(FakeAgent())
    rt = hub.register(cfg("bili", "r1", "bilibili"))
    connects = {"n": 0}

    class FakeClient:  # blivedm.BLiveClient's surface: add_handler, start, join, stop_and_close
        def __init__(self, room: int):
            self.handlers = []

        def add_handler(self, h):
            self.handlers.append(h)

        def start(self):
            connects["n"] += 1

        async def join(self):
            if connects["n"] == 1:
                raise ConnectionResetError("websocket closed")  # drops mid-show
            for cmd in (DANMU, GIFT, DANMU, {"cmd": "DANMU_MSG", "info": [[]]}):
                await self.handlers[0].handle(self, cmd)
            sup.stop()

        async def stop_and_close(self):
            pass

    async def no_sleep(s: float) -> None:
        pass

    sup = Supervisor(rt.health, sleep=no_sleep)
    src = BilibiliSource(hub, "bili", "22824550", client_factory=FakeClient)
    await asyncio.wait_for(sup.run(src.session), 5)
    await hub.drain(timeout=5)
    assert connects["n"] == 2 and rt.health.reconnects == 1
    assert rt.health.outages[0]["state"] == "failing" and rt.health.outages[0]["to"] is not None  # seen, recovered
    assert hub.stats.as_dict()["by_kind"] == {"comment": 1, "gift": 1} and hub.stats.duplicates == 1
    assert len(hub.dead.list("bili")) == 1  # the broken command is kept, not raised into blivedm
    await hub.aclose()


def test_the_shipped_session_is_the_generators_output():
    from sim.live_session import generate

    lines = SESSION.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])["session"]
    events = generate(header["minutes"])
    assert header["events"] == len(events) == len(lines) - 1
    assert [json.loads(x) for x in lines[1:200]] == events[:199]
    kinds = {e["kind"] for e in events}
    assert kinds == {"comment", "gift", "like", "follow", "enter", "share", "order", "fan_club"}
    assert events[-1]["t"] > 59 * 60
    assert len(events) - len({e["msg_id"] for e in events}) > 50  # the platform's re-sends are in it


async def test_replay_of_a_short_session_through_the_pipeline(tmp_path, demo_container):
    """A real sample: 3 generated minutes at 30× through dedup, the host room and the agent (fast path)."""
    from connectors.replay import replay
    from sim.live_session import generate, write

    path = write(tmp_path / "s.jsonl", generate(3, seed=5), 3)
    with path.open("a", encoding="utf-8") as f:
        f.write('{"t": 179, "kind": "comment", "msg_id": "bad"}\n{not json\n')  # malformed lines
    out = await replay(demo_container, path, "r1", speed=30)
    assert out["dropped"] == 0 and out["failed"] == 0 and out["malformed"] == 2
    assert out["events"] > 200 and out["duplicates"] >= 1
    assert out["answered"] > 20 and out["answer_latency_ms"]["p95"] is not None
    assert out["triage"]["question"] > 0 and out["triage"].get("spam", 0) >= 0
    assert out["health"]["dead_letters"] == 2


@pytest.mark.slow
def test_the_60_minute_demo_session_at_20x_from_the_cli(tmp_path, demo_root):
    """`liveroom connectors replay` on the shipped session: nothing dropped (latency figures: docs)."""
    import os

    env = dict(os.environ, LIVEROOM_DATA_DIR=str(demo_root))
    cmd = [sys.executable, "-m", "liveroom.cli", "connectors", "replay", str(SESSION), "--room", "demo-room", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["dropped"] == 0 and res["events"] == 7090 and res["answered"] > 1000
    print("replay 60 min @20x:", json.dumps(res["answer_latency_ms"]))
