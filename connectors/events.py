"""The one shape of a live event, whatever platform it came from.

Every adapter (Douyin push, the signed webhook, Bilibili, a recorded replay) turns what it receives into
``LiveEvent``s; nothing past the adapter knows which platform spoke. ``parse_event`` is the strict way in
from a dict (a webhook body, a replay line): a clear ``MalformedEvent`` names the field, and the caller
dead-letters the raw input (connectors/deadletter.py) instead of losing it.

Identity: the platform's user id is never a LiveRoom viewer id. ``viewer_for`` maps it, per merchant, to a
stable id that cannot be guessed from the platform id. Unless the channel's bytes were signed by the
platform (or the merchant's own middleware vouching for its users), the viewer is *anonymous* — in the
``anon-`` namespace, so no profile, no coupons — exactly like an unauthenticated danmaku on the room socket.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from core.errors import BadRequest
from core.ids import ANON_PREFIX

Kind = Literal["comment", "gift", "like", "follow", "enter", "share", "order", "fan_club"]
KINDS: tuple[str, ...] = ("comment", "gift", "like", "follow", "enter", "share", "order", "fan_club")
PLATFORM_RE = r"^[a-z][a-z0-9_]{0,31}$"
MAX_TEXT = 2000


class MalformedEvent(BadRequest):
    """An event that cannot be read (bad JSON, a missing or wrong field, an unknown kind)."""

    code = "malformed_event"


class LiveEvent(BaseModel):
    """One normalised live event."""

    kind: Kind
    platform: str = Field(pattern=PLATFORM_RE)
    platform_room: str = Field(default="", max_length=128)  # the platform's room id (Douyin roomid, …)
    room_id: str = Field(default="", max_length=64)  # the LiveRoom room (filled in by the hub)
    msg_id: str = Field(min_length=1, max_length=128)  # the platform's message id: the dedup key
    user_id: str = Field(min_length=1, max_length=128)  # the platform's user id (never a viewer id)
    nickname: str = Field(default="", max_length=64)
    text: str = Field(default="", max_length=MAX_TEXT)
    ts: float = Field(gt=0)  # unix seconds (platform time)
    count: int = Field(default=1, ge=0, le=1_000_000)  # gifts, likes
    amount: float | None = Field(default=None, ge=0, le=10_000_000)  # order amount / gift value
    sku: str | None = Field(default=None, max_length=64)
    gift: str | None = Field(default=None, max_length=64)
    # Set by the adapter, never by the sender: whether the platform signed who this user is.
    signed_identity: bool = False
    # Filled in by the hub (per merchant): the LiveRoom viewer, verified only with a signed identity.
    viewer_id: str = ""
    verified: bool = False

    model_config = {"extra": "ignore"}

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return v.replace("\x00", "")

    def public(self) -> dict[str, Any]:
        """What may leave on the overlay: no platform user id."""
        return {"kind": self.kind, "platform": self.platform, "nickname": self.nickname, "text": self.text}


def viewer_for(merchant: str, platform: str, user_id: str, verified: bool) -> str:
    """The LiveRoom viewer id of a platform user for this merchant: stable, not reversible to the platform
    id, and in the anonymous namespace unless the platform signed the identity."""
    h = hashlib.sha256(f"liveroom-connector:{merchant}:{platform}:{user_id}".encode()).hexdigest()[:20]
    return f"{platform}.{h}" if verified else f"{ANON_PREFIX}{platform}-{h}"


def parse_event(data: Any, *, platform: str | None = None) -> LiveEvent:
    """A dict → ``LiveEvent`` (``platform`` forced when given); ``MalformedEvent`` names what is wrong."""
    if not isinstance(data, dict):
        raise MalformedEvent("an event is a JSON object")
    d = dict(data)
    d.pop("signed_identity", None)  # only the adapter decides that
    d.pop("viewer_id", None)
    d.pop("verified", None)
    if platform is not None:
        d["platform"] = platform
    if "ts" not in d:
        d["ts"] = time.time()
    if d.get("kind") not in KINDS:
        raise MalformedEvent(f"unknown event kind {d.get('kind')!r} (one of {', '.join(KINDS)})")
    if d["kind"] == "comment" and not str(d.get("text") or "").strip():
        raise MalformedEvent("a comment needs a non-empty 'text'")
    for k in ("msg_id", "user_id"):
        if isinstance(d.get(k), int):
            d[k] = str(d[k])
    try:
        return LiveEvent.model_validate(d)
    except ValidationError as e:
        first = e.errors()[0]
        raise MalformedEvent(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
