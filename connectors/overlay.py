"""The OBS overlay's feed and its room-scoped token.

The overlay page (``/overlay/{room_id}?token=…``, web/overlay.html) is a transparent browser source. Its
socket (``/ws/overlay/{room_id}?token=…``) gets JSON frames:

- ``ready`` {room_id, label} once;
- ``answer`` {question, answer, label, channel, at} — every answer the agent gives in the room, from any
  channel (the room socket, connectors, the host), as soon as it is finished (from the answer bus);
- ``caption`` {text, kind, at} — the virtual host's current sentence (the room's text track);
- ``hot`` {questions: [{label, viewers}]} — the hot question clusters, when they change (≤ 1/s);
- ``event`` {kind, nickname, count} — gifts, follows, fan-club joins (for a thank-you ticker);
- ``suggestion`` {label, message, say} — talking points for the human host (the ``?view=prompter`` page);
- ``audio`` {rate, bytes} followed by one binary frame of PCM s16le mono — the virtual host's speech.

Token: ``ovt1.<payload>.<mac>``, payload = base64url JSON ``{"m": merchant, "r": room, "exp": unix}``, mac
= HMAC-SHA256 with the app's overlay key (kept in the connector store: tokens survive restarts). A token
opens one room only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from core.errors import LiveRoomError
from host.pipeline import Bus

DEFAULT_TTL_S = 30 * 86_400  # an OBS scene is set up once; rotate by minting a new one


class BadOverlayToken(LiveRoomError):
    code = "invalid_overlay_token"
    http_status = 401


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def mint(key: bytes, merchant: str, room_id: str, ttl_s: float = DEFAULT_TTL_S, now: float | None = None) -> str:
    exp = int((time.time() if now is None else now) + ttl_s)
    payload = _b64(json.dumps({"m": merchant, "r": room_id, "exp": exp}, separators=(",", ":")).encode())
    mac = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"ovt1.{payload}.{mac}"


def verify(key: bytes, token: str | None, room_id: str, now: float | None = None) -> str:
    """The token's merchant, if it is valid for ``room_id``; ``BadOverlayToken`` otherwise."""
    if not token:
        raise BadOverlayToken("an overlay token is required (?token=, from the console)")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "ovt1":
        raise BadOverlayToken("malformed overlay token")
    want = _b64(hmac.new(key, parts[1].encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(want.encode(), parts[2].encode()):
        raise BadOverlayToken("overlay token signature does not match")
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, json.JSONDecodeError):
        raise BadOverlayToken("malformed overlay token") from None
    if claims.get("r") != room_id:
        raise BadOverlayToken("this overlay token is for another room")
    if float(claims.get("exp", 0)) < (time.time() if now is None else now):
        raise BadOverlayToken("overlay token expired")
    return str(claims["m"])


class OverlayFeeds:
    """One pub/sub bus per room for what the overlay shows (subscribers have bounded queues: a stalled
    OBS drops its oldest frames, never the room's)."""

    def __init__(self) -> None:
        self._buses: dict[str, Bus] = {}
        self.answers: dict[str, list[dict[str, Any]]] = {}  # the last few per room (shown on connect)

    def bus(self, room_id: str) -> Bus:
        b = self._buses.get(room_id)
        if b is None:
            b = self._buses[room_id] = Bus()
        return b

    def publish(self, room_id: str, topic: str, item: dict[str, Any]) -> None:
        if topic == "answer":
            keep = self.answers.setdefault(room_id, [])
            keep.append(item)
            del keep[:-5]
        b = self._buses.get(room_id)
        if b is not None:
            b.publish(topic, item)


class OverlayAudioOut:
    """A host ``AudioOut`` (host/speech.py) whose PCM goes to the room's overlay (and is counted)."""

    def __init__(self, feeds: OverlayFeeds, room_id: str):
        self.feeds, self.room_id = feeds, room_id
        self.seconds = 0.0
        self.bytes = 0

    def write(self, pcm: bytes, rate: int) -> None:
        self.bytes += len(pcm)
        self.seconds += len(pcm) / 2 / rate
        chunk = 16_000  # ≈ 0.36 s at 22.05 kHz: the page can start playing before the sentence ends
        for i in range(0, len(pcm), chunk):
            self.feeds.publish(self.room_id, "audio", {"rate": rate, "pcm": pcm[i : i + chunk]})

    def close(self) -> None:
        pass
