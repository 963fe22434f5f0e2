"""`liveroom host` (an unattended show) and `liveroom bench danmaku`. Wired into ``liveroom/cli.py``::

app.command("host")(host_command)
bench_app.command("danmaku")(danmaku_bench_command)
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

err = Console(stderr=True)
out = Console()
log = logging.getLogger("liveroom.host")


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def host_command(
    merchant: str = typer.Option(..., "--merchant", "-m", help="Merchant id (its knowledge base must be imported)."),
    rundown: Path = typer.Option(
        ..., "--rundown", "-r", help="The show plan (YAML), e.g. knowledge/demo/rundown.yaml."
    ),
    hours: float | None = typer.Option(None, "--hours", min=0.01, max=72, help="Show length (default: the rundown's)."),
    speed: float = typer.Option(
        1.0, "--speed", min=0.1, max=3600, help="Show clock speed: 60 = an hour of show per real minute (soak, demos)."
    ),
    room: str | None = typer.Option(None, "--room", help="Room id (default: the rundown's, else 'host')."),
    viewers: int = typer.Option(3000, "--viewers", min=0, max=200_000, help="Simulated audience size (0 = none)."),
    seed: int = typer.Option(7, "--seed"),
    simulate: bool = typer.Option(True, "--simulate/--no-simulate", help="Drive the room with the demo audience."),
    llm: bool = typer.Option(False, "--llm/--no-llm", help="Start the LLM to reword scripts (never waited for)."),
    tts: bool = typer.Option(False, "--tts/--no-tts", help="Voice the host with espeak-ng (text track always)."),
    audio_out: Path | None = typer.Option(None, "--audio-out", help="With --tts: write the voice to this WAV."),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="Start even if the rundown names unknown skus/campaigns (skipped)."
    ),
    sample_every: float = typer.Option(60.0, "--sample-every", min=1, help="Resource sample period (show seconds)."),
    serve: int | None = typer.Option(
        None, "--serve", min=1, max=65535, help="Also serve the API on this port (host console: /ws/rooms/ROOM/host)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Don't print the text track."),
) -> None:
    """Run a show by itself: rundown → scripts → text track (and voice), danmaku answered, funnel alerts."""
    from host.rundown import RundownError, check_references, load_rundown

    try:
        rd = load_rundown(rundown)
    except RundownError as e:
        for issue in e.issues:
            err.print(f"[red]error[/red] {escape(str(issue))}")
        raise typer.Exit(2)
    if rd.merchant and rd.merchant != merchant:
        err.print(f"[yellow]warning[/yellow] the rundown is for merchant {rd.merchant!r}, running it for {merchant!r}")
    try:
        report = asyncio.run(
            _run_show(
                rd,
                rundown.name,
                merchant,
                hours,
                speed,
                room,
                viewers,
                seed,
                simulate,
                llm,
                tts,
                audio_out,
                allow_missing,
                sample_every,
                quiet,
                check_references,
                serve,
            )
        )
    except _Fail as e:
        for line in e.lines:
            err.print(f"[red]error[/red] {escape(line)}")
        raise typer.Exit(2)
    except KeyboardInterrupt:
        raise typer.Exit(130)
    if as_json:
        _print_json(report)
    else:
        _print_report(report)


class _Fail(Exception):
    def __init__(self, lines: list[str]):
        self.lines = lines


async def _run_show(
    rd,
    source,
    merchant,
    hours,
    speed,
    room_id,
    viewers,
    seed,
    simulate,
    use_llm,
    use_tts,
    audio_out,
    allow_missing,
    sample_every,
    quiet,
    check_references,
    serve: int | None = None,
) -> dict:
    from audience.sandbox import needs_sandbox, open_sandbox, sandbox_path
    from audience.service import AudienceService
    from core.clock import ScaledClock
    from host.loop import HostLoop
    from host.resources import ResourceSampler
    from host.room import HostRoom, host_agent
    from host.rundown import Timeline
    from host.speech import AudioOut, EspeakSink, Speaker, SpeechError, TextTrack, WavOut
    from knowledge.store import KBError
    from liveroom.container import Container
    from sim.show import ShowSimulator

    c = Container()
    try:
        if c.kb.active_version(merchant) is None:
            raise _Fail(
                [
                    f"merchant {merchant!r} has no knowledge base; import one first: "
                    f"liveroom kb import --merchant {merchant} knowledge/demo"
                ]
            )
        snap = c.kb.snapshot(merchant)
    except KBError as e:
        raise _Fail([str(e)]) from None
    clock = ScaledClock(speed)
    if needs_sandbox(simulated=simulate, speed=speed):
        real = AudienceService.from_settings(c.settings)
        try:
            svc = await asyncio.to_thread(open_sandbox, c.settings, merchant, real, clock.now)
        finally:
            real.close()
        err.print(f"sandbox: simulated/accelerated show, audience data in {sandbox_path(c.settings, merchant)}")
    else:
        svc = AudienceService.from_settings(c.settings, clock=clock.now)
    c.__dict__["audience"] = svc  # the container's tools use the show clock too
    hours = rd.hours if hours is None else hours
    products = [{"sku": p.sku, "name": p.name, "category": p.category, "price": p.price} for p in snap.catalog.products]
    if viewers and simulate:
        await asyncio.to_thread(_seed_audience, svc, merchant, viewers, seed, products)
    campaigns = {x.campaign_id: x for x in svc.list_campaigns(merchant)}
    issues = check_references(rd, set(snap.products), campaigns, source)
    if issues and not allow_missing:
        raise _Fail([str(i) for i in issues] + ["fix the rundown, or pass --allow-missing to skip those segments"])
    for i in issues:
        err.print(f"[yellow]warning[/yellow] {escape(str(i))} (segment will be skipped)")

    room = HostRoom(
        merchant,
        room_id or rd.room or "host",
        kb=c.kb,
        embed=c.embedder.encode,
        audience=svc,
        agent=host_agent(c.kb, svc, c.answer_bus, c.intent_model),
        clock=clock,
        seed=seed,
    )
    tts = None
    audio = None
    if use_tts:
        try:
            audio = WavOut(str(audio_out)) if audio_out else AudioOut()
            tts = EspeakSink(audio)
        except (SpeechError, ImportError, OSError) as e:
            err.print(f"[yellow]warning[/yellow] no voice ({escape(str(e))}); text track only")
    echo = (
        None
        if quiet
        else (
            lambda ln: out.print(f"[dim]{ln.seq:>5}[/dim] [cyan]{ln.kind:<8}[/cyan] {escape(ln.text)}", highlight=False)
        )
    )
    track = TextTrack(room.bus, echo=echo)
    speaker = Speaker(
        clock,
        track,
        tts,
        rd.pace.chars_per_second,
        on_failure=lambda e: room.alerts.alert("tts_failed", f"语音合成失败，已切换为字幕：{e}", severity="warning"),
    )
    loop = HostLoop(room, rd, speaker, hours=hours)
    timeline = Timeline(rd, clock.now(), hours)
    sim = ShowSimulator(room, timeline, products, viewers=viewers, seed=seed, audience=svc) if simulate else None
    sampler = ResourceSampler(
        clock,
        sample_every,
        extra=lambda: {
            "clusters": len(room.clusterer.clusters),
            "backlog": room.clusterer.backlog,
            "embed_cache": len(room.clusterer._cache),
            "memory_lines": len(loop.memory),
            "online": room.funnel.online,
        },
    )
    await _warm_up(room)
    clock.restart()  # show time starts now, not during set-up
    timeline = Timeline(rd, clock.now(), hours)
    if sim:
        sim = ShowSimulator(room, timeline, products, viewers=viewers, seed=seed, audience=svc)
    sampler = ResourceSampler(clock, sample_every, extra=sampler.extra)
    room.start()
    tasks = [asyncio.create_task(sampler.run(), name="sampler")]
    if sim:
        tasks.append(asyncio.create_task(sim.run(), name="simulator"))
    if use_llm:
        tasks.append(asyncio.create_task(_start_llm(c, loop), name="llm-start"))
    server = _server(c, room, serve) if serve else None
    if server is not None:
        tasks.append(asyncio.create_task(server.serve(), name="api"))
        err.print(f"host console: ws://{c.settings.host}:{serve}/ws/rooms/{room.room_id}/host?merchant={merchant}")
    try:
        report = await loop.run()
    finally:
        if server is not None:
            server.should_exit = True
            await asyncio.sleep(0.2)
        sampler.sample()
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        await room.aclose()
        if audio is not None:
            audio.close()
        svc.close()
        await c.aclose()
    res = report.model_dump()
    res["speed"] = speed
    res["sandbox"] = {"database": str(sandbox_path(c.settings, merchant))} if svc.sandbox else None
    res["simulator"] = sim.stats if sim else {}
    res["suggestion_latency_ms"] = _pcts(list(room.suggestions.latencies_ms))
    res["resources"] = sampler.summary()
    res["resource_samples"] = [s.model_dump() for s in sampler.samples]
    return res


def _server(c, room, port: int):
    """The LiveRoom app serving this show's room (console socket, funnel, clusters)."""
    import uvicorn

    from host.api import router
    from host.room import HostHub
    from server import create_app

    app = create_app(c, start_llm=False)
    if not any(getattr(r, "path", "") == "/ws/rooms/{room_id}/host" for r in app.routes):
        app.include_router(router)
    hub = HostHub(c.kb, c.embedder.encode, room.audience, room.clock, answers=c.answer_bus, intent_model=c.intent_model)
    hub.add(room)
    app.state.host_hub = hub
    return uvicorn.Server(uvicorn.Config(app, host=c.settings.host, port=port, log_level="warning"))


