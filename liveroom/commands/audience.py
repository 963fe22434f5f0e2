"""CLI pieces the `liveroom` command registers:

liveroom profile show --merchant M VIEWER [--json]
liveroom audience seed --merchant demo --viewers 3000
liveroom audience rules --merchant M [--set rules.json]
liveroom audience audit --merchant M CAMPAIGN
liveroom audience migrate
liveroom bench coupons --claims 1000 --budget 100 [--workers 4] [--url URL] --json
liveroom bench events [--events 50000] [--url URL] --json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sim.audience_bench import bench_coupons, bench_events

profile_app = typer.Typer(help="Viewer profiles (privacy-filtered, as the agent sees them).", no_args_is_help=True)
audience_app = typer.Typer(help="Audience data: demo seed, rules, ledger audit, migrations.", no_args_is_help=True)
audience_bench_app = typer.Typer(help="Audience benchmarks.", no_args_is_help=True)

err = Console(stderr=True)
out = Console()

__all__ = ["profile_app", "audience_app", "audience_bench_app", "bench_coupons", "bench_events"]


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _service():
    from audience.service import AudienceService
    from core.settings import Settings

    return AudienceService.from_settings(Settings())


@profile_app.command("show")
def profile_show(
    viewer: str = typer.Argument(..., help="viewer id"),
    merchant: str = typer.Option(..., "--merchant", "-m"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show a viewer's profile: tier, interest tags, price sensitivity, products in focus."""
    svc = _service()
    try:
        pv = svc.lookup(merchant, viewer)
    except ValueError as e:
        err.print(f"[red]error[/red] {e}")
        raise typer.Exit(2)
    finally:
        svc.close()
    if pv is None:
        err.print(f"[red]error[/red] unknown viewer {viewer!r} for merchant {merchant!r}")
        raise typer.Exit(1)
    if as_json:
        _print_json(pv.model_dump())
        return
    t = Table("field", "value", title=f"{merchant} / {viewer}")
    t.add_row("tier", pv.tier)
    t.add_row("interest", ", ".join(f"{x.tag} {x.weight:.2f}" for x in pv.interest_tags) or "-")
    t.add_row("price sensitivity", pv.price_sensitivity)
    t.add_row("spending power", pv.spending_power)
    t.add_row("member", "yes" if pv.member else "no")
    t.add_row("products in focus", ", ".join(pv.products_in_focus) or "-")
    t.add_row("decision signals", ", ".join(pv.decision_signals) or "-")
    t.add_row("active hours", ", ".join(f"{h}:00" for h in pv.active_hours) or "-")
    out.print(t)


@audience_app.command("seed")
def seed(
    merchant: str = typer.Option("demo", "--merchant", "-m"),
    viewers: int = typer.Option(3000, "--viewers", min=1, max=200_000),
    seed_: int = typer.Option(7, "--seed"),
    force: bool = typer.Option(False, "--force", help="Run again even if this seed was applied."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Synthetic demo audience: viewers, campaigns and one live session of events (idempotent)."""
    from sim.audience import seed_demo

    svc = _service()
    try:
        info = seed_demo(svc, merchant, viewers, seed_, force=force)
    finally:
        svc.close()
    if as_json:
        _print_json(info)
    elif info.get("skipped"):
        err.print(f"audience seed: {merchant} already seeded ({info['viewers']} viewers, {info['events']} events)")
    else:
        err.print(
            f"audience seed: {merchant}: {info['viewers']} viewers, {info['events']} events, "
            f"{info['campaigns']} campaigns in {info['elapsed_s']}s"
        )


@audience_app.command("rules")
def rules(
    merchant: str = typer.Option(..., "--merchant", "-m"),
    set_: Path | None = typer.Option(None, "--set", help="JSON file of overrides (replaces the current)."),
) -> None:
    """Show (or set) the merchant's profile rules; prints the effective rules as JSON."""
    svc = _service()
    try:
        if set_ is not None:
            try:
                r = svc.set_rules(merchant, json.loads(set_.read_text(encoding="utf-8")))
            except ValueError as e:
                err.print(f"[red]error[/red] {e}")
                raise typer.Exit(2)
        else:
            r = svc.rules(merchant)
        _print_json({"overrides": svc.rule_overrides(merchant), "effective": r.model_dump()})
    finally:
        svc.close()


@audience_app.command("audit")
def audit(campaign: str, merchant: str = typer.Option(..., "--merchant", "-m")) -> None:
    """Check a campaign's ledger invariants (exit 1 if any fails)."""
    svc = _service()
    try:
        res = svc.ledger_check(merchant, campaign)
    except KeyError:
        err.print(f"[red]error[/red] unknown campaign {campaign!r}")
        raise typer.Exit(2)
    finally:
        svc.close()
    _print_json(res)
    if not res["ok"]:
        raise typer.Exit(1)


@audience_app.command("migrate")
def migrate_cmd() -> None:
    """Upgrade the audience schema to the newest revision (the server also does this on start)."""
    from audience.db import current_revision

    svc = _service()
    try:
        err.print(f"audience schema at {current_revision(svc.engine)} ({svc.backend})")
    finally:
        svc.close()


@audience_bench_app.command("coupons")
def bench_coupons_cmd(
    claims: int = typer.Option(1000, "--claims", min=1),
    budget: int = typer.Option(100, "--budget", min=1),
    workers: int = typer.Option(4, "--workers", min=0, help="processes; 0 = threads only"),
    threads: int = typer.Option(8, "--threads", min=1, help="threads per worker"),
    url: str | None = typer.Option(
        None, "--url", help="database (default: a temporary SQLite file; PostgreSQL: a throwaway schema)"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Concurrent coupon claims against a budget: exactly `budget` issued, 0 duplicates, 0 over limit."""
    res = bench_coupons(claims, budget, workers, url=url, threads=threads)
    if as_json:
        _print_json(res)
    else:
        out.print(res)
    if res["issued"] > budget or res["duplicates"] or res["over_limit"] or not res["ledger_ok"]:
        raise typer.Exit(1)


@audience_bench_app.command("events")
def bench_events_cmd(
    events: int = typer.Option(50_000, "--events", min=100),
    viewers: int = typer.Option(2000, "--viewers", min=10),
    batch: int = typer.Option(500, "--batch", min=1, max=1000),
    probes: int = typer.Option(200, "--probes", min=1),
    url: str | None = typer.Option(None, "--url"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Event ingest throughput with real-time tag updates, and event→tag latency under load."""
    res = bench_events(events, viewers, batch, url=url, probes=probes)
    if as_json:
        _print_json(res)
    else:
        out.print(res)
