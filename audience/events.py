"""Behaviour events: validation of one batch item into a `ParsedEvent`, with clear per-item errors."""

from __future__ import annotations

import math
from dataclasses import dataclass

from audience.rules import EVENT_TYPES, AudienceRules
from core.errors import BadRequest
from core.timeutil import BadTimestamp, parse_ts

ALIASES = {
    "heartbeat": "watch",
    "watch_heartbeat": "watch",
    "click": "product_click",
    "cart": "add_to_cart",
    "order": "purchase",
    "claim_coupon": "coupon_claim",
    "use_coupon": "coupon_use",
}
_TYPES = frozenset(EVENT_TYPES)
_NEEDS_SKU = frozenset({"product_click", "add_to_cart"})
MAX_AMOUNT = 10_000_000.0  # yuan; anything above is a unit mistake (fen sent as yuan?)


class EventError(BadRequest):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(slots=True)
class ParsedEvent:
    event_id: str
    viewer_id: str
    type: str
    ts: float
    sku: str | None = None
    category: str | None = None
    seconds: float | None = None
    amount_fen: int | None = None
    campaign_id: str | None = None
    coupon_id: str | None = None
    order_id: str | None = None
    session_id: str | None = None
    coupon_used: bool = False

    def row(self, merchant: str, received_at: float) -> dict:
        return {
            "merchant": merchant,
            "event_id": self.event_id,
            "viewer_id": self.viewer_id,
            "type": self.type,
            "ts": self.ts,
            "received_at": received_at,
            "sku": self.sku,
            "category": self.category,
            "seconds": self.seconds,
            "amount_fen": self.amount_fen,
            "campaign_id": self.campaign_id,
            "coupon_id": self.coupon_id,
            "order_id": self.order_id,
            "session_id": self.session_id,
        }


def _ident(item: dict, key: str, *, required: bool, max_len: int = 128) -> str | None:
    v = item.get(key)
    if v is None or v == "":
        if required:
            raise EventError("missing_field", f"'{key}' is required")
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise EventError("bad_field", f"'{key}' must be a string")
    s = str(v).strip()
    if not s or len(s) > max_len:
        raise EventError("bad_field", f"'{key}' must be 1-{max_len} characters")
    return s


def _number(item: dict, key: str, lo: float, hi: float) -> float | None:
    v = item.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise EventError("bad_field", f"'{key}' must be a number")
    if not lo <= v <= hi:
        raise EventError("bad_field", f"'{key}' must be between {lo:g} and {hi:g}, got {v!r}")
    return float(v)


def parse_event(item: object, merchant: str, rules: AudienceRules, now: float) -> ParsedEvent:
    if not isinstance(item, dict):
        raise EventError("invalid", f"each event must be a JSON object, got {type(item).__name__}")
    m = item.get("merchant")
    if m is not None and m != merchant:
        raise EventError("merchant_mismatch", f"event is for merchant {m!r} but the batch is for {merchant!r}")
    event_id = _ident(item, "event_id", required=True)
    viewer_id = _ident(item, "viewer_id", required=True)
    raw_type = item.get("type")
    if not isinstance(raw_type, str) or not raw_type:
        raise EventError("missing_field", f"'type' is required: one of {', '.join(EVENT_TYPES)}")
    typ = ALIASES.get(raw_type, raw_type)
    if typ not in _TYPES:
        raise EventError("unknown_type", f"unknown event type {raw_type!r}; expected one of: {', '.join(EVENT_TYPES)}")
    er = rules.events
    raw_ts = item.get("ts")
    if raw_ts is None:
        ts = now
    else:
        try:
            ts = parse_ts(raw_ts)
        except BadTimestamp as e:
            raise EventError("bad_timestamp", str(e)) from None
        if ts > now + er.max_future_seconds:
            raise EventError(
                "bad_timestamp",
                f"timestamp {raw_ts!r} is {ts - now:.0f}s in the future "
                f"(tolerance {er.max_future_seconds:g}s); check the clock or units",
            )
        if ts < now - er.max_age_days * 86400:
            raise EventError("bad_timestamp", f"timestamp {raw_ts!r} is older than {er.max_age_days:g} days")
    ev = ParsedEvent(
        event_id,
        viewer_id,
        typ,
        ts,
        sku=_ident(item, "sku", required=typ in _NEEDS_SKU, max_len=64),
        category=_ident(item, "category", required=False, max_len=64),
        campaign_id=_ident(item, "campaign_id", required=False, max_len=64),
        coupon_id=_ident(item, "coupon_id", required=False, max_len=64),
        order_id=_ident(item, "order_id", required=False),
        session_id=_ident(item, "session_id", required=False),
    )
    if typ == "watch":
        s = _number(item, "seconds", 0, er.max_heartbeat_seconds)
        ev.seconds = er.heartbeat_seconds if s is None else s
    elif typ == "leave":
        ev.seconds = _number(item, "seconds", 0, 86400)
    amount = _number(item, "amount", 0, MAX_AMOUNT)
    if typ == "purchase" and amount is None:
        raise EventError("missing_field", "a purchase needs 'amount' (the order value in yuan)")
    if amount is not None:
        ev.amount_fen = round(amount * 100)
    cu = item.get("coupon_used")
    if cu is not None and not isinstance(cu, bool):
        raise EventError("bad_field", "'coupon_used' must be true or false")
    ev.coupon_used = bool(cu) or (typ == "purchase" and ev.coupon_id is not None)
    return ev