async def _warm_up(room) -> None:
    """First calls load indexes and encoder state (seconds): pay for them before the show clock runs."""
    from agent.messages import ViewerMessage

    room.embed(["预热"])
    await room.agent.answer(
        ViewerMessage(
            merchant=room.merchant, room_id=room.room_id, viewer_id="warm-up", text="敏感肌能用吗", channel="host"
        )
    )
    room.answerer.answer(["敏感肌能用吗"], frozenset({"sensitive"}), None, embed=room.embed)


async def _start_llm(c, loop) -> None:
    try:
        llm = await c.start_llm()
        loop.attach_llm(llm)
        log.info("LLM ready: script lines will be reworded ahead of time")
    except asyncio.CancelledError:
        raise
    except Exception as e:  # the show runs on templates
        err.print(f"[yellow]warning[/yellow] LLM unavailable ({escape(str(e))}); templates only")


def _seed_audience(svc, merchant: str, viewers: int, seed: int, products: list[dict]) -> None:
    from sim.audience import gen_viewers, seed_demo

    if merchant == "demo":
        seed_demo(svc, merchant, viewers=viewers, seed=seed)
        return
    if svc.viewer_count(merchant) == 0:
        svc.upsert_products(merchant, products)
        svc.upsert_viewers(merchant, gen_viewers(viewers, seed))  # campaigns are the merchant's own


