"""Small processors and a pub/sub bus (the house's Pipecat-like style, without Pipecat's overhead:
the danmaku path handles thousands of frames a second).

A ``Processor`` takes a frame in ``process`` and hands results to ``self.emit``; ``chain`` links
processors. The ``Bus`` fans a room's outputs (suggestions, alerts, lines, replies) out to
subscribers, each with its own bounded queue: a slow console drops its oldest frames, never
the room's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any


class Processor:
    """Synchronous stage: ``process(frame)`` calls ``self.emit(frame)`` zero or more times."""

    def __init__(self) -> None:
        self._next: Callable[[Any], None] | None = None

    def link(self, nxt: Processor | Callable[[Any], None]) -> Processor | Callable[[Any], None]:
        self._next = nxt.process if isinstance(nxt, Processor) else nxt
        return nxt

    def emit(self, frame: Any) -> None:
        if self._next is not None:
            self._next(frame)

    def process(self, frame: Any) -> None:  # pragma: no cover - overridden
        self.emit(frame)


class Subscription:
    def __init__(self, bus: Bus, topics: frozenset[str] | None, maxsize: int):
        self.bus, self.topics, self.maxsize = bus, topics, maxsize
        self._items: deque = deque()
        self._event = asyncio.Event()
        self.dropped = 0

    def put(self, topic: str, item: Any) -> None:
        if self.topics is not None and topic not in self.topics:
            return
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append((topic, item))
        self._event.set()

    async def get(self) -> tuple[str, Any]:
        while not self._items:
            self._event.clear()
            await self._event.wait()
        return self._items.popleft()

    def get_nowait(self) -> tuple[str, Any] | None:
        return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        self.bus.unsubscribe(self)


class Bus:
    """Topic pub/sub: ``publish(topic, item)`` is synchronous and never blocks the publisher."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._hooks: list[Callable[[str, Any], None]] = []

    def subscribe(self, topics: Iterable[str] | None = None, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, frozenset(topics) if topics is not None else None, maxsize)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def hook(self, fn: Callable[[str, Any], None]) -> None:
        """A synchronous listener (called inline: keep it cheap)."""
        self._hooks.append(fn)

    def publish(self, topic: str, item: Any) -> None:
        for s in self._subs:
            s.put(topic, item)
        for h in self._hooks:
            h(topic, item)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
