"""Test helpers for the public channels: rooms and signed viewer tokens (docs/integration.md)."""

from __future__ import annotations

import time
from typing import Any


def open_room(container, room_id: str = "r1", merchant: str = "demo", **kw: Any):
    """The open room ``room_id`` of ``merchant`` (created if missing)."""
    return container.rooms.ensure(merchant, room_id, room_id, "test", **kw)


def viewer_secret(container, merchant: str = "demo") -> tuple[str, str]:
    """(secret_id, secret) of the merchant's viewer-token secret, created if there is none.

    The secret is only returned when it is created here; an existing one is read from the store (tests only)."""
    tokens = container.viewer_tokens
    keys = [k for k in tokens._keys(merchant) if k[2] is None]
    if not keys:
        tokens.rotate(merchant, "test")
        keys = [k for k in tokens._keys(merchant) if k[2] is None]
    return keys[0][0], keys[0][1]


def viewer_token(
    container, viewer_id: str, merchant: str = "demo", room: str | None = None, ttl_s: float = 3600
) -> str:
    """A valid viewer token, as the merchant's backend would mint it."""
    viewer_secret(container, merchant)
    return container.viewer_tokens.mint(merchant, viewer_id, room=room, ttl_s=ttl_s)


def forged_token(viewer_id: str, merchant: str = "demo", room: str | None = None, exp_in: float = 3600) -> str:
    """A well-formed token signed with a secret nobody issued."""
    import jwt

    claims: dict[str, Any] = {"merchant": merchant, "viewer_id": viewer_id, "exp": int(time.time() + exp_in)}
    if room:
        claims["room"] = room
    return jwt.encode(claims, "lvs_not-the-merchants-secret-0123456789abcdef", algorithm="HS256")


def signed_token(container, claims: dict[str, Any], merchant: str = "demo") -> str:
    """A token over arbitrary ``claims`` signed with the merchant's real secret (expired ones, …)."""
    import jwt

    sid, secret = viewer_secret(container, merchant)
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": sid})


def agent_key(app, merchant: str = "demo", name: str = "agent") -> dict[str, str]:
    """``Authorization`` header with a fresh merchant API token of role ``agent`` (for /v1)."""
    from console.service import get_console

    _tok, raw = get_console(app).accounts.create_token(merchant, name, "agent", "test")
    return {"Authorization": f"Bearer {raw}"}
