"""Identifier validation shared by every layer (merchant, room and viewer ids)."""

from __future__ import annotations

import hashlib
import re

from core.errors import BadRequest

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MERCHANT_RE = ID_RE
ROOM_RE = ID_RE


class InvalidId(BadRequest):
    code = "invalid_id"


def check_merchant(merchant: str) -> str:
    if not isinstance(merchant, str) or not MERCHANT_RE.match(merchant):
        raise InvalidId(f"invalid merchant id {merchant!r}: use 1-64 letters, digits, '-' or '_'")
    return merchant


# Viewer ids a merchant vouches for (in a signed viewer token): what the audience store accepts.
VIEWER_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")

# Anonymous viewers get an id the server assigns (from their connection or session cookie), always in
# this namespace; a viewer token can never name an id in it, so an anonymous id is never a real viewer.
ANON_PREFIX = "anon-"


def is_anonymous(viewer_id: str) -> bool:
    return not viewer_id or viewer_id == "anonymous" or viewer_id.startswith(ANON_PREFIX)


def anonymous_id(key: str) -> str:
    """The server-assigned id for an anonymous connection/session ``key`` (a random value the server
    chose): stable for that key, unguessable from it, never equal to a verified viewer's id."""
    return ANON_PREFIX + hashlib.sha256(("liveroom-anon:" + key).encode()).hexdigest()[:20]


def check_viewer(viewer_id: str) -> str:
    """A verified viewer id: the audience store's id pattern, outside the anonymous namespace."""
    if not isinstance(viewer_id, str) or not VIEWER_RE.match(viewer_id) or is_anonymous(viewer_id):
        raise InvalidId(f"invalid viewer id {viewer_id!r}: 1-64 letters, digits or _.:- (not anon-…)")
    return viewer_id
