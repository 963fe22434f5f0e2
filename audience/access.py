"""Who is asking, on every public channel (HTTP ask, room WebSocket, voice socket, image upload, /v1).

``ViewerAccess`` is the one gate the channels call before anything reaches the agent:

- **the room** (``room``): it must exist and be open (else ``room_not_found``, 404); its merchant is the
  merchant — a request naming another one is ``wrong_merchant`` (403); a browser ``Origin`` outside the
  room's allowed origins is ``origin_not_allowed`` (403);
- **the viewer** (``viewer``): a valid viewer token makes them *verified* (created in the audience store
  on first contact, so campaigns open to everyone apply); a bad one is ``invalid_token`` (401); no token
  means *anonymous* with a server-assigned id — a client-chosen ``viewer_id`` is never used;
- **abuse limits** (``limit``): per client IP and per room, ``rate_limited`` (429 + Retry-After).

It knows nothing about HTTP: the channels map its errors to status codes, close codes and error frames.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from audience.identity import InvalidToken, ViewerTokens
from audience.rooms import Room, RoomRegistry
from core.abuse import Distinct, Gauge, Windows
from core.errors import Forbidden, LiveRoomError
from core.ids import anonymous_id
from core.settings import AccessSettings


class WrongMerchant(Forbidden):
    code = "wrong_merchant"


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


class RateLimited(LiveRoomError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, what: str, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(
            f"too many {what}; retry in {self.retry_after} s", detail={"retry_after": self.retry_after, "scope": what}
        )


@dataclass(frozen=True)
class Viewer:
    """The asking viewer as the channel may treat them."""

    merchant: str
    room_id: str
    viewer_id: str
    verified: bool

    def public(self) -> dict[str, Any]:
        return {"viewer_id": self.viewer_id, "verified": self.verified}


def new_anonymous_key() -> str:
    """A random session/connection key (what the anonymous-viewer cookie holds)."""
    return secrets.token_urlsafe(18)


class ViewerAccess:
    def __init__(self, rooms: RoomRegistry, tokens: ViewerTokens, audience: Any, settings: AccessSettings) -> None:
        self.rooms, self.tokens, self.audience, self.settings = rooms, tokens, audience, settings
        s = settings
        self._limits = {
            "questions/ip": Windows(s.questions_per_ip, 60),
            "questions/room": Windows(s.questions_per_room, 60),
            "uploads/ip": Windows(s.uploads_per_ip, 60),
            "uploads/room": Windows(s.uploads_per_room, 60),
            "sockets/ip": Windows(s.sockets_per_ip, 60),
        }
        self.open_sockets = Gauge(s.open_sockets_per_ip)
        self.device_viewers = Distinct(s.viewers_per_device, 3600)

    # --- the room ------------------------------------------------------------------------------
    def room(self, room_id: str, *, named_merchant: str | None = None, origin: str | None = None) -> Room:
        room = self.rooms.open_room(room_id)  # RoomNotFound (404) for unknown and closed rooms
        if named_merchant not in (None, "") and named_merchant != room.merchant:
            raise WrongMerchant("this room belongs to another merchant")
        if not room.origin_allowed(origin):
            raise OriginNotAllowed("this page may not embed this room")
        return room

    # --- the viewer ----------------------------------------------------------------------------
    def viewer(self, room: Room, token: str | None, anon_key: str | None, device: str | None = None) -> Viewer:
        """Verified from ``token`` (``InvalidToken`` if it is bad), else anonymous from ``anon_key``
        (the connection's or session cookie's random key; a fresh one if None). ``device`` (the session
        cookie or connection key) may present only so many distinct verified viewers an hour."""
        if token:
            v = self.tokens.verify(token, merchant=room.merchant, room=room.room_id)
            if device:
                wait = self.device_viewers.admit(f"{room.merchant}:{device}", v.viewer_id)
                if wait:
                    raise RateLimited("different viewers on this device", wait)
            self.audience.ensure_viewer(room.merchant, v.viewer_id)
            return Viewer(room.merchant, room.room_id, v.viewer_id, True)
        return Viewer(room.merchant, room.room_id, anonymous_id(anon_key or new_anonymous_key()), False)

    def integration_viewer(self, merchant: str, room_id: str, token: str | None, anon_key: str) -> Viewer:
        """For /v1 (the caller already proved it is the merchant with an API key): verified from a viewer
        token of that merchant, else anonymous keyed by the integration's own ``user`` string."""
        if token:
            v = self.tokens.verify(token, merchant=merchant, room=room_id)
            self.audience.ensure_viewer(merchant, v.viewer_id)
            return Viewer(merchant, room_id, v.viewer_id, True)
        return Viewer(merchant, room_id, anonymous_id(anon_key), False)

    # --- abuse limits --------------------------------------------------------------------------
    def limit(self, kind: str, *, ip: str, room_id: str | None = None) -> None:
        """Count one ``kind`` (questions | uploads | sockets) for this IP and room; ``RateLimited`` if over."""
        wait = self._limits[f"{kind}/ip"].hit(ip or "-")
        if wait:
            raise RateLimited(f"{kind} from this address", wait)
        if room_id is not None and f"{kind}/room" in self._limits:
            wait = self._limits[f"{kind}/room"].hit(room_id)
            if wait:
                raise RateLimited(f"{kind} in this room", wait)


__all__ = [
    "InvalidToken",
    "OriginNotAllowed",
    "RateLimited",
    "Viewer",
    "ViewerAccess",
    "WrongMerchant",
    "new_anonymous_key",
]
