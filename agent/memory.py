"""Per-viewer short-term memory: the last few turns and the products in focus, so "那大号呢?"
resolves. Bounded in viewers (LRU), turns per viewer, and age (TTL)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


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


class Memory:
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
            st.turns.append(Turn(role, text[:300], time.time(), interrupted))
            for s in reversed(list(dict.fromkeys(skus))):
                if s in st.focus:
                    st.focus.remove(s)
                st.focus.insert(0, s)
            del st.focus[self.max_focus :]

    def mark_interrupted(self, merchant: str, room: str, viewer: str, said: str) -> None:
        """Barge-in: keep only what was actually said of the last agent turn, flagged."""
        st = self.get(merchant, room, viewer)
        with self._lock:
            for t in reversed(st.turns):
                if t.role == "agent":
                    t.text, t.interrupted = said, True
                    break

    def __len__(self) -> int:
        return len(self._data)
