"""The conversation memory in Redis, shared by every worker (``LIVEROOM_REDIS_URL``): a viewer's follow-up
("那大号呢") resolves whichever worker their previous question went to.

One JSON value per (merchant, room, viewer), expiring ``ttl_s`` after it was last read or written (as the
in-process ``Memory``'s entries do). Every write reads, applies the same rules (agent/memory.py) and
writes back in one WATCH/MULTI transaction, retried when another worker wrote that viewer in between, so
two answers to one viewer landing on two workers both leave their turns. Bounded per viewer in turns and
focus like ``Memory``; in viewers by the TTL (and Redis's own maxmemory policy). With Redis unreachable a
question is still answered, without memory (the client fails within its 2 s timeout)."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis

from agent.memory import Turn, ViewerState, add_turn, apply_answer, interrupt_last
from state.keys import key

log = logging.getLogger("liveroom.memory")


class RedisMemory:
    def __init__(
        self, client: redis.Redis, ttl_s: float = 1800.0, max_turns: int = 6, max_focus: int = 3, prefix: str = "lr"
    ):
        self._r = client
        self.ttl_s, self.max_turns, self.max_focus, self.prefix = ttl_s, max_turns, max_focus, prefix
        self._ttl_ms = max(1, int(ttl_s * 1000))

    def _key(self, merchant: str, room: str, viewer: str) -> str:
        return key(self.prefix, "mem", merchant, room, viewer)

    def _decode(self, raw: bytes | None) -> ViewerState:
        st = ViewerState(turns=deque(maxlen=self.max_turns))
        if raw is None:
            return st
        d = json.loads(raw)
        st.turns.extend(Turn(r, t, at, bool(i)) for r, t, at, i in d.get("t", ()))
        st.focus = list(d.get("f", ()))[: self.max_focus]
        st.last_intent, st.last_question = d.get("i", ""), d.get("q", "")
        st.last_attributes, st.lang = list(d.get("a", ())), d.get("l", "")
        return st

    @staticmethod
    def _encode(st: ViewerState) -> str:
        d = {
            "t": [[t.role, t.text, t.at, int(t.interrupted)] for t in st.turns],
            "f": st.focus,
            "i": st.last_intent,
            "q": st.last_question,
            "a": st.last_attributes,
            "l": st.lang,
        }
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))

    def get(self, merchant: str, room: str, viewer: str) -> ViewerState:
        """A copy of the viewer's state (reading it keeps it alive, as in ``Memory``)."""
        try:
            raw: Any = self._r.getex(self._key(merchant, room, viewer), px=self._ttl_ms)
        except redis.RedisError as e:
            log.warning("conversation memory unavailable (%s): answering without it", e)
            raw = None
        return self._decode(raw)

    def _update(self, merchant: str, room: str, viewer: str, change: Callable[[ViewerState], None]) -> None:
        k = self._key(merchant, room, viewer)

        def tx(pipe: Any) -> None:
            st = self._decode(pipe.get(k))
            change(st)
            pipe.multi()
            pipe.set(k, self._encode(st), px=self._ttl_ms)

        try:
            self._r.transaction(tx, k)
        except redis.RedisError as e:
            log.warning("conversation memory unavailable (%s): this turn is not remembered", e)

    def remember(
        self,
        merchant: str,
        room: str,
        viewer: str,
        *,
        said: str,
        answer: str,
        skus: Sequence[str] = (),
        intent: str = "",
        attributes: Sequence[str] | None = None,
        lang: str = "",
        lang_decisive: bool = False,
    ) -> None:
        at = time.time()
        self._update(
            merchant,
            room,
            viewer,
            lambda st: apply_answer(
                st,
                said=said,
                answer=answer,
                skus=skus,
                intent=intent,
                attributes=attributes,
                lang=lang,
                lang_decisive=lang_decisive,
                max_focus=self.max_focus,
                at=at,
            ),
        )

    def record(
        self,
        merchant: str,
        room: str,
        viewer: str,
        role: str,
        text: str,
        skus: Sequence[str] = (),
        interrupted: bool = False,
    ) -> None:
        at = time.time()
        self._update(merchant, room, viewer, lambda st: add_turn(st, role, text, skus, interrupted, self.max_focus, at))

    def mark_interrupted(self, merchant: str, room: str, viewer: str, said: str) -> None:
        """Barge-in: keep only what was actually said of the last agent turn, flagged."""
        self._update(merchant, room, viewer, lambda st: interrupt_last(st, said))
