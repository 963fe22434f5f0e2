"""HTTP API and CLI of copywriting on the demo KB and a seeded audience (templates; no LLM)."""

from __future__ import annotations

import json
import time

import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from copywriting.api import router
from liveroom.commands.copy import ab_app, campaign_app, copy_command
from tests.support.audience import backends, store_url


@pytest.fixture(scope="module", params=backends())
def seeded(request, tmp_path_factory):
    """The audience (and so the copy and A/B tables, on the same engine) on SQLite or PostgreSQL."""
    from audience.service import AudienceService
    from sim.audience import seed_demo

    d = tmp_path_factory.mktemp("copy-api")
    with store_url(request.param, d, "liveroom.db") as url:
        svc = AudienceService(url, synchronous="OFF")
        seed_demo(svc, viewers=150, seed=5)
        yield d, svc
        svc.close()


class DemoKB:
    """The demo catalog as the KB's snapshot interface (copy needs products and facts, not the index)."""

    def __init__(self):
        from types import SimpleNamespace

        from evals.copy import demo_catalog

        cat = demo_catalog()
        self.snap = SimpleNamespace(
            merchant="demo",
            version="v0001",
            catalog=cat.catalog,
            product=cat.product,
            index=SimpleNamespace(facts=cat.facts()),
        )

    def snapshot(self, merchant):
        from knowledge.store import UnknownMerchant

        if merchant != "demo":
            raise UnknownMerchant(f"merchant {merchant!r} has no knowledge base; import one first")
        return self.snap


@pytest.fixture()
def container(seeded):
    from core.settings import Settings
    from liveroom.container import Container

    d, svc = seeded
    c = Container(Settings(data_dir=d, llm_autostart=False))
    c.__dict__["kb"] = DemoKB()
    c.__dict__["audience"] = svc
    return c


@pytest.fixture()
def client(container):
    app = FastAPI()
    app.include_router(router)
    app.state.container = container
    with TestClient(app) as c:
        yield c


