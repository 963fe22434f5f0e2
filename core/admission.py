"""Back-pressure for live answers: beyond capacity a question gets a clear ``busy`` at once instead of
an answer seconds late (a viewer retries; a late answer to a danmaku is worth nothing).

Two bounds, both per process: how many answers are in flight (memory, and the LLM path's long streams),
and how long an admitted question may wait for the event loop before its work starts (the fast path is
CPU on the loop, so that wait *is* the queue: past the bound the backlog is answered ``busy`` cheaply and
drains, rather than every later question inheriting it)."""

from __future__ import annotations

import threading
import time


class Admission:
    def __init__(self, max_inflight: int = 512, max_wait_ms: float = 250.0):
        self.max_inflight = max_inflight
        self.max_wait = max_wait_ms / 1000
        self._n = 0
        self._lock = threading.Lock()
        self.refused = {"inflight": 0, "waited": 0}

    @property
    def inflight(self) -> int:
        return self._n

    def enter(self) -> float | None:
        """A ticket (the admission time) or None when the process already answers ``max_inflight``."""
        with self._lock:
            if self.max_inflight > 0 and self._n >= self.max_inflight:
                self.refused["inflight"] += 1
                return None
            self._n += 1
        return time.perf_counter()

    def waited_too_long(self, ticket: float) -> bool:
        """At the start of the question's work: whether it sat in the queue past ``max_wait``."""
        late = self.max_wait > 0 and time.perf_counter() - ticket > self.max_wait
        if late:
            with self._lock:
                self.refused["waited"] += 1
        return late

    def leave(self) -> None:
        with self._lock:
            self._n = max(0, self._n - 1)
