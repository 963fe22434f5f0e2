"""The first-run code and the start-up announcement (``make run``): kept apart from the setup routes
(console/setup.py) so the server's start-up and tests can use them without importing the console's routes."""

from __future__ import annotations

import secrets

SETUP_PATH = "/console/setup"


def _merchant(app) -> str:
    return app.state.container.settings.default_merchant


def pending_code(app) -> str | None:
    """The one-time setup code while the default merchant has no owner (created on first call)."""
    from console.service import get_console

    if get_console(app).accounts.owners(_merchant(app)) > 0:
        app.state.setup_code = None
        return None
    code = getattr(app.state, "setup_code", None)
    if code is None and not getattr(app.state, "setup_used", False):
        code = app.state.setup_code = "-".join(secrets.token_hex(2).upper() for _ in range(4))
    return code


def announce(app) -> None:
    """At start-up: print where to set the console up, and the code, while there is no owner yet."""
    code = pending_code(app)
    s = app.state.container.settings
    url = f"http://{s.host}:{s.port}"
    if code:
        print(
            f"\n  LiveRoom console (first run): open {url}{SETUP_PATH} on this machine\n"
            f"  one-time owner setup code: {code}\n",
            flush=True,
        )
    else:
        print(f"\n  LiveRoom console: {url}/console/\n", flush=True)
