"""The live answer log in Redis, for several workers: the dashboard shows every worker's answers.

Per (merchant, room) a capped stream (``XADD MAXLEN ~ per_room``) of JSON answers, newest read first, and a
set of the answer ids filed for review. Both expire ``room_ttl_s`` after the room's last answer: rooms are
bounded by age here, as by count (LRU) in the in-process ``AnswerLog``. Same public methods."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import redis

from agent.bus import AnsweredEvent
from agent.messages import AgentAnswer
from console.live import LoggedAnswer, logged_answer
from state.keys import key


class RedisAnswerLog:
    def __init__(self, client: redis.Redis, per_room: int = 300, room_ttl_s: float = 86_400.0, prefix: str = "lr"):
        self._r = client
        self.per_room, self.room_ttl_s, self.prefix = per_room, room_ttl_s, prefix

    def _keys(self, merchant: str, room_id: str) -> tuple[str, str]:
        return key(self.prefix, "answers", merchant, room_id), key(self.prefix, "answers-flagged", merchant, room_id)

    def record(
        self, merchant: str, room_id: str, viewer_id: str, question: str, ans: AgentAnswer | dict, channel: str = "ws"
    ) -> LoggedAnswer:
        item = logged_answer(merchant, room_id, viewer_id, question, ans, channel)
        log_key, flag_key = self._keys(merchant, room_id)
        body = json.dumps(dataclasses.asdict(item), ensure_ascii=False, separators=(",", ":"))
        ttl = max(1, int(self.room_ttl_s))
        p = self._r.pipeline(transaction=False)
        p.xadd(log_key, {"a": body}, maxlen=self.per_room, approximate=True)
        p.expire(log_key, ttl)
        p.expire(flag_key, ttl)
        p.execute()
        return item

    def on_answer(self, ev: AnsweredEvent) -> None:
        """Answer-bus subscriber: log the answer under its (merchant, room)."""
        self.record(ev.merchant, ev.room_id, ev.viewer_id, ev.question, ev.model_dump(), ev.channel)

    def _read(self, merchant: str, room_id: str, count: int) -> list[LoggedAnswer]:
        """The room's newest ``count`` answers, newest first, with their review flags."""
        log_key, flag_key = self._keys(merchant, room_id)
        p = self._r.pipeline(transaction=False)
        p.xrevrange(log_key, count=max(0, min(count, self.per_room)))
        p.smembers(flag_key)
        entries, flagged = p.execute()
        flagged_ids = {f.decode() if isinstance(f, bytes) else f for f in flagged}
        out = []
        for _id, fields in entries:
            d: dict[str, Any] = json.loads(fields[b"a"] if b"a" in fields else fields["a"])
            item = LoggedAnswer(**d)
            item.flagged = item.answer_id in flagged_ids
            out.append(item)
        return out

    def recent(self, merchant: str, room_id: str, limit: int = 50, since: float = 0.0) -> list[LoggedAnswer]:
        if limit <= 0:
            return []
        return [x for x in self._read(merchant, room_id, limit) if x.at >= since]

    def get(self, merchant: str, room_id: str, answer_id: str) -> LoggedAnswer | None:
        return next((x for x in self._read(merchant, room_id, self.per_room) if x.answer_id == answer_id), None)

    def flag(self, merchant: str, room_id: str, answer_id: str) -> bool:
        """Mark an answer filed for review, for every worker's dashboard; False if it is no longer logged."""
        if self.get(merchant, room_id, answer_id) is None:
            return False
        _, flag_key = self._keys(merchant, room_id)
        p = self._r.pipeline(transaction=False)
        p.sadd(flag_key, answer_id)
        p.expire(flag_key, max(1, int(self.room_ttl_s)))
        p.execute()
        return True
