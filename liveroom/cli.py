"""`liveroom` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from knowledge.importers import KBImportError
from knowledge.store import KBError
from liveroom.container import Container

app = typer.Typer(help="LiveRoom: an AI agent for e-commerce live rooms.", no_args_is_help=True)
kb_app = typer.Typer(help="Merchant knowledge base: import, search, versions.", no_args_is_help=True)
eval_app = typer.Typer(help="Quality evaluations.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")

err = Console(stderr=True)
out = Console()

from liveroom.commands.access import rooms_app, viewers_app  # noqa: E402
from liveroom.commands.audience import audience_app, audience_bench_app, profile_app  # noqa: E402
from liveroom.commands.connectors import connectors_app  # noqa: E402
from liveroom.commands.console import console_app  # noqa: E402
from liveroom.commands.copy import ab_app, copy_command  # noqa: E402
from liveroom.commands.host import danmaku_bench_command, host_command  # noqa: E402
from liveroom.commands.models import models_app  # noqa: E402

app.add_typer(models_app, name="models")
app.add_typer(console_app, name="console")
app.add_typer(connectors_app, name="connectors")
app.add_typer(profile_app, name="profile")
app.add_typer(audience_app, name="audience")
app.add_typer(rooms_app, name="rooms")
app.add_typer(viewers_app, name="viewers")
bench_app.registered_commands.extend(audience_bench_app.registered_commands)  # bench coupons / bench events
app.command("host")(host_command)
app.command("copy")(copy_command)
app.add_typer(ab_app, name="ab")
bench_app.command("danmaku")(danmaku_bench_command)


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _progress_bar(enabled: bool):
    """A rich progress bar driven by the KB's (stage, done, total) callbacks; on stderr."""
    if not enabled:
        return None, None
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def cb(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=max(total, 1))
        bar.update(tasks[stage], completed=done, total=max(total, 1))

    return bar, cb


