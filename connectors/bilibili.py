"""Bilibili live through ``blivedm`` (PyPI), not hand-written protocol code.

``blivedm`` speaks Bilibili's live danmaku WebSocket (auth, heartbeats, brotli/zlib packets) and hands each
decoded command (a dict with ``cmd``) to a handler's ``handle(client, command)``. ``BilibiliHandler`` is
such a handler: it normalises the commands a shop cares about into ``LiveEvent``s and submits them to
the hub. ``BilibiliSource.session`` is one connection; ``connectors.supervisor.Supervisor`` keeps it up.

blivedm is optional (``pip install blivedm``; PyPI has 0.1.1, which pins ``brotli==1.0.9`` — see
docs/connectors.md): nothing imports it until a Bilibili connector starts. Identities on this channel are
not signed by the platform for us: every Bilibili viewer is anonymous (mapped per merchant).

Commands read (shapes as blivedm's models read them): ``DANMU_MSG`` (``info[1]`` text, ``info[2][0]`` uid,
``info[2][1]`` name, ``info[0][4]`` ms), ``SEND_GIFT`` (``data``: uid, uname, giftName, num, price,
timestamp), ``GUARD_BUY`` (fan club), ``INTERACT_WORD`` (``msg_type`` 1 enter, 2 follow, 3 share),
``LIKE_INFO_V3_CLICK`` (like), and the open platform's ``LIVE_OPEN_PLATFORM_DM`` / ``_SEND_GIFT``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from connectors.events import LiveEvent, MalformedEvent

log = logging.getLogger("liveroom.connectors.bilibili")
_INTERACT = {1: "enter", 2: "follow", 3: "share"}


def _id(*parts: Any) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:20]


def normalise(command: dict[str, Any], room: str) -> list[LiveEvent]:
    """One blivedm command → events ([] for the commands a shop ignores); ``MalformedEvent`` if a command
    we read is not shaped as documented."""
    cmd = str(command.get("cmd", "")).split(":", 1)[0]
    base = {"platform": "bilibili", "platform_room": room}
    try:
        if cmd == "DANMU_MSG":
            info = command["info"]
            ts_ms = int(info[0][4])
            uid, text = str(info[2][0]), str(info[1])
            return [
                LiveEvent(
                    kind="comment",
                    msg_id=_id(uid, ts_ms, text),
                    user_id=uid,
                    nickname=str(info[2][1])[:64],
                    text=text,
                    ts=ts_ms / 1000,
                    **base,
                )
            ]
        if cmd in ("LIVE_OPEN_PLATFORM_DM", "LIVE_OPEN_PLATFORM_SEND_GIFT"):
            d = command["data"]
            uid = str(d.get("open_id") or d["uid"])
            common = {"msg_id": str(d["msg_id"]), "user_id": uid, "nickname": str(d.get("uname", ""))[:64]}
            if cmd.endswith("_DM"):
                return [LiveEvent(kind="comment", text=str(d["msg"]), ts=float(d["timestamp"]), **common, **base)]
            return [
                LiveEvent(
                    kind="gift",
                    gift=str(d.get("gift_name", ""))[:64],
                    count=int(d.get("gift_num", 1)),
                    amount=float(d.get("price", 0)) / 1000,
                    ts=float(d["timestamp"]),
                    **common,
                    **base,
                )
            ]
        if cmd == "SEND_GIFT":
            d = command["data"]
            uid, ts = str(d["uid"]), float(d.get("timestamp") or time.time())
            return [
                LiveEvent(
                    kind="gift",
                    msg_id=str(d.get("tid") or _id(uid, ts, d.get("giftName"), d.get("rnd"))),
                    user_id=uid,
                    nickname=str(d.get("uname", ""))[:64],
                    gift=str(d.get("giftName", ""))[:64],
                    count=int(d.get("num", 1)),
                    amount=float(d.get("price", 0)) * int(d.get("num", 1)) / 1000,  # 金瓜子 → 元
                    ts=ts,
                    **base,
                )
            ]
        if cmd == "GUARD_BUY":
            d = command["data"]
            uid, ts = str(d["uid"]), float(d.get("start_time") or time.time())
            return [LiveEvent(kind="fan_club", msg_id=_id("guard", uid, ts), user_id=uid, ts=ts, **base)]
        if cmd == "INTERACT_WORD":
            d = command["data"]
            kind = _INTERACT.get(int(d.get("msg_type", 0)))
            if kind is None:
                return []
            uid, ts = str(d["uid"]), float(d.get("timestamp") or time.time())
            return [
                LiveEvent(
                    kind=kind,  # type: ignore[arg-type]
                    msg_id=_id(kind, uid, d.get("trigger_time") or ts),
                    user_id=uid,
                    nickname=str(d.get("uname", ""))[:64],
                    ts=ts,
                    **base,
                )
            ]
        if cmd == "LIKE_INFO_V3_CLICK":
            d = command["data"]
            uid = str(d["uid"])
            return [LiveEvent(kind="like", msg_id=_id("like", uid, time.time()), user_id=uid, ts=time.time(), **base)]
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise MalformedEvent(f"{cmd}: {type(e).__name__} {e}") from None
    return []


class BilibiliHandler:
    """A blivedm handler (``handle(client, command)``) that feeds the hub; unreadable commands are
    dead-lettered, never raised into blivedm's loop."""

    def __init__(self, hub: Any, connector_id: str, room: str):
        self.hub, self.connector_id, self.room = hub, connector_id, room

    async def handle(self, client: Any, command: dict[str, Any]) -> None:
        import json

        try:
            events = normalise(command, self.room)
        except MalformedEvent as e:
            self.hub.dead_letter(self.connector_id, e.message, json.dumps(command, ensure_ascii=False, default=str))
            return
        if events:
            self.hub.submit(self.connector_id, events)


class BilibiliSource:
    """One Bilibili room: ``session()`` is one blivedm connection (the Supervisor reconnects)."""

    def __init__(self, hub: Any, connector_id: str, room: str, client_factory: Any = None):
        self.handler = BilibiliHandler(hub, connector_id, room)
        self.room = room
        self.client_factory = client_factory

    def _client(self) -> Any:
        if self.client_factory is not None:
            return self.client_factory(int(self.room))
        try:
            import blivedm  # type: ignore[import-not-found]
        except ImportError as e:
            raise RuntimeError("the Bilibili connector needs blivedm (pip install blivedm)") from e
        return blivedm.BLiveClient(int(self.room))

    async def session(self) -> None:
        client = self._client()
        client.add_handler(self.handler)
        client.start()
        try:
            await client.join()
        finally:
            await client.stop_and_close()
