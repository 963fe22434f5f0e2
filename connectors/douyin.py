"""Douyin open platform: live-room data push (直播间数据开放 — 评论 / 礼物 / 点赞 / 粉丝团).

Worked from the public documentation (cited in docs/connectors.md):

- the push: ``POST`` to the developer's server with headers ``x-nonce-str``, ``x-timestamp`` (milliseconds),
  ``x-roomid``, ``x-msg-type`` (``live_comment`` / ``live_gift`` / ``live_like`` / ``live_fansclub``) and
  ``x-signature``; the body is the JSON payload (a list of messages). Answer non-2xx or take over 2 s (3 s for
  gifts) and the platform counts a failed push;
- the signature: the headers except ``x-signature`` and ``content-type``, sorted by key, joined as
  ``k1=v1&k2=v2``, then the body string and the secret appended with no separator, UTF-8, MD5 (16 bytes),
  base64;
- messages may repeat (dedup by ``msg_id``) and arrive out of order within a short span; comments and likes
  may be lost, gifts and fan-club messages can be re-queried (``task/fail_data/get``, paged, one day);
- push tasks are started / stopped / queried per (room, app, message type): ``task/start``, ``task/stop``,
  ``task/get``.

``verify_push`` checks the signature (constant time) and the timestamp window before anything is parsed.
A valid signature means the platform vouches for the ``sec_openid``: those viewers are *signed identities*
(still mapped to a per-merchant id, never the raw openid).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

from connectors.events import LiveEvent, MalformedEvent
from core.errors import LiveRoomError

log = logging.getLogger("liveroom.connectors.douyin")

MSG_KINDS = {"live_comment": "comment", "live_gift": "gift", "live_like": "like", "live_fansclub": "fan_club"}
SIGNED_HEADERS = ("x-msg-type", "x-nonce-str", "x-roomid", "x-timestamp")
API_BASE = "https://webcast.bytedance.com"


class BadSignature(LiveRoomError):
    code = "bad_signature"
    http_status = 401


def signature(headers: dict[str, str], body: str | bytes, secret: str) -> str:
    """The documented ``x-signature``: sorted ``k=v`` of the signed headers + body + secret → MD5 → base64."""
    params = "&".join(f"{k}={headers[k]}" for k in sorted(headers) if k not in ("x-signature", "content-type"))
    raw = params.encode() + (body if isinstance(body, bytes) else body.encode()) + secret.encode()
    return base64.b64encode(hashlib.md5(raw).digest()).decode()


def sign_headers(
    body: bytes, secret: str, roomid: str, msg_type: str, *, nonce: str, ts_ms: int | None = None
) -> dict[str, str]:
    """Headers the platform sends (for the emulator, tests and the soak)."""
    h = {
        "x-nonce-str": nonce,
        "x-timestamp": str(int(time.time() * 1000) if ts_ms is None else ts_ms),
        "x-roomid": roomid,
        "x-msg-type": msg_type,
    }
    h["x-signature"] = signature(h, body, secret)
    h["content-type"] = "application/json"
    return h


def verify_push(
    headers: dict[str, str], body: bytes, secret: str, *, window_s: float = 300.0, now: float | None = None
) -> dict[str, str]:
    """Check a push: every signed header present, the signature, the timestamp within ``window_s``.
    Returns the signed headers; ``BadSignature`` (with a reason) otherwise."""
    h = {k.lower(): v for k, v in headers.items()}
    missing = [k for k in (*SIGNED_HEADERS, "x-signature") if not h.get(k)]
    if missing:
        raise BadSignature(f"missing header(s): {', '.join(missing)}", detail={"reason": "missing_headers"})
    if not secret:
        raise BadSignature("this connector has no push secret", detail={"reason": "no_secret"})
    signed = {k: h[k] for k in SIGNED_HEADERS}
    want = signature(signed, body, secret)
    if not hmac.compare_digest(want.encode(), h["x-signature"].encode()):
        raise BadSignature("x-signature does not match", detail={"reason": "bad_signature"})
    try:
        ts = int(h["x-timestamp"]) / 1000.0
    except ValueError:
        raise BadSignature("x-timestamp is not a number", detail={"reason": "bad_timestamp"}) from None
    now = time.time() if now is None else now
    if abs(now - ts) > window_s:
        raise BadSignature(
            f"x-timestamp is {now - ts:+.0f} s from now (window ±{window_s:.0f} s)", detail={"reason": "stale"}
        )
    return signed


def _ts(v: Any) -> float:
    t = float(v)
    return t / 1000.0 if t > 1e11 else t  # the payload's timestamps are seconds; milliseconds accepted


def parse_push(msg_type: str, body: bytes | str, *, roomid: str = "") -> list[LiveEvent]:
    """A verified push body → events. ``MalformedEvent`` (the caller dead-letters the body) if it cannot
    be read; a single unreadable message in a batch fails the batch (it is kept whole)."""
    kind = MSG_KINDS.get(msg_type)
    if kind is None:
        raise MalformedEvent(f"unknown x-msg-type {msg_type!r}")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MalformedEvent(f"body is not JSON: {e}") from None
    if isinstance(data, str):  # the payload is documented as a JSON string of the message list
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            raise MalformedEvent(f"payload string is not JSON: {e}") from None
    items = data if isinstance(data, list) else [data]
    out = []
    for i, m in enumerate(items):
        if not isinstance(m, dict):
            raise MalformedEvent(f"message {i}: not an object")
        try:
            msg_id, openid = str(m["msg_id"]), str(m["sec_openid"])
            ts = _ts(m.get("timestamp") or time.time())
        except (KeyError, TypeError, ValueError) as e:
            raise MalformedEvent(f"message {i}: missing or bad field {e}") from None
        fields: dict[str, Any] = {}
        if kind == "comment":
            text = m.get("content")
            if not isinstance(text, str) or not text.strip():
                raise MalformedEvent(f"message {i}: a live_comment needs 'content'")
            fields["text"] = text
        elif kind == "gift":
            fields["count"] = int(m.get("gift_num") or 1)
            fields["gift"] = str(m.get("sec_gift_id") or "")[:64] or None
            if m.get("gift_value") is not None:
                fields["amount"] = float(m["gift_value"]) / 100.0  # 分 → 元
        elif kind == "like":
            fields["count"] = int(m.get("like_num") or 1)
        try:
            out.append(
                LiveEvent(
                    kind=kind,  # type: ignore[arg-type]
                    platform="douyin",
                    platform_room=roomid,
                    msg_id=msg_id,
                    user_id=openid,
                    nickname=str(m.get("nickname") or "")[:64],
                    ts=ts,
                    signed_identity=True,
                    **fields,
                )
            )
        except ValueError as e:
            raise MalformedEvent(f"message {i}: {e}") from None
    return out


class DouyinTasks:
    """The push-task API (start / stop / status) and the lost-gift re-query, over HTTP.

    ``base_url`` defaults to the platform; tests point it at the local emulator. ``access_token`` is the
    app's token (获取 access_token, refreshed by the caller every 2 h)."""

    def __init__(self, app_id: str, access_token: str, base_url: str = API_BASE, timeout_s: float = 5.0):
        self.app_id, self.token = app_id, access_token
        self.client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    def _headers(self) -> dict[str, str]:
        return {"access-token": self.token, "content-type": "application/json"}

    @staticmethod
    def _check(r: httpx.Response) -> dict[str, Any]:
        r.raise_for_status()
        data = r.json()
        if data.get("err_no", 0) != 0:
            raise LiveRoomError(
                f"douyin api error {data.get('err_no')}: {data.get('err_msg')}", code="platform_error", http_status=502
            )
        return data.get("data") or {}

    async def start(self, roomid: str, msg_type: str) -> str:
        body = {"roomid": roomid, "appid": self.app_id, "msg_type": msg_type}
        r = await self.client.post("/api/live_data/task/start", json=body, headers=self._headers())
        return str(self._check(r).get("task_id", ""))

    async def stop(self, roomid: str, msg_type: str) -> None:
        body = {"roomid": roomid, "appid": self.app_id, "msg_type": msg_type}
        self._check(await self.client.post("/api/live_data/task/stop", json=body, headers=self._headers()))

    async def status(self, roomid: str, msg_type: str) -> int:
        """1 = no task, 2 = not started, 3 = running."""
        q = {"roomid": roomid, "appid": self.app_id, "msg_type": msg_type}
        return int(
            self._check(await self.client.get("/api/live_data/task/get", params=q, headers=self._headers()))["status"]
        )

    async def failed(self, roomid: str, msg_type: str, page_size: int = 100, max_pages: int = 100) -> list[LiveEvent]:
        """Re-query pushes that failed (gifts and fan-club only), every page; events to submit again (the
        hub's dedup drops the ones that did arrive)."""
        out: list[LiveEvent] = []
        for page in range(1, max_pages + 1):
            q = {"roomid": roomid, "appid": self.app_id, "msg_type": msg_type, "page_num": page, "page_size": page_size}
            data = self._check(
                await self.client.get("/api/live_data/task/fail_data/get", params=q, headers=self._headers())
            )
            items = data.get("data_list") or []
            for it in items:
                out.extend(parse_push(it.get("msg_type", msg_type), it.get("payload", "[]"), roomid=roomid))
            if len(items) < page_size:
                break
        return out

    async def aclose(self) -> None:
        await self.client.aclose()
