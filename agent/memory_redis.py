"""The conversation memory in Redis, shared by every worker (``LIVEROOM_REDIS_URL``): a viewer's follow-up
("那大号呢") resolves whichever worker their previous question went to.

One JSON value per (merchant, room, viewer), expiring ``ttl_s`` after it was last read or written (as the
in-process ``Memory``'s entries do). Every write reads, applies the same rules (agent/memory.py) and
writes back in one WATCH/MULTI transaction, retried when another worker wrote that viewer in between, so
two answers to one viewer landing on two workers both leave their turns. Bounded per viewer in turns and
focus like ``Memory``; in viewers by the TTL (and Redis's own maxmemory policy).

A write is a compare-and-set (one Lua script, one round trip) against the value this worker last read for
the viewer — an answer reads the memory before it writes it, so a replayed answer costs a GET and a CAS,
not WATCH/GET/MULTI/EXEC; a write that finds another worker's value re-reads and applies again. With Redis unreachable a
question is still answered, without memory (the client fails within its 2 s timeout)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

import redis

from agent.memory import Turn, ViewerState, add_turn, apply_answer, interrupt_last
from state.keys import key

log = logging.getLogger("liveroom.memory")

# KEYS[1]: the viewer's key; ARGV: expected value, '1' if it is expected absent, new value, ttl ms.
_CAS = """
local cur = redis.call('GET', KEYS[1])
if (ARGV[2] == '1' and cur == false) or (ARGV[2] ~= '1' and cur == ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return 1
end
return 0
"""
_UNREAD = object()
_SEEN_MAX = 50_000  # viewers whose last-read value is kept for the next write


class RedisMemory:
    def __init__(
        self, client: redis.Redis, ttl_s: float = 1800.0, max_turns: int = 6, max_focus: int = 3, prefix: str = "lr"
    ):
        self._r = client
        self.ttl_s, self.max_turns, self.max_focus, self.prefix = ttl_s, max_turns, max_focus, prefix
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._cas = client.register_script(_CAS)
        self._seen: OrderedDict[str, bytes | None] = OrderedDict()  # key → the value last read here
        self._lock = threading.Lock()

    def _saw(self, k: str, raw: bytes | None) -> None:
        with self._lock:
            self._seen[k] = raw
            self._seen.move_to_end(k)
            while len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)

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
        k = self._key(merchant, room, viewer)
        try:
            raw: Any = self._r.getex(k, px=self._ttl_ms)
        except redis.RedisError as e:
            log.warning("conversation memory unavailable (%s): answering without it", e)
            return self._decode(None)
        self._saw(k, raw)
        return self._decode(raw)

    def _update(self, merchant: str, room: str, viewer: str, change: Callable[[ViewerState], None]) -> None:
        k = self._key(merchant, room, viewer)
        with self._lock:
            expected: Any = self._seen.pop(k, _UNREAD)
        try:
            for _ in range(10):
                if expected is _UNREAD:
                    expected = self._r.get(k)
                st = self._decode(expected)
                change(st)
                new = self._encode(st)
                absent = "1" if expected is None else "0"
                if self._cas(keys=[k], args=[expected or b"", absent, new, self._ttl_ms]):
                    self._saw(k, new.encode())
                    return
                expected = _UNREAD  # another worker wrote this viewer meanwhile: apply to theirs
            log.warning("conversation memory: %s kept changing; this turn is not remembered", k)
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
