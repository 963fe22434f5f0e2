"""Identifier validation shared by every layer (merchant, room and viewer ids)."""

from __future__ import annotations

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
