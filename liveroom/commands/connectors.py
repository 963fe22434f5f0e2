"""Live-platform connectors from the command line.

    liveroom connectors replay FILE --room R [--merchant M] [--speed 20] [--json]
    liveroom connectors add --merchant M --room R --kind webhook|douyin [--platform kuaishou] [--trust-identity]
    liveroom connectors list [--merchant M] [--json]

``replay`` plays a recorded session (JSONL, see docs/connectors.md; the demo: sim/sessions/demo-60min.jsonl)
into a room through the whole pipeline — dedup, triage and clusters, the agent on the fast path — and prints
``{"events", "answered", "dropped", "duplicates", "answer_latency_ms": {"p50", "p95"}, …}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import typer

connectors_app = typer.Typer(help="Live-platform connectors (docs/connectors.md)", no_args_is_help=True)


@connectors_app.command("replay")
def replay_command(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A recorded session (JSONL)."),
    room: str = typer.Option(..., "--room", "-r", help="The LiveRoom room to play it into."),
    merchant: str | None = typer.Option(None, "--merchant", "-m", help="Default: the room's, else the session's."),
    speed: float = typer.Option(20.0, "--speed", min=0.01, help="Show seconds per real second."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Play a recorded session into a room (fast path; no LLM) and report what was answered how fast."""
    from connectors.replay import replay
    from liveroom.container import Container

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build at DEBUG
    c = Container()
    try:
        owner = c.rooms.merchant_of(room)  # a registered room plays into its merchant
    except Exception:  # no audience database: the session's merchant
        owner = None

    async def run() -> dict:
        try:
            return await replay(c, path, room, speed=speed, merchant=merchant or owner)
        finally:
            await c.aclose()

    out = asyncio.run(run())
    if as_json:
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    lat = out["answer_latency_ms"]
    typer.echo(
        f"events {out['events']}  answered {out['answered']}  dropped {out['dropped']}  duplicates {out['duplicates']}  "
        f"latency p50 {lat['p50']} ms  p95 {lat['p95']} ms  ({out['wall_s']} s at {speed:g}×)"
    )


@connectors_app.command("add")
def add_command(
    merchant: str = typer.Option(..., "--merchant", "-m"),
    room: str = typer.Option(..., "--room", "-r"),
    kind: str = typer.Option("webhook", "--kind", help="webhook | douyin | bilibili"),
    connector_id: str | None = typer.Option(None, "--id"),
    platform: str = typer.Option("", "--platform", help="the webhook's platform name (kuaishou, taobao, …)"),
    platform_room: str = typer.Option("", "--platform-room", help="Douyin roomid / Bilibili room id"),
    app_id: str = typer.Option("", "--app-id", help="Douyin 小玩法 appid"),
    secret: str = typer.Option("", "--secret", help="Douyin: the push secret from the developer console"),
    trust_identity: bool = typer.Option(False, "--trust-identity", help="webhook: the sender vouches for its users"),
) -> None:
    """Create a connector; prints its secret once."""
    from connectors.store import ConnectorConfig, ConnectorStore
    from core.settings import Settings

    s = Settings()
    store = ConnectorStore(s.data_dir / "connectors")
    cfg = ConnectorConfig(
        connector_id=connector_id or f"{kind}-{room}",
        merchant=merchant,
        room_id=room,
        kind=kind,  # type: ignore[arg-type]
        platform=platform or (kind if kind != "webhook" else "webhook"),
        platform_room=platform_room,
        app_id=app_id,
        secret=secret,
        trust_identity=trust_identity,
    )
    cfg, shown = store.create(cfg)
    typer.echo(json.dumps(cfg.public() | {"secret": shown}, ensure_ascii=False))


@connectors_app.command("list")
def list_command(merchant: str | None = typer.Option(None, "--merchant", "-m")) -> None:
    """The configured connectors (without secrets)."""
    from connectors.store import ConnectorStore
    from core.settings import Settings

    store = ConnectorStore(Settings().data_dir / "connectors")
    for cfg in store.list(merchant):
        typer.echo(json.dumps(cfg.public(), ensure_ascii=False))
