"""`liveroom bench danmaku` (a short run) and `liveroom host` (bad rundowns, and a short accelerated show)."""

from __future__ import annotations

import json
import shutil

import pytest
import typer
from typer.testing import CliRunner

from knowledge.store import KnowledgeBase
from liveroom.commands.host import danmaku_bench_command, host_command
from sim.danmaku_bench import run_bench
from tests.support.host import fast_embedder


def app() -> typer.Typer:
    a = typer.Typer()
    bench = typer.Typer()
    a.add_typer(bench, name="bench")
    a.command("host")(host_command)
    bench.command("danmaku")(danmaku_bench_command)
    return a


async def test_danmaku_bench_smoke(demo_root):
    emb = fast_embedder()
    res = await run_bench(rate=400, seconds=2, kb_emb=(KnowledgeBase(demo_root / "kb", emb), emb))
    assert set(res) >= {"ingested_per_s", "suggestion_latency_ms", "clusters", "dropped"}
    # the rate itself is the benchmark's figure (python -m benchmarks...), not a pass mark: it varies with load
    assert res["dropped"] == 0 and res["sent"] == 800 and res["ingested_per_s"] > 0
    assert res["suggestion_latency_ms"]["n"] > 0 and res["clusters"] > 0
    assert res["kinds"]["question"] > 200 and res["kinds"]["spam"] > 0


def test_host_refuses_a_malformed_rundown(tmp_path):
    bad = tmp_path / "show.yaml"
    bad.write_text("segments:\n  - {type: product, sku: SK-001}\n  - {type: party, minutes: 2}\n", encoding="utf-8")
    r = CliRunner().invoke(app(), ["host", "--merchant", "demo", "--rundown", str(bad)])
    assert r.exit_code == 2
    assert "show.yaml:2: segments[0].minutes: required field is missing" in r.output
    assert "show.yaml:3: segments[1]: unknown segment type 'party'" in r.output


def test_host_refuses_unknown_skus_unless_told(tmp_path, demo_root, monkeypatch):
    shutil.copytree(demo_root / "kb", tmp_path / "kb")
    monkeypatch.setenv("LIVEROOM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LIVEROOM_EMBED_THREADS", "1")
    rd = tmp_path / "show.yaml"
    rd.write_text(
        "segments:\n  - {type: product, sku: GONE-1, minutes: 1}\n  - {type: product, sku: SK-001, minutes: 1}\n",
        encoding="utf-8",
    )
    r = CliRunner().invoke(app(), ["host", "--merchant", "demo", "--rundown", str(rd), "--no-simulate"])
    assert r.exit_code == 2 and "no product 'GONE-1' in the knowledge base" in r.output


@pytest.mark.slow
def test_host_runs_an_accelerated_show(tmp_path, demo_root, monkeypatch):
    shutil.copytree(demo_root / "kb", tmp_path / "kb")
    monkeypatch.setenv("LIVEROOM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LIVEROOM_EMBED_THREADS", "1")
    rd = tmp_path / "show.yaml"
    rd.write_text(
        """reserve_coupons: [DEMO-ALL20]
segments:
  - {type: opening, minutes: 1}
  - {type: product, sku: SK-001, minutes: 3}
  - {type: coupon, campaign: DEMO-ALL20, minutes: 1}
  - {type: product, sku: GONE-1, minutes: 1}
  - {type: qa, minutes: 2}
  - {type: closing, minutes: 1}
""",
        encoding="utf-8",
    )
    r = CliRunner().invoke(
        app(),
        [
            "host",
            "--merchant",
            "demo",
            "--rundown",
            str(rd),
            "--hours",
            "0.25",
            "--speed",
            "30",
            "--viewers",
            "300",
            "--allow-missing",
            "--json",
            "-q",
            "--sample-every",
            "60",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["repeated_lines"] == 0 and rep["lines"] > 30 and rep["segment_errors"] == 0
    assert [a["campaign_id"] for a in rep["announcements"]][:1] == ["DEMO-ALL20"]
    assert {s.get("sku") for s in rep["skipped_segments"]} >= {"GONE-1"}
    assert rep["funnel"]["entries"] > 0 and rep["simulator"]["danmaku"] > 0
    assert rep["resources"]["fds"]["max"] - rep["resources"]["fds"]["min"] <= 4
