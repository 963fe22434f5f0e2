"""Rooms and viewer tokens from the command line (for integrators, demos and tests).

    liveroom rooms create --merchant demo --room spring [--title 春季上新] [--origin https://shop.example.com]
    liveroom rooms list --merchant demo [--json]
    liveroom rooms close --merchant demo --room spring
    liveroom viewers secret --merchant demo [--rotate]          # shown once
    liveroom viewers token --merchant demo --viewer V [--room R] [--ttl 3600]

Uses the configured database (``LIVEROOM_DATABASE_URL`` / ``LIVEROOM_DATA_DIR``), like the server.
"""

from __future__ import annotations

import json
import sys

import typer

from audience.identity import ViewerTokens
from audience.rooms import RoomRegistry
from audience.service import AudienceService
from core.errors import LiveRoomError
from core.settings import Settings

rooms_app = typer.Typer(help="Live rooms: each belongs to one merchant", no_args_is_help=True, add_completion=False)
viewers_app = typer.Typer(help="Verified viewers: token secret and tokens", no_args_is_help=True, add_completion=False)


def _stores() -> tuple[Settings, AudienceService, RoomRegistry, ViewerTokens]:
    s = Settings()
    svc = AudienceService.from_settings(s)
    a = s.access
    tokens = ViewerTokens(svc.engine, grace_s=a.secret_grace_s, max_ttl_s=a.token_max_ttl_s, leeway_s=a.token_leeway_s)
    return s, svc, RoomRegistry(svc.engine), tokens


def _fail(e: Exception) -> typer.Exit:
    typer.echo(f"错误：{e.message if isinstance(e, LiveRoomError) else e}", err=True)
    return typer.Exit(1)


@rooms_app.command("create")
def rooms_create(
    merchant: str = typer.Option(...),
    room: str = typer.Option(..., help="the room id (letters, digits, - and _); public URL /rooms/<id>"),
    title: str = typer.Option(""),
    rundown: str = typer.Option("", help="the show's rundown (YAML path)"),
    origin: list[str] = typer.Option([], help="a page origin allowed to embed the room (repeatable); none = any"),
    if_missing: bool = typer.Option(False, "--if-missing", help="an existing room of this merchant is fine"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an open room for a merchant."""
    s, svc, rooms, _ = _stores()
    try:
        if if_missing:
            r = rooms.ensure(merchant, room, title, "cli", rundown=rundown, allowed_origins=origin)
        else:
            r = rooms.create(merchant, room, title, "cli", rundown=rundown, allowed_origins=origin)
    except LiveRoomError as e:
        raise _fail(e)
    finally:
        svc.close()
    url = f"http://{s.host}:{s.port}/rooms/{r.room_id}"
    if as_json:
        sys.stdout.write(json.dumps(r.to_dict() | {"url": url}, ensure_ascii=False) + "\n")
    else:
        typer.echo(f"直播间 {r.room_id}（{r.merchant}，{r.status}）：{url}")


@rooms_app.command("list")
def rooms_list(merchant: str = typer.Option(...), as_json: bool = typer.Option(False, "--json")) -> None:
    _, svc, rooms, _ = _stores()
    try:
        items = [r.to_dict() for r in rooms.list(merchant)]
    finally:
        svc.close()
    if as_json:
        sys.stdout.write(json.dumps(items, ensure_ascii=False) + "\n")
        return
    for r in items:
        typer.echo(f"{r['room_id']}\t{r['status']}\t{r['title']}")


@rooms_app.command("close")
def rooms_close(merchant: str = typer.Option(...), room: str = typer.Option(...)) -> None:
    """Close a room: every public channel answers 404 for it from then on (its history stays)."""
    _, svc, rooms, _ = _stores()
    try:
        r = rooms.close(merchant, room)
    except LiveRoomError as e:
        raise _fail(e)
    finally:
        svc.close()
    typer.echo(f"直播间 {r.room_id} 已关闭")


@viewers_app.command("secret")
def viewers_secret(
    merchant: str = typer.Option(...),
    rotate: bool = typer.Option(False, "--rotate", help="replace the current secret (it keeps verifying briefly)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create (or with --rotate replace) the merchant's viewer-token secret; it is printed this once."""
    _, svc, _, tokens = _stores()
    try:
        info = tokens.info(merchant)
        if info is not None and not rotate:
            typer.echo(f"{merchant} 已有密钥 {info['secret_id']}（不再显示）；用 --rotate 轮换", err=True)
            raise typer.Exit(1)
        info, secret = tokens.rotate(merchant, "cli")
    except LiveRoomError as e:
        raise _fail(e)
    finally:
        svc.close()
    if as_json:
        sys.stdout.write(json.dumps(info | {"secret": secret}, ensure_ascii=False) + "\n")
    else:
        typer.echo(f"secret_id (kid): {info['secret_id']}\nsecret: {secret}\n（只显示这一次）")


@viewers_app.command("token")
def viewers_token(
    merchant: str = typer.Option(...),
    viewer: str = typer.Option(..., help="the viewer id in the merchant's own system"),
    room: str = typer.Option(None, help="only valid in this room"),
    ttl: int = typer.Option(3600, help="seconds until it expires"),
) -> None:
    """Print a viewer token signed with the merchant's current secret (created if there is none)."""
    _, svc, _, tokens = _stores()
    try:
        if tokens.info(merchant) is None:
            tokens.rotate(merchant, "cli")
            typer.echo(
                f"（{merchant} 还没有密钥：已创建；在控制台或 `liveroom viewers secret --rotate` 查看/轮换）", err=True
            )
        token = tokens.mint(merchant, viewer, room=room, ttl_s=ttl)
    except LiveRoomError as e:
        raise _fail(e)
    finally:
        svc.close()
    sys.stdout.write(token + "\n")
