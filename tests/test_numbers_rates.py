"""Numbers a merchant can trust (issue 19): known click and conversion rates injected through the
event API come back from the A/B report (HTTP and ``liveroom ab report --json``) and from the room
funnel within their 95% intervals; an ``enter`` never counts as a click; future timestamps are refused.

Two arms, 10% vs 16% CTR and 2% vs 3% CVR. Arm A's viewers are in room ``ab-a`` and arm B's in
``ab-b``, so each room's funnel measures one arm. Every viewer enters the room (the old bug counted
entries as clicks: 25.3% / 30.9% for injected 10% / 16%).
"""

from __future__ import annotations

import json
import random
import shutil
import time

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from copywriting.ab import pick
from host.api import router
from server import create_app
from tests.support.console import grant

PER_ARM = 1500
RATES = {"A": (0.10, 0.02), "B": (0.16, 0.03)}
SPEC = {
    "experiment_id": "rates",
    "merchant": "demo",
    "variants": [{"name": "A"}, {"name": "B"}],
    "min_exposures": 100,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_root, use_embedder):
    from core.settings import Settings
    from liveroom.container import Container
    from tests.support.host import fast_embedder

    tmp = tmp_path_factory.mktemp("rates")
    shutil.copytree(demo_root / "kb", tmp / "kb")
    c = Container(Settings(data_dir=tmp, llm_autostart=False))
    c.__dict__["embedder"] = fast_embedder()
    app = create_app(c, start_llm=False)
    if not any(getattr(r, "path", "") == "/ws/rooms/{room_id}/host" for r in app.routes):
        app.include_router(router)
    with TestClient(app) as client:
        grant(client)
        yield client, tmp


def _inject(client) -> dict[str, tuple[int, int, int]]:
    """Post the events; returns per arm (exposed, clicked, converted) as drawn."""
    from copywriting.ab import ExperimentSpec

    spec = ExperimentSpec.model_validate(SPEC)
    rng = random.Random(19)
    now = time.time()
    events: dict[str, list[dict]] = {"A": [], "B": []}
    drawn = {"A": [0, 0, 0], "B": [0, 0, 0]}
    i = 0
    while min(d[0] for d in drawn.values()) < PER_ARM:
        vid = f"v{i}"
        i += 1
        arm = pick(spec, vid)
        if drawn[arm][0] >= PER_ARM:
            continue
        p_click, p_buy = RATES[arm]
        ev = events[arm]
        ev.append(
            {"type": "exposure", "viewer_id": vid, "event_id": f"x{vid}", "ts": now - 900, "campaign_id": spec.tag}
        )
        ev.append({"type": "enter", "viewer_id": vid, "event_id": f"in{vid}", "ts": now - 800})
        drawn[arm][0] += 1
        if rng.random() < p_click:
            drawn[arm][1] += 1
            ev.append(
                {"type": "product_click", "viewer_id": vid, "event_id": f"c{vid}", "sku": "SK-001", "ts": now - 700}
            )
            if rng.random() < p_buy / p_click:  # buyers click first
                drawn[arm][2] += 1
                ev.append(
                    {
                        "type": "purchase",
                        "viewer_id": vid,
                        "event_id": f"o{vid}",
                        "sku": "SK-001",
                        "amount": 129,
                        "ts": now - 600,
                    }
                )
    for arm, evs in events.items():
        evs.sort(key=lambda e: e["ts"])
        for k in range(0, len(evs), 1000):
            r = client.post(
                f"/api/rooms/ab-{arm.lower()}/room-events", json={"merchant": "demo", "events": evs[k : k + 1000]}
            )
            assert r.status_code == 200, r.text
            assert r.json()["audience"]["rejected"] == 0, r.json()
    return {a: tuple(d) for a, d in drawn.items()}  # type: ignore[misc]


@pytest.fixture(scope="module")
def injected(world):
    client, _ = world
    assert client.post("/api/experiments", json=SPEC).status_code == 201
    return _inject(client)


def _inside(rate: dict, true: float) -> bool:
    return rate["ci"][0] <= true <= rate["ci"][1]


def test_ab_report_gives_back_the_injected_rates(world, injected):
    client, _ = world
    rep = client.get("/api/experiments/rates/report?merchant=demo").json()
    by = {v["name"]: v for v in rep["variants"]}
    for arm, (p_click, p_buy) in RATES.items():
        v = by[arm]
        assert v["exposed"] == PER_ARM
        assert v["ctr"]["count"] == injected[arm][1] and v["cvr"]["count"] == injected[arm][2]
        assert _inside(v["ctr"], p_click), (arm, v["ctr"])
        assert _inside(v["cvr"], p_buy), (arm, v["cvr"])
    assert by["B"]["ctr"]["rate"] > by["A"]["ctr"]["rate"]


def test_room_funnel_gives_back_the_injected_rates(world, injected):
    client, _ = world
    for arm, (p_click, p_buy) in RATES.items():
        tot = client.get(f"/api/rooms/ab-{arm.lower()}/funnel?merchant=demo").json()["totals"]
        assert tot["exposed_viewers"] == PER_ARM and tot["entries"] == PER_ARM
        assert tot["ctr"]["count"] == injected[arm][1] and tot["cvr"]["count"] == injected[arm][2]
        assert _inside(tot["ctr"], p_click), (arm, tot["ctr"])
        assert _inside(tot["cvr"], p_buy), (arm, tot["cvr"])


def test_ab_report_from_the_shell(world, injected, monkeypatch):
    from liveroom.cli import app

    _, tmp = world
    monkeypatch.setenv("LIVEROOM_DATA_DIR", str(tmp))
    monkeypatch.setenv("LIVEROOM_LLM_AUTOSTART", "false")
    r = CliRunner().invoke(app, ["ab", "report", "rates", "--merchant", "demo", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    for v in rep["variants"]:
        p_click, p_buy = RATES[v["name"]]
        assert _inside(v["ctr"], p_click) and _inside(v["cvr"], p_buy)


def test_future_timestamps_are_refused(world):
    client, _ = world
    before = client.get("/api/rooms/ab-future/funnel?merchant=demo").json()["totals"]["entries"]
    future = time.time() + 1800
    ev = {"type": "enter", "viewer_id": "fut", "event_id": "fut1", "ts": future}
    r = client.post("/api/rooms/ab-future/room-events", json={"merchant": "demo", "events": [ev]})
    assert r.status_code == 400 and "in the future" in r.json()["error"]["message"]
    assert client.get("/api/rooms/ab-future/funnel?merchant=demo").json()["totals"]["entries"] == before
    r = client.post("/api/events", json={"merchant": "demo", "events": [ev]})
    body = r.json()
    assert body["accepted"] == 0 and body["results"][0]["error"]["code"] == "bad_timestamp", body
    assert "in the future" in body["results"][0]["error"]["message"]
    # a small clock skew is fine
    ok = ev | {"ts": time.time() + 60, "event_id": "fut2"}
    assert client.post("/api/rooms/ab-future/room-events", json={"merchant": "demo", "events": [ok]}).status_code == 200
