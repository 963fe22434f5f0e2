"""Storage plumbing: configuration, Alembic migrations on both backends, concurrent first start, CLI, demo seed."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from audience.config import database_url, normalize_url, sqlite_path
from audience.db import alembic_config, current_revision, make_engine, migrate
from audience.service import AudienceService
from core.settings import Settings
from tests.support.audience import app_metadata, backends, temp_service

ROOT = Path(__file__).resolve().parent.parent
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_database_url_from_env_or_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("LIVEROOM_DATABASE_URL", raising=False)
    monkeypatch.setenv("LIVEROOM_DATA_DIR", str(tmp_path / "data"))
    assert database_url(Settings()) == f"sqlite:///{tmp_path / 'data' / 'liveroom.db'}"
    assert sqlite_path(database_url(Settings())) == tmp_path / "data" / "liveroom.db"
    monkeypatch.setenv("LIVEROOM_DATABASE_URL", "postgresql://u:p@db:5432/live")
    assert database_url(Settings()) == "postgresql+psycopg://u:p@db:5432/live"
    assert normalize_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert sqlite_path("postgresql+psycopg://h/db") is None


@pytest.mark.parametrize("backend", backends())
def test_migrations_reach_head_and_match_the_models(backend, tmp_path):
    with temp_service(backend, tmp_path) as svc:
        assert current_revision(svc.engine) == HEAD
        with svc.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), app_metadata()) == []
        migrate(svc.engine)  # a second start is a no-op
        assert current_revision(svc.engine) == HEAD


def test_downgrade_and_upgrade_again(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == HEAD
    engine.dispose()


def _start(url: str, barrier) -> None:  # child: many workers booting against a fresh database at once
    barrier.wait()
    AudienceService(url).close()
    os._exit(0)


def test_workers_starting_together_migrate_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_start, args=(url, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert current_revision(make_engine(url)) == HEAD


def test_alembic_cli_uses_the_repo_config(tmp_path):
    env = {**os.environ, "LIVEROOM_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    r = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert current_revision(make_engine(env["LIVEROOM_DATABASE_URL"])) == HEAD


@pytest.fixture()
def cli(monkeypatch, tmp_path):
    from liveroom.commands.audience import audience_app, audience_bench_app, profile_app

    monkeypatch.delenv("LIVEROOM_DATABASE_URL", raising=False)
    monkeypatch.setenv("LIVEROOM_DATA_DIR", str(tmp_path / "data"))
    app = typer.Typer()
    app.add_typer(profile_app, name="profile")
    app.add_typer(audience_app, name="audience")
    app.add_typer(audience_bench_app, name="bench")  # the lead merges these into `liveroom bench`
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_seed_is_idempotent_fast_and_feeds_profile_show(cli):
    t0 = time.perf_counter()
    r = cli("audience", "seed", "--merchant", "demo", "--viewers", "3000", "--json")
    first = time.perf_counter() - t0
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["viewers"] == 3000 and info["events"] > 10_000 and info["accepted"] == info["events"]
    assert first < 20, first
    t0 = time.perf_counter()
    again = json.loads(cli("audience", "seed", "--merchant", "demo", "--viewers", "3000", "--json").stdout)
    assert again["skipped"] and time.perf_counter() - t0 < 5
    shown = [
        json.loads(cli("profile", "show", "--merchant", "demo", f"dv{i:05d}", "--json").stdout) for i in range(0, 60, 3)
    ]
    assert {p["tier"] for p in shown} >= {"围观", "铁粉"}
    assert any(p["interest_tags"] for p in shown)
    blob = json.dumps(shown, ensure_ascii=False)
    assert "演示用户" not in blob and "1380000" not in blob  # the seed's fake contact data stays put
    table = cli("profile", "show", "--merchant", "demo", "dv00000")
    assert table.exit_code == 0 and "tier" in table.stdout
    missing = cli("profile", "show", "--merchant", "demo", "nobody", "--json")
    assert missing.exit_code == 1
    rules = json.loads(cli("audience", "rules", "--merchant", "demo").stdout)
    assert rules["effective"]["interest"]["half_life_minutes"] == 10
    audit = cli("audience", "audit", "--merchant", "demo", "DEMO-ALL20")
    assert audit.exit_code == 0 and json.loads(audit.stdout)["ok"]


def test_bench_commands_print_the_promised_json(cli):
    r = cli("bench", "coupons", "--claims", "200", "--budget", "20", "--workers", "2", "--threads", "4", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert {"issued", "budget", "duplicates", "over_limit", "elapsed_s"} <= set(res)
    assert (res["issued"], res["budget"], res["duplicates"], res["over_limit"]) == (20, 20, 0, 0)
    r = cli("bench", "events", "--events", "3000", "--viewers", "300", "--probes", "20", "--json")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["events"] == 3000 and ev["events_per_s"] > 500 and ev["event_to_tag_ms_p95"] < 1000
