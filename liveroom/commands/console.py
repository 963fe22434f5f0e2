"""Console accounts from the command line (the first owner of a merchant, tokens for integrations).

    liveroom console add-user --merchant demo --username alice --role owner   # asks for the password
    liveroom console add-token --merchant demo --name erp-sync --role operator
    liveroom console users --merchant demo

Uses the configured database (``LIVEROOM_DATABASE_URL`` / ``LIVEROOM_DATA_DIR``), like the server.
"""

from __future__ import annotations

import sys

import typer

from audience.service import AudienceService
from console.audit import AuditLog
from console.auth import Accounts, AuthError
from core.settings import Settings

console_app = typer.Typer(help="Console accounts and API tokens", no_args_is_help=True, add_completion=False)


def _accounts() -> tuple[Accounts, AuditLog, AudienceService]:
    svc = AudienceService.from_settings(Settings())
    return Accounts(svc.engine), AuditLog(svc.engine), svc


@console_app.command("add-user")
def add_user(
    merchant: str = typer.Option(...),
    username: str = typer.Option(...),
    role: str = typer.Option("owner", help="owner | operator | viewer"),
    password: str = typer.Option(None, help="default: $LIVEROOM_CONSOLE_PASSWORD, else prompted"),
    display_name: str = typer.Option(""),
) -> None:
    """Create a console user (and the merchant account if it is new)."""
    configured = Settings().console.password
    pw = (
        password
        or (configured.get_secret_value() if configured else None)
        or typer.prompt("密码", hide_input=True, confirmation_prompt=True)
    )
    acc, audit, svc = _accounts()
    try:
        u = acc.create_user(merchant, username, pw, role, display_name)
    except AuthError as e:
        typer.echo(f"错误：{e}", err=True)
        raise typer.Exit(1)
    finally:
        svc.close()
    audit.record(merchant, "cli", "user.create", username, None, {"username": username, "role": role})
    typer.echo(f"已创建 {u['username']}（{u['role']}）@ {merchant}")


@console_app.command("add-token")
def add_token(
    merchant: str = typer.Option(...),
    name: str = typer.Option(...),
    role: str = typer.Option("operator", help="operator | viewer | agent (/v1/chat/completions only)"),
) -> None:
    """Create an API token; it is printed once."""
    acc, audit, svc = _accounts()
    try:
        acc.ensure_merchant(merchant)
        tok, raw = acc.create_token(merchant, name, role, "cli")
    except AuthError as e:
        typer.echo(f"错误：{e}", err=True)
        raise typer.Exit(1)
    finally:
        svc.close()
    audit.record(merchant, "cli", "token.create", name, None, {"token_id": tok["token_id"], "role": role})
    sys.stdout.write(raw + "\n")


@console_app.command("users")
def users(merchant: str = typer.Option(...)) -> None:
    acc, _, svc = _accounts()
    try:
        for u in acc.users(merchant):
            typer.echo(f"{u['username']}\t{u['role']}\t{'disabled' if u['disabled'] else 'active'}")
    finally:
        svc.close()