def _pcts(xs: list[float]) -> dict:
    if not xs:
        return {"p50": None, "p95": None, "n": 0}
    xs = sorted(xs)
    pick = lambda q: round(xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))], 2)  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "n": len(xs)}


def _print_report(r: dict) -> None:
    t = Table("", "", title=f"show {r['merchant']}/{r['room_id']}: {r['show_hours']} h in {r['wall_s']} s")
    t.add_row(
        "lines",
        f"{r['lines']} ({', '.join(f'{k} {v}' for k, v in r['lines_by_kind'].items())}); "
        f"repeated {r['repeated_lines']}",
    )
    t.add_row("answered clusters", str(r["answered_clusters"]))
    t.add_row("audience data", f"SANDBOX {r['sandbox']['database']}" if r.get("sandbox") else "the merchant's own")
    t.add_row("announcements", ", ".join(a["campaign_id"] for a in r["announcements"]) or "-")
    t.add_row("skipped segments", str(len(r["skipped_segments"])))
    t.add_row("alerts", ", ".join(f"{k} {v}" for k, v in r["alerts"].items()) or "-")
    t.add_row("reactions", ", ".join(f"{k} {v}" for k, v in r["reactions"].items()) or "-")
    t.add_row("suggestions", f"{r['suggestions']} (latency {r['suggestion_latency_ms']})")
    t.add_row("replies / coupons issued", f"{r['replies']} / {r['coupons_issued']}")
    t.add_row("funnel", ", ".join(f"{k} {v}" for k, v in r["funnel"].items()))
    res = r["resources"]
    t.add_row(
        "resources",
        ", ".join(
            f"{k} {res[k]['first']}→{res[k]['last']} (max {res[k]['max']})"
            for k in ("rss_mb", "fds", "tasks", "threads")
        ),
    )
    out.print(t)


def danmaku_bench_command(
    rate: int = typer.Option(2000, "--rate", min=1, max=100_000, help="Messages per second offered."),
    seconds: float = typer.Option(30.0, "--seconds", min=1, max=3600),
    merchant: str = typer.Option("demo", "--merchant", "-m"),
    unique: float = typer.Option(0.05, "--unique", min=0, max=0.5, help="Share of never-seen-before questions."),
    replies: float = typer.Option(10.0, "--replies", min=0, help="Individual text replies per second (0 = off)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Danmaku ingest → triage → clustering → suggestions at a given rate."""
    from sim.danmaku_bench import bench_danmaku, summary

    logging.getLogger("liveroom").setLevel(logging.WARNING)
    res = bench_danmaku(rate, seconds, merchant=merchant, unique=unique, replies_per_s=replies)
    if as_json:
        _print_json(res)
    else:
        out.print(summary(res), highlight=False)
