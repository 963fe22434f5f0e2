"""CLI pieces the `liveroom` command registers:

liveroom copy --merchant M --sku S (--viewer V | --segment '{...}') --phase pre|live|post
              --channel push|sms|popup|host [--recall R] [--show rundown.json] [--no-llm] --json
liveroom campaign generate --spec campaign.json [--no-llm]      (progress bar; re-run resumes)
liveroom campaign generate ID --merchant M                      (resume a stored campaign)
liveroom campaign status ID --merchant M [--json]
liveroom ab create experiment.json
liveroom ab report EXPERIMENT --merchant M --json
liveroom ab assign EXPERIMENT VIEWER --merchant M
liveroom ab stop EXPERIMENT --merchant M
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

err = Console(stderr=True)
out = Console()

ab_app = typer.Typer(
    help="A/B experiments on copy, coupons and push time: CTR/CVR with significance.", no_args_is_help=True
)
campaign_app = typer.Typer(
    help="Batch copy for a campaign (per segment / per viewer, grouped, resumable).", no_args_is_help=True
)

__all__ = ["copy_command", "ab_app", "campaign_app"]


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def _container():
    from liveroom.container import Container

    return Container()


async def _with_llm(c, use_llm: bool) -> None:
    if not use_llm:
        return
    try:
        await c.start_llm()
    except Exception as e:  # noqa: BLE001 — templates still give compliant copy
        err.print(f"[yellow]LLM backend unavailable ({e}); using templates[/yellow]")


def copy_command(
    sku: str | None = typer.Option(None, "--sku", help="product sku (or give --show to pick per target)"),
    merchant: str | None = typer.Option(None, "--merchant", "-m"),
    viewer: str | None = typer.Option(None, "--viewer", help="one viewer (profile and coupons from the audience db)"),
    segment: str | None = typer.Option(
        None, "--segment", help='JSON, e.g. \'{"tier": "铁粉", "price_sensitivity": "high"}\''
    ),
    phase: str = typer.Option("pre", "--phase", help="pre | live | post"),
    channel: str = typer.Option("push", "--channel", help="push | sms | popup | host"),
    recall: str | None = typer.Option(
        None, "--recall", help="post: cart_unpaid | watched_no_buy | left_early | missed_show"
    ),
    angle: str | None = typer.Option(None, "--angle", help="force: focus | price | member | quality | general"),
    coupon: str = typer.Option("auto", "--coupon", help="auto | none | a coupon campaign id"),
    show: Path | None = typer.Option(None, "--show", help="show rundown JSON (start, segments)"),
    no_llm: bool = typer.Option(False, "--no-llm", help="template copy only; don't start the LLM backend"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write one personalised, compliance-checked copy."""
    from pydantic import ValidationError

    from copywriting.schema import CopyRequest
    from copywriting.service import service_for
    from knowledge.store import KBError

    if viewer and segment:
        err.print("[red]error[/red] give --viewer or --segment, not both")
        raise typer.Exit(2)
    try:
        seg = json.loads(segment) if segment else None
        req = CopyRequest(
            merchant=merchant,
            sku=sku,
            viewer_id=viewer,
            segment=seg,
            phase=phase,
            channel=channel,
            recall=recall,
            angle=angle,
            coupon=coupon,
            use_llm=not no_llm,
            show=json.loads(show.read_text(encoding="utf-8")) if show else None,
        )
    except (ValidationError, ValueError) as e:
        err.print(f"[red]error[/red] {e}")
        raise typer.Exit(2)

    async def run():
        c = _container()
        try:
            svc = service_for(c)
            m = req.merchant or c.settings.default_merchant
            if sku and c.kb.snapshot(m).product(sku) is None:
                raise KBError(f"unknown product {sku!r} for merchant {m!r}")
            await _with_llm(c, req.use_llm)
            return await svc.copy(req.model_copy(update={"merchant": m}))
        finally:
            await c.aclose()

    try:
        piece = asyncio.run(run())
    except (KBError, KeyError) as e:
        err.print(f"[red]error[/red] {e}")
        raise typer.Exit(2)
    if as_json:
        _print_json(piece.public())
        return
    out.print(piece.text)
    out.print(
        f"[dim]angle={piece.angle} source={piece.source} compliance={'ok' if piece.compliance.ok else 'FAIL'} "
        f"cites={', '.join(c.id for c in piece.citations)}[/dim]"
    )