@kb_app.command("import")
def kb_import(
    paths: list[Path] = typer.Argument(..., help="Product JSON/CSV/XLSX, Markdown/TXT documents, Q&A CSV."),
    merchant: str = typer.Option(..., "--merchant", "-m"),
    replace: bool = typer.Option(False, help="Start from an empty catalog instead of merging into the active one."),
    if_changed: bool = typer.Option(False, "--if-changed", help="Create no version when nothing changed."),
    as_json: bool = typer.Option(False, "--json"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Import files as a new KB version and switch to it atomically."""
    c = Container()
    files = _expand(paths)
    bar, cb = _progress_bar(not quiet and not as_json and sys.stderr.isatty())
    try:
        if bar:
            with bar:
                info = c.kb.import_files(merchant, files, replace=replace, progress=cb, if_changed=if_changed)
        else:
            info = c.kb.import_files(
                merchant, files, replace=replace, if_changed=if_changed, progress=_line_progress if not quiet else None
            )
    except KBImportError as e:
        for issue in e.issues:
            err.print(f"[red]error[/red] {escape(str(issue))}")
        err.print(f"[red]import rejected ({len(e.issues)} problem(s)); the active version is unchanged[/red]")
        raise typer.Exit(2)
    except KBError as e:
        err.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(2)
    if as_json:
        _print_json(
            {
                "merchant": info.merchant,
                "version": info.version,
                "products": info.products,
                "facts": info.facts,
                "embedded": info.embedded,
            }
        )
    else:
        print(info.version)


def _line_progress(stage: str, done: int, total: int) -> None:
    """Progress for non-terminals (make, CI logs): a line per stage step, not a redraw."""
    err.print(f"{stage}: {done}/{total}", highlight=False)


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(
                sorted(
                    x
                    for x in p.rglob("*")
                    if x.is_file()
                    and not x.name.startswith(".")
                    and x.suffix.lower() in {".json", ".csv", ".xlsx", ".md", ".markdown", ".txt"}
                )
            )
        else:
            files.append(p)
    return files


@kb_app.command("search")
def kb_search(
    query: str,
    merchant: str = typer.Option(..., "--merchant", "-m"),
    k: int = typer.Option(5, "-k", min=1, max=100),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Hybrid search (dense + BM25 + product boost), as the agent sees it."""
    c = Container()
    try:
        version, hits = c.kb.search(merchant, query, k=k)
    except KBError as e:
        err.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(2)
    if as_json:
        _print_json(
            {
                "version": version,
                "results": [
                    {"sku": h.sku, "name": h.name, "fact_id": h.fact_id, "text": h.text, "score": h.score} for h in hits
                ],
            }
        )
        return
    t = Table("score", "sku", "fact", "text", title=f"{merchant} {version}")
    for h in hits:
        t.add_row(f"{h.score:.4f}", h.sku or "", h.fact_id, h.text)
    out.print(t)


@kb_app.command("versions")
def kb_versions(
    merchant: str = typer.Option(..., "--merchant", "-m"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """List KB versions; the active one is marked."""
    vs = Container().kb.versions(merchant)
    if as_json:
        _print_json([v.model_dump() for v in vs])
        return
    t = Table("", "version", "created", "products", "facts", "embedded", "note")
    for v in vs:
        t.add_row(
            "*" if v.active else "",
            v.version,
            v.created_at[:19],
            str(v.products),
            str(v.facts),
            str(v.embedded),
            v.note,
        )
    out.print(t)


@kb_app.command("restore")
def kb_restore(version: str, merchant: str = typer.Option(..., "--merchant", "-m")) -> None:
    """Make an earlier version active again (atomic)."""
    try:
        info = Container().kb.restore(merchant, version)
    except KBError as e:
        err.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(2)
    print(info.version)


@eval_app.command("retrieval")
def eval_retrieval(
    merchant: str = typer.Option("evaldemo", "--merchant", "-m"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """Recall@1/@3 of the demo question set: dense-only, BM25-only and hybrid side by side."""
    from evals.retrieval import main as run

    run(merchant=merchant, as_json=as_json)


@eval_app.command("merchant")
def eval_merchant(
    merchant: str = typer.Option(..., "--merchant", "-m"),
    version: str | None = typer.Option(None, "--version", help="A draft or old version (default: the active one)."),
    as_json: bool = typer.Option(False, "--json"),
    pace: float = typer.Option(0.0, help="Sleep this × each case's time between cases (0: full speed)."),
    all_cases: bool = typer.Option(False, "--all", help="Run every case (default: a big set is bounded, see docs)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress."),
) -> None:
    """Run the merchant's regression set (docs/regression.md) on a version through the production agent,
    against the active version; exit 1 when a case that passed on the active version fails on it."""
    from regression.runner import brief

    c = Container()
    bound = None if all_cases else "default"
    bar, cb = _progress_bar(not quiet and not as_json and sys.stderr.isatty())
    try:
        if bar:
            with bar:
                report = c.regression.run(merchant, version, progress=cb, pace=pace, max_cases=bound)
        else:
            report = c.regression.run(merchant, version, progress=None, pace=pace, max_cases=bound)
    except KBError as e:
        err.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(2)
    b = brief(report)
    if as_json:
        _print_json(b)
    else:
        before, after = report["before"], report["after"]
        print(
            f"{b['version']} vs {b['base_version']}: {b['passed']}/{b['cases']} passed "
            f"(before {before['passed']}/{before['cases']}), refusals ok {b['refusals_ok']}/{after['probes']}, "
            f"{len(b['changed'])} answers changed, {len(b['regressions'])} regressions, {b['elapsed_s']} s"
        )
        for r in report["regressions"][:20]:
            print(f"  REGRESSION {r['id']}: {r['question']} -> {r['after']['answer'][:80]}  {r['after']['reasons']}")
    if b["blocked"]:
        raise typer.Exit(1)


@app.command("serve")
def serve(
    host: str | None = None,
    port: int | None = None,
    workers: int = typer.Option(1, min=1, help="worker processes on one port (several: set LIVEROOM_REDIS_URL)"),
) -> None:
    """Start the HTTP/WebSocket server."""

    import uvicorn

    from core.settings import Settings

    s = Settings()
    # Frames up to 1 MiB reach the app (which answers oversized ones with an error frame);
    # beyond that the protocol layer closes the socket.
    options: dict = dict(
        log_level="info",
        ws_max_size=1 << 20,
        # danmaku frames are a few hundred bytes: compressing them costs CPU per frame on both ends and a zlib
        # context per open socket, for almost no bytes saved
        ws_per_message_deflate=False,
        # X-Forwarded-For only from the proxies configured (none by default: the socket peer is the client)
        proxy_headers=bool(s.access.proxies()),
        forwarded_allow_ips=",".join(s.access.proxies()) or None,
    )
    if workers <= 1:
        uvicorn.run("server:create_app", factory=True, host=host or s.host, port=port or s.port, **options)
        return
    from liveroom.workers import serve_workers

    if not s.redis_url:
        print(
            "warning: --workers without LIVEROOM_REDIS_URL: each worker keeps its own rate limits, login "
            "limits and memory (a viewer's limits do not follow them across workers)",
            file=sys.stderr,
        )
    model = None
    if s.llm_backend == "embedded" and s.llm_autostart:
        model = _one_model_for_all(s)
    try:
        serve_workers(workers, host or s.host, port or s.port, options, tick=model.tick if model else None)
    finally:
        if model is not None:
            model.server.stop_sync()


class _SharedModel:
    """The embedded model server, started once by ``serve --workers`` and shared by every worker through
    its OpenAI-compatible URL (one 2 GB model per machine, not per worker); restarted if it dies."""

    def __init__(self, server) -> None:
        self.server = server
        self.last_check = 0.0

    def tick(self) -> None:
        import time

        now = time.monotonic()
        if now - self.last_check < 2.0:
            return
        self.last_check = now
        p = self.server.proc
        if p is not None and p.poll() is not None:
            print(f"embedded LLM exited ({p.returncode}); starting it again", file=sys.stderr)
            self.server.restarts += 1
            self.server._spawn()


def _one_model_for_all(s) -> _SharedModel:
    import os

    from agent.embedded import EmbeddedLLMServer
    from core.provision import model_path

    server = EmbeddedLLMServer(
        model_path(s, s.embedded_model),
        threads=s.llm_threads,
        ctx=s.llm_ctx,
        port=s.llm_port,
        log_path=s.data_dir / "logs" / "embedded-llm.log",
    )
    server._spawn()  # not waited for: until it is ready the workers answer on the fast path
    # every worker (spawned after this) reads these: the shared server as an OpenAI-compatible backend
    os.environ.update(
        LIVEROOM_LLM_BACKEND="openai", LIVEROOM_LLM_BASE_URL=server.base_url, LIVEROOM_LLM_MODEL=server.alias
    )
    print(f"embedded LLM for every worker: {server.base_url}", file=sys.stderr)
    return _SharedModel(server)


def _answer_once(merchant: str, viewer: str, question: str, use_llm: bool):
    import asyncio

    from agent.messages import ViewerMessage

    async def run():
        c = Container()
        try:
            if use_llm:
                await c.start_llm()
            return await c.agent.answer(
                ViewerMessage(merchant=merchant, viewer_id=viewer, verified=True, text=question, channel="api")
            )
        finally:
            await c.aclose()

    return asyncio.run(run())


@app.command("ask")
def ask(
    question: str,
    merchant: str = typer.Option(..., "--merchant", "-m"),
    viewer: str = typer.Option("cli-viewer", "--viewer"),
    as_json: bool = typer.Option(False, "--json"),
    no_llm: bool = typer.Option(False, "--no-llm", help="Fast path only; don't start the LLM backend."),
) -> None:
    """Ask the agent one question, as a viewer would."""
    try:
        ans = _answer_once(merchant, viewer, question, not no_llm)
    except KBError as e:
        err.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(2)
    if as_json:
        _print_json(
            {
                "answer": ans.answer,
                "citations": [c.model_dump() for c in ans.citations],
                "tool_calls": [t.model_dump(include={"name", "arguments", "result"}) for t in ans.tool_calls],
                "refused": ans.refused,
                "path": ans.path,
                "latency_ms": ans.latency_ms,
            }
        )
    else:
        print(f"{ans.answer}  [{ans.label}]")
        err.print(
            f"path={ans.path} latency={ans.latency_ms}ms citations={[c.fact_id for c in ans.citations]}",
            highlight=False,
        )


@app.command("chat")
def chat(
    merchant: str = typer.Option(..., "--merchant", "-m"),
    viewer: str = typer.Option("cli-viewer", "--viewer"),
    no_llm: bool = typer.Option(False, "--no-llm"),
) -> None:
    """Interactive terminal chat with the agent (Ctrl-D to quit)."""
    import asyncio

    from agent.messages import AnswerDelta, ViewerMessage

    async def run():
        c = Container()
        if not no_llm:
            err.print("starting the LLM backend…")
            await c.start_llm()
            await c.agent.warm_up(merchant)
        try:
            while True:
                try:
                    q = await asyncio.to_thread(input, "观众> ")
                except EOFError:
                    break
                if not q.strip():
                    continue
                out.print("助理> ", end="")
                async for ev in c.agent.stream(
                    ViewerMessage(merchant=merchant, viewer_id=viewer, verified=True, text=q)
                ):
                    if isinstance(ev, AnswerDelta):
                        out.print(ev.text, end="", highlight=False)
                    else:
                        out.print(
                            f"  [dim][{ev.label} · {ev.path} · {ev.latency_ms:.0f}ms · "
                            f"{', '.join(c.fact_id for c in ev.citations)}][/dim]"
                        )
        finally:
            await c.aclose()

    asyncio.run(run())


if __name__ == "__main__":
    app()
