"""A simulated or accelerated show never touches the real merchant's tables (issue 19): ``liveroom host``
with a simulated audience at 60x writes its events, viewers and coupons into the sandbox database, with
the merchant's campaigns copied in (nothing issued), and the report says so."""

from __future__ import annotations

import hashlib
import json
import shutil

import typer
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from liveroom.commands.host import host_command

SHOW = """reserve_coupons: [REAL-10]
segments:
  - {type: opening, minutes: 1}
  - {type: product, sku: SK-001, minutes: 2}
  - {type: coupon, campaign: REAL-10, minutes: 1}
  - {type: closing, minutes: 1}
"""


def _app() -> typer.Typer:
    a = typer.Typer()
    a.command("host")(host_command)
    a.command("noop")(lambda: None)
    return a


def _fingerprint(engine) -> dict[str, str]:
    """Every audience table's rows, hashed (what 'untouched' means)."""
    out = {}
    with engine.connect() as conn:
        for name in sorted(inspect(engine).get_table_names()):
            if not name.startswith("aud_"):
                continue
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).fetchall()
            out[name] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()[:16] + f":{len(rows)}"
    return out


def test_accelerated_simulated_show_leaves_real_tables_untouched(tmp_path, demo_root, monkeypatch):
    from audience import models as t
    from audience.sandbox import sandbox_path
    from audience.service import AudienceService
    from core.settings import Settings

    shutil.copytree(demo_root / "kb", tmp_path / "kb")
    monkeypatch.setenv("LIVEROOM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LIVEROOM_EMBED_THREADS", "1")
    real = AudienceService.from_settings(Settings(data_dir=tmp_path))
    real.upsert_viewers("demo", [{"viewer_id": "real-1", "member": True}])
    real.ingest("demo", [{"event_id": "r1", "viewer_id": "real-1", "type": "enter"}])
    real.create_campaign(
        "demo",
        {
            "campaign_id": "REAL-10",
            "title": "满99减10",
            "kind": "amount",
            "amount": 10,
            "threshold": 99,
            "budget_count": 5,
        },
    )
    before = _fingerprint(real.engine)
    real.close()
    rd = tmp_path / "show.yaml"
    rd.write_text(SHOW, encoding="utf-8")
    r = CliRunner().invoke(
        _app(),
        [
            "host",
            "--merchant",
            "demo",
            "--rundown",
            str(rd),
            "--hours",
            "0.08",
            "--speed",
            "60",
            "--viewers",
            "200",
            "--json",
            "-q",
            "--sample-every",
            "60",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    box = sandbox_path(Settings(data_dir=tmp_path), "demo")
    assert rep["sandbox"] == {"database": str(box)}
    assert rep["simulator"]["audience_accepted"] > 0  # the simulated audience did write… into the sandbox

    real = AudienceService.from_settings(Settings(data_dir=tmp_path))
    try:
        assert _fingerprint(real.engine) == before
    finally:
        real.close()
    sb = AudienceService(f"sqlite:///{box}")
    try:
        with sb.engine.connect() as conn:
            n_events = conn.execute(select(t.events.c.event_id).where(t.events.c.merchant == "demo")).fetchall()
            camp = conn.execute(select(t.campaigns).where(t.campaigns.c.campaign_id == "REAL-10")).one()
        assert len(n_events) >= rep["simulator"]["audience_accepted"]
        assert camp.budget_count == 5  # the real set-up, copied
    finally:
        sb.close()


def test_a_real_time_show_without_simulation_uses_the_real_database():
    from audience.sandbox import needs_sandbox

    assert needs_sandbox(simulated=False, speed=1.0) is False
    assert needs_sandbox(simulated=True, speed=1.0) and needs_sandbox(simulated=False, speed=20.0)