# --- campaigns ---------------------------------------------------------------------------------
@campaign_app.command("generate")
def campaign_generate(
    campaign_id: str | None = typer.Argument(None, help="resume a stored campaign by id"),
    spec_file: Path | None = typer.Option(None, "--spec", help="campaign spec JSON"),
    merchant: str | None = typer.Option(None, "--merchant", "-m"),
    no_llm: bool = typer.Option(False, "--no-llm"),
    as_json: bool = typer.Option(False, "--json"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Generate copy for every viewer of a campaign; interrupted runs resume where they stopped."""
    from pydantic import ValidationError

    from copywriting.batch import CampaignSpec
    from copywriting.service import service_for

    async def run():
        c = _container()
        try:
            svc = service_for(c)
            if spec_file:
                data = json.loads(spec_file.read_text(encoding="utf-8"))
                if merchant:
                    data["merchant"] = merchant
                if campaign_id:
                    data["campaign_id"] = campaign_id
                spec = CampaignSpec.model_validate(data)
            else:
                if not campaign_id:
                    raise ValueError("give a campaign id to resume, or --spec FILE")
                stored = svc.store.get_campaign(merchant or c.settings.default_merchant, campaign_id)
                if stored is None:
                    raise ValueError(f"unknown campaign {campaign_id!r}: give --spec FILE")
                spec = CampaignSpec.model_validate(stored["spec"])
            if no_llm:
                spec = spec.model_copy(update={"use_llm": False})
            await _with_llm(c, spec.use_llm)
            show_bar = not quiet and not as_json
            if show_bar:
                bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=err,
                )
                tasks: dict[str, int] = {}

                def cb(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = bar.add_task(stage, total=max(total, 1))
                    bar.update(tasks[stage], completed=done, total=max(total, 1))

                with bar:
                    return await svc.run_campaign(spec, cb)
            return await svc.run_campaign(spec)
        finally:
            await c.aclose()

    try:
        stats = asyncio.run(run())
    except (ValidationError, ValueError) as e:
        err.print(f"[red]error[/red] {e}")
        raise typer.Exit(2)
    if as_json:
        _print_json(stats)
    else:
        for k, v in stats.items():
            out.print(f"{k}: {v}")


@campaign_app.command("status")
def campaign_status(
    campaign_id: str,
    merchant: str | None = typer.Option(None, "--merchant", "-m"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A campaign's status, stats and generated variants."""
    from copywriting.service import service_for

    c = _container()
    svc = service_for(c)
    m = merchant or c.settings.default_merchant
    st = svc.store.get_campaign(m, campaign_id)
    if st is None:
        err.print(f"[red]error[/red] unknown campaign {campaign_id!r}")
        raise typer.Exit(1)
    st["delivered"] = svc.store.count_deliveries(m, campaign_id)
    groups = svc.store.groups(m, campaign_id)
    if as_json:
        _print_json({**st, "groups": groups})
        return
    out.print(f"{campaign_id}: {st['status']}, {st['delivered']} viewers, {len(groups)} variants")
    t = Table("viewers", "variant", "sku", "angle", "source", "text")
    for g in sorted(groups, key=lambda g: -g["viewers"]):
        t.add_row(str(g["viewers"]), g["variant"], g["sku"], g["angle"], g["source"], g["piece"]["text"])
    out.print(t)


# --- A/B ---------------------------------------------------------------------------------------
@ab_app.command("create")
def ab_create(
    spec_file: Path = typer.Argument(..., help="experiment spec JSON"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """Create an experiment (re-creating an identical one is a no-op)."""
    from pydantic import ValidationError

    from copywriting.service import service_for

    try:
        data = json.loads(spec_file.read_text(encoding="utf-8"))
        spec, state = service_for(_container()).experiments.create(data)
    except (ValidationError, ValueError) as e:
        err.print(f"[red]error[/red] {e}")
        raise typer.Exit(2)
    if as_json:
        _print_json({"experiment": spec.model_dump(mode="json"), "state": state, "tag": spec.tag})
    else:
        print(f"{spec.experiment_id}: {state} (tag behaviour events with campaign_id={spec.tag!r})")


@ab_app.command("report")
def ab_report(
    experiment: str = typer.Argument(...),
    merchant: str | None = typer.Option(None, "--merchant", "-m"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """CTR and CVR per variant with 95% intervals, tests against control, and the stop decision."""
    from copywriting.ab import UnknownExperiment
    from copywriting.service import service_for

    c = _container()
    try:
        rep = service_for(c).experiments.report(merchant or c.settings.default_merchant, experiment)
    except UnknownExperiment as e:
        err.print(f"[red]error[/red] {e.args[0]}")
        raise typer.Exit(1)
    if as_json:
        _print_json(rep)
        return
    t = Table(
        "variant",
        "exposed",
        "CTR [95% CI]",
        "CVR [95% CI]",
        f"p vs control ({rep['primary_metric']})",
        title=f"{experiment} ({rep['status']})",
    )
    for v in rep["variants"]:

        def fmt(r):
            return f"{r['rate']:.2%} [{r['ci'][0]:.2%}, {r['ci'][1]:.2%}]"

        p = "" if v["control"] else f"{v['vs_control'][rep['primary_metric']]['p_holm']:.3g} (Holm)"
        t.add_row(
            v["name"] + (" (control)" if v["control"] else ""), str(v["exposed"]), fmt(v["ctr"]), fmt(v["cvr"]), p
        )
    out.print(t)
    d = rep["decision"]
    out.print(
        f"decision: {'STOP' if d['stop'] else 'continue'} — {d['reason']}"
        + (f", winner {d['winner']}" if d["winner"] else "")
        + f" ({d['detail']})"
    )


@ab_app.command("assign")
def ab_assign(experiment: str, viewer: str, merchant: str | None = typer.Option(None, "--merchant", "-m")) -> None:
    """The viewer's arm (sticky)."""
    from copywriting.ab import UnknownExperiment
    from copywriting.service import service_for

    c = _container()
    m = merchant or c.settings.default_merchant
    try:
        print(service_for(c).experiments.assign(m, experiment, [viewer])[viewer])
    except UnknownExperiment as e:
        err.print(f"[red]error[/red] {e.args[0]}")
        raise typer.Exit(1)


@ab_app.command("stop")
def ab_stop(experiment: str, merchant: str | None = typer.Option(None, "--merchant", "-m")) -> None:
    from copywriting.service import service_for

    c = _container()
    service_for(c).experiments.stop(merchant or c.settings.default_merchant, experiment)
    print("stopped")