def test_post_copy_for_a_viewer_and_a_segment(client, seeded):
    _, svc = seeded
    r = client.post(
        "/api/copy",
        json={
            "merchant": "demo",
            "sku": "SK-001",
            "viewer_id": "dv00003",
            "phase": "pre",
            "channel": "push",
            "use_llm": False,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"text", "angle", "citations", "compliance"} <= set(body)
    assert body["compliance"] == {"ok": True, "violations": []} and body["citations"]
    r = client.post(
        "/api/copy",
        json={
            "sku": "SK-001",
            "segment": {"price_sensitivity": "high"},
            "channel": "sms",
            "phase": "post",
            "recall": "missed_show",
            "use_llm": False,
        },
    )
    assert r.status_code == 200 and r.json()["angle"] == "price" and len(r.json()["text"]) <= 70
    assert client.post("/api/copy", json={"sku": "NOPE", "use_llm": False}).status_code == 404
    assert client.post("/api/copy", json={"merchant": "other", "sku": "SK-001"}).status_code == 404
    assert client.post("/api/copy", json={"sku": "SK-001", "viewer_id": "v", "segment": {}}).status_code == 422
    assert client.post("/api/copy", json={"sku": "SK-001", "channel": "fax"}).status_code == 422


def test_campaign_generate_status_results_and_resume(client):
    spec = {
        "merchant": "demo",
        "show": {
            "start": "2030-01-01T20:00:00+08:00",
            "segments": [
                {"sku": "SK-001", "start": "2030-01-01T20:10:00+08:00"},
                {"sku": "MU-001", "start": "2030-01-01T20:40:00+08:00"},
            ],
        },
        "phase": "pre",
        "channel": "push",
        "use_llm": False,
    }
    r = client.post("/api/campaigns/api1/generate?wait=true", json=spec)
    assert r.status_code == 202 and r.json()["status"] == "done", r.text
    assert r.json()["stats"]["copies"] == 150
    st = client.get("/api/campaigns/api1").json()
    assert st["status"] == "done" and st["delivered"] == 150
    res = client.get("/api/campaigns/api1/results", params={"limit": 10}).json()["results"]
    assert len(res) == 10 and all(x["text"] and x["angle"] for x in res)
    assert client.get("/api/campaigns/api1/groups").json()
    r = client.post("/api/campaigns/api1/generate?wait=true")  # no body: re-run the stored spec (resume)
    assert r.json()["stats"]["copies"] == 0 and r.json()["stats"]["resumed_skipped"] == 150
    r = client.post("/api/campaigns/api1/generate", json={**spec, "channel": "sms"})
    assert r.status_code == 409  # same id, different spec
    assert client.post("/api/campaigns/nope/generate").status_code == 404
    assert client.get("/api/campaigns/nope").status_code == 404
    # in the background
    r = client.post("/api/campaigns/api2/generate", json={**spec, "viewers": ["dv00001", "dv00002", "ghost"]})
    assert r.status_code == 202 and r.json()["status"] == "running"
    for _ in range(100):
        st = client.get("/api/campaigns/api2").json()
        if st["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert st["status"] == "done" and st["delivered"] == 3


def test_experiment_endpoints(client):
    spec = {
        "experiment_id": "x1",
        "merchant": "demo",
        "variants": [{"name": "A"}, {"name": "B", "angle": "price"}],
        "min_exposures": 10,
    }
    r = client.post("/api/experiments", json=spec)
    assert r.status_code == 201 and r.json()["tag"] == "ab:x1"
    assert client.post("/api/experiments", json=spec).json()["state"] == "exists"
    arm = client.get("/api/experiments/x1/assignment/dv00001").json()["variant"]
    assert all(client.get("/api/experiments/x1/assignment/dv00001").json()["variant"] == arm for _ in range(3))
    evs = [{"event_id": f"e{i}", "viewer_id": f"dv{i:05d}", "kind": "exposure"} for i in range(40)]
    evs += [{"event_id": f"c{i}", "viewer_id": f"dv{i:05d}", "kind": "click"} for i in range(0, 40, 3)]
    r = client.post("/api/experiments/x1/events", json={"merchant": "demo", "events": evs})
    assert r.json()["accepted"] == len(evs)
    rep = client.get("/api/experiments/x1/report").json()
    assert sum(v["exposed"] for v in rep["variants"]) == 40 and "decision" in rep
    assert client.get("/api/experiments/none/report").status_code == 404
    assert client.post("/api/experiments/x1/stop").json()["status"] == "stopped"


def test_compliance_check_endpoint(client):
    r = client.post("/api/compliance/check", json={"text": "原价299元，仅剩3件！", "sku": "SK-001"}).json()
    assert not r["ok"] and {v["rule"] for v in r["violations"]} == {"price", "scarcity"}
    assert client.post("/api/compliance/check", json={"text": "日常价199元，今晚129元。", "sku": "SK-001"}).json()["ok"]


def test_cli_copy_and_ab_report(container, monkeypatch):
    import liveroom.commands.copy as cli

    monkeypatch.setattr(cli, "_container", lambda: container)
    app = typer.Typer()
    app.command("copy")(copy_command)
    app.add_typer(ab_app, name="ab")
    app.add_typer(campaign_app, name="campaign")
    run = CliRunner()
    r = run.invoke(
        app,
        [
            "copy",
            "--merchant",
            "demo",
            "--sku",
            "SK-002",
            "--segment",
            '{"tier": "铁粉"}',
            "--phase",
            "pre",
            "--channel",
            "host",
            "--no-llm",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["angle"] == "member" and out["compliance"]["ok"] and out["citations"]
    r = run.invoke(app, ["copy", "--sku", "SK-002", "--viewer", "a", "--segment", "{}", "--no-llm"])
    assert r.exit_code == 2
    container.__dict__.pop("_copywriting_service", None)
    from copywriting.service import service_for

    service_for(container).experiments.create({"experiment_id": "cli1", "variants": [{"name": "A"}, {"name": "B"}]})
    r = run.invoke(app, ["ab", "report", "cli1", "--merchant", "demo", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["experiment_id"] == "cli1" and [v["name"] for v in rep["variants"]] == ["A", "B"]
    assert run.invoke(app, ["ab", "report", "nope"]).exit_code == 1


def test_cli_campaign_generate_with_progress_and_resume(container, monkeypatch, tmp_path):
    import liveroom.commands.copy as cli

    monkeypatch.setattr(cli, "_container", lambda: container)
    container.__dict__.pop("_copywriting_service", None)
    app = typer.Typer()
    app.command("copy")(copy_command)
    app.add_typer(campaign_app, name="campaign")
    spec = tmp_path / "c.json"
    spec.write_text(
        json.dumps(
            {
                "campaign_id": "cli-c1",
                "merchant": "demo",
                "skus": ["SN-004"],
                "phase": "post",
                "channel": "sms",
                "viewers": [f"dv{i:05d}" for i in range(60)],
            }
        ),
        encoding="utf-8",
    )
    run = CliRunner()
    r = run.invoke(app, ["campaign", "generate", "--spec", str(spec), "--no-llm"])
    assert r.exit_code == 0, r.output
    assert "copies" in r.stdout and "60" in r.stdout
    r = run.invoke(app, ["campaign", "generate", "cli-c1", "--merchant", "demo", "--no-llm", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["resumed_skipped"] == 60
    r = run.invoke(app, ["campaign", "status", "cli-c1", "--merchant", "demo", "--json"])
    st = json.loads(r.stdout)
    assert st["status"] == "done" and st["delivered"] == 60 and st["groups"]
    assert run.invoke(app, ["campaign", "generate", "nope", "--no-llm"]).exit_code == 2
