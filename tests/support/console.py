"""Helpers for tests and demos: an app with the console wired in, accounts, authenticated clients."""

from __future__ import annotations

from contextlib import contextmanager

from console.guard import install_guard


def wire(app) -> None:
    """Make sure ``app`` has the console routes and the guard (a no-op once server.py includes them)."""
    from console.api import router

    if not any(getattr(r, "path", None) == "/console/login" for r in app.router.routes):
        app.include_router(router)
    install_guard(app)


def console_app(container, config=None):
    """``server.create_app`` for ``container`` (no LLM start-up), with the console wired."""
    from server import create_app

    app = create_app(container, start_llm=False)
    wire(app)
    if config is not None:
        app.state.console_config = config
    return app


def login(client, username: str, password: str) -> str:
    """Log a TestClient in through the login form; returns the session's CSRF token."""
    import re

    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf": csrf, "next": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303, (r.status_code, r.text[:300])
    home = client.get(r.headers["location"])
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', home.text)
    assert m, home.text[:300]
    return m.group(1)


def make_container(data_dir, demo_root=None, embedder=None, llm=None, database_url=None):
    """A container on ``data_dir`` (a copy of ``demo_root``'s knowledge base if given), no LLM start-up;
    its SQL stores on ``database_url`` if given, else the data dir's SQLite file."""
    import shutil
    from pathlib import Path

    from core.settings import Settings
    from liveroom.container import Container

    data_dir = Path(data_dir)
    if demo_root is not None and not (data_dir / "kb").exists():
        shutil.copytree(Path(demo_root) / "kb", data_dir / "kb")
    db = {"database_url": database_url} if database_url else {}
    c = Container(Settings(data_dir=data_dir, llm_autostart=False, **db))
    if embedder is not None:
        c.__dict__["embedder"] = embedder
    if llm is not None:
        c.llm = llm
        c.agent.llm = llm
    return c


@contextmanager
def backend_container(backend: str, data_dir, demo_root=None, embedder=None, llm=None):
    """`make_container` with its SQL stores on ``backend``: the data dir's SQLite file (as the app runs by
    default) or a throwaway PostgreSQL schema (tests/support/audience.py), dropped afterwards."""
    from tests.support.audience import store_url

    if backend == "sqlite":
        yield make_container(data_dir, demo_root, embedder, llm)
        return
    with store_url(backend, data_dir) as url:
        c = make_container(data_dir, demo_root, embedder, llm, database_url=url)
        try:
            yield c
        finally:
            if "audience" in c.__dict__:  # let the schema go: no pooled connection left on it
                c.audience.close()


class FakeLLM:
    """A scripted stand-in for the model (the real one is exercised in test_agent_model.py): it answers
    with the first fact it is given, opening with the system prompt's ``开场白：…`` line if there is
    one — so a prompt edit visibly changes the answer."""

    def __init__(self) -> None:
        self.calls: list[list[dict]] = []

    async def capabilities(self):
        from agent.llm import Capabilities

        return Capabilities(native_tools=False, json_schema="none")

    def _reply(self, messages: list[dict]) -> str:
        import re

        self.calls.append(messages)
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = next((m["content"] for m in messages if m["role"] == "user"), "")
        m = re.search(r"开场白[:：]\s*([^\n<]{1,12})", system)
        opener = m.group(1).strip() if m else ""
        fact = next((ln[2:].strip() for ln in user.splitlines() if ln.startswith("- ")), "这个我帮你问下主播")
        fact = re.sub(r"（[A-Za-z]+-\d+）", "", fact)[:40].rstrip("。")
        return f"{opener}{fact}。"

    async def stream(self, messages, max_tokens: int = 120, temperature: float = 0.3):
        for piece in self._reply(messages):
            yield piece

    async def complete(self, messages, max_tokens: int = 120, temperature: float = 0.3) -> str:
        return self._reply(messages)

    async def choose_tools(self, messages, tools):
        return []


class ServerThread:
    """Serve an app with uvicorn on a free loopback port in a background thread (browser tests)."""

    def __init__(self, app):
        import socket

        import uvicorn

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", ws="websockets")
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = None

    def __enter__(self) -> ServerThread:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, name="console-test-server", daemon=True)
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        if self.thread:
            self.thread.join(timeout=15)


def grant(client, merchant: str = "demo", role: str = "operator", auto_claim_rooms: bool = True) -> str:
    """Authenticate a started TestClient as an integration of ``merchant`` (an API token in its default
    headers) — for tests of routes the guard protects. With ``auto_claim_rooms``, room ids the test uses
    are registered to ``merchant`` on first use. Returns the raw token."""
    import uuid

    from console.service import get_console

    cs = get_console(client.app)
    cs.config.auto_claim_rooms = auto_claim_rooms
    cs.accounts.ensure_merchant(merchant)
    _, raw = cs.accounts.create_token(merchant, f"test-{uuid.uuid4().hex[:6]}", role, "test")
    client.headers["Authorization"] = f"Bearer {raw}"
    return raw
