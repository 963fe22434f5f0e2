"""The generic signed webhook: any platform, or a merchant's own middleware, posts live events.

    POST /connectors/webhook/{connector_id}
    X-LiveRoom-Timestamp: <unix seconds>
    X-LiveRoom-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    Content-Type: application/json

    {"events": [{"kind": "comment", "msg_id": "m-1", "user_id": "u-42", "text": "敏感肌能用吗", "ts": 1750000000}]}

(a bare list, or a single event object, is accepted too). The secret is the connector's, created in the
console and shown once. A request outside the replay window (``window_s``, 300 s) or with a wrong signature
is refused (401) before the body is read as JSON; a signed body that cannot be read is dead-lettered (400,
kept and replayable). Events are idempotent by ``msg_id``: sending a batch twice answers it once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from connectors.events import LiveEvent, MalformedEvent, parse_event
from core.errors import LiveRoomError

TS_HEADER = "x-liveroom-timestamp"
SIG_HEADER = "x-liveroom-signature"
MAX_BATCH = 1000


class BadWebhookSignature(LiveRoomError):
    code = "bad_signature"
    http_status = 401


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    headers: dict[str, str], body: bytes, secret: str, *, window_s: float = 300.0, now: float | None = None
) -> None:
    h = {k.lower(): v for k, v in headers.items()}
    ts, sig = h.get(TS_HEADER, ""), h.get(SIG_HEADER, "")
    if not ts or not sig:
        raise BadWebhookSignature(f"missing {TS_HEADER} or {SIG_HEADER}", detail={"reason": "missing_headers"})
    if not secret:
        raise BadWebhookSignature("this connector has no secret", detail={"reason": "no_secret"})
    if not hmac.compare_digest(sign(secret, ts, body).encode(), sig.strip().encode()):
        raise BadWebhookSignature("signature does not match", detail={"reason": "bad_signature"})
    try:
        t = float(ts)
    except ValueError:
        raise BadWebhookSignature("timestamp is not a number", detail={"reason": "bad_timestamp"}) from None
    now = time.time() if now is None else now
    if abs(now - t) > window_s:
        raise BadWebhookSignature(
            f"timestamp is {now - t:+.0f} s from now (window ±{window_s:.0f} s)", detail={"reason": "stale"}
        )


def parse_body(body: bytes, platform: str, *, signed_identity: bool) -> list[LiveEvent]:
    """A signed body → events; ``MalformedEvent`` names the first problem (the body is dead-lettered)."""
    try:
        data: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MalformedEvent(f"body is not JSON: {e}") from None
    if isinstance(data, dict) and "events" in data:
        data = data["events"]
    items = data if isinstance(data, list) else [data]
    if not items:
        raise MalformedEvent("no events")
    if len(items) > MAX_BATCH:
        raise MalformedEvent(f"at most {MAX_BATCH} events per request")
    out = []
    for i, d in enumerate(items):
        try:
            ev = parse_event(d, platform=platform)
        except MalformedEvent as e:
            raise MalformedEvent(f"event {i}: {e.message}") from None
        out.append(ev.model_copy(update={"signed_identity": signed_identity}))
    return out
