"""Per-viewer short-term memory: the last few turns and the products in focus, so "那大号呢?"
resolves. Bounded in viewers (LRU), turns per viewer, and age (TTL).

The agent only reads the state ``get`` returns; every write is one call (``remember``, ``record``,
``mark_interrupted``) whose rules are the functions below, so a shared backend (agent/memory_redis.py,
several workers) applies the same rules to one viewer atomically."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Turn:
    role: str  # "viewer" | "agent"
    text: str
    at: float
    interrupted: bool = False


@dataclass
class ViewerState:
    turns: deque[Any] = field(default_factory=lambda: deque(maxlen=6))
    focus: list[str] = field(default_factory=list)  # skus, most recent first
    last_intent: str = ""  # so "那面霜呢?" inherits "孕妇能用吗" from the turn before
    last_question: str = ""
    last_attributes: list[str] = field(default_factory=list)  # what the last question asked about
    lang: str = ""  # the viewer's language so far: a short "多少钱" after English questions stays English
    touched: float = field(default_factory=time.monotonic)


class ConversationMemory(Protocol):
    """What the agent and the voice channel use of a memory (in process or shared)."""

    def get(self, merchant: str, room: str, viewer: str) -> ViewerState: ...

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
    ) -> None: ...

    def record(
        self,
        merchant: str,
        room: str,
        viewer: str,
        role: str,
        text: str,
        skus: Sequence[str] = (),
        interrupted: bool = False,
    ) -> None: ...

    def mark_interrupted(self, merchant: str, room: str, viewer: str, said: str) -> None: ...


# --- the rules, applied to one viewer's state (by either backend, under its lock or transaction) -----
def add_turn(
    st: ViewerState, role: str, text: str, skus: Sequence[str], interrupted: bool, max_focus: int, at: float
) -> None:
    st.turns.append(Turn(role, text[:300], at, interrupted))
    for s in reversed(list(dict.fromkeys(skus))):
        if s in st.focus:
            st.focus.remove(s)
        st.focus.insert(0, s)
    del st.focus[max_focus:]


def apply_answer(
    st: ViewerState,
    *,
    said: str,
    answer: str,
    skus: Sequence[str],
    intent: str,
    attributes: Sequence[str] | None,
    lang: str,
    lang_decisive: bool,
    max_focus: int,
    at: float,
) -> None:
    """One answered turn: what was asked (intent, attributes, language) and both turns. The language is
    kept unless this message decides it (the agent's ``_decisive_lang``) or none is known yet."""
    st.last_intent, st.last_question = intent, said
    if attributes is not None:
        st.last_attributes = list(attributes)
    if lang_decisive or not st.lang:
        st.lang = lang
    add_turn(st, "viewer", said, skus, False, max_focus, at)
    add_turn(st, "agent", answer, (), False, max_focus, at)


def interrupt_last(st: ViewerState, said: str) -> None:
    """Barge-in: keep only what was actually said of the last agent turn, flagged."""
    for t in reversed(st.turns):
        if t.role == "agent":
            t.text, t.interrupted = said, True
            break


class Memory:
    """In this process (one worker)."""

    def __init__(self, max_viewers: int = 20_000, ttl_s: float = 1800.0, max_turns: int = 6, max_focus: int = 3):
        self._data: OrderedDict[tuple[str, str, str], ViewerState] = OrderedDict()
        self._lock = threading.Lock()
        self.max_viewers, self.ttl_s, self.max_turns, self.max_focus = max_viewers, ttl_s, max_turns, max_focus

    def get(self, merchant: str, room: str, viewer: str) -> ViewerState:
        key = (merchant, room, viewer)
        now = time.monotonic()
        with self._lock:
            st = self._data.get(key)
            if st is None or now - st.touched > self.ttl_s:
                st = ViewerState(turns=deque(maxlen=self.max_turns))
                self._data[key] = st
            st.touched = now
            self._data.move_to_end(key)
            while len(self._data) > self.max_viewers:
                self._data.popitem(last=False)
            return st

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
        st = self.get(merchant, room, viewer)
        with self._lock:
            apply_answer(
                st,
                said=said,
                answer=answer,
                skus=skus,
                intent=intent,
                attributes=attributes,
                lang=lang,
                lang_decisive=lang_decisive,
                max_focus=self.max_focus,
                at=time.time(),
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
        st = self.get(merchant, room, viewer)
        with self._lock:
            add_turn(st, role, text, skus, interrupted, self.max_focus, time.time())

    def mark_interrupted(self, merchant: str, room: str, viewer: str, said: str) -> None:
        """Barge-in: keep only what was actually said of the last agent turn, flagged."""
        st = self.get(merchant, room, viewer)
        with self._lock:
            interrupt_last(st, said)

    def __len__(self) -> int:
        return len(self._data)
