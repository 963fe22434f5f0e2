"""Injectable clocks: show time (epoch seconds) and sleeping in show time.

- ``RealClock``: wall time.
- ``ScaledClock(speed)``: show time runs ``speed`` times faster than wall time (the soak, ``--speed``).
- ``VirtualClock``: time moves only when someone sleeps (tests): ``sleep(5)`` returns at once with
  the clock 5 s later, so an hour-long show runs in milliseconds and deterministically.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    speed = 1.0

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Show time = start + (wall elapsed) × speed."""

    def __init__(self, speed: float = 1.0, start: float | None = None):
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = float(speed)
        self._t0 = time.time() if start is None else float(start)
        self._m0 = time.monotonic()

    def now(self) -> float:
        return self._t0 + (time.monotonic() - self._m0) * self.speed

    def restart(self, start: float | None = None) -> None:
        """Start show time (again) from ``start`` (default: the wall clock now), e.g. after warm-up."""
        self._t0 = time.time() if start is None else float(start)
        self._m0 = time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class VirtualClock:
    """Discrete-event show time for tests: ``sleep`` parks the caller; when every other task has had
    its turn, time jumps to the earliest wake-up. An hour-long show runs in milliseconds, the same way
    every time, with any number of tasks (host loop, simulator, alert ticker) sleeping concurrently."""

    speed = float("inf")

    def __init__(self, start: float = 1_750_000_000.0, settle: int = 8):
        self.t = float(start)
        self._settle = settle
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._driver: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        """Move time forward by hand (wakes nobody until the driver runs)."""
        self.t += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._seq += 1
        heapq.heappush(self._heap, (self.t + seconds, self._seq, fut))
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive(), name="virtual-clock")
        await fut

    async def _drive(self) -> None:
        while self._heap:
            for _ in range(self._settle):  # let every runnable task run before time jumps
                await asyncio.sleep(0)
            if not self._heap:
                break
            deadline = self._heap[0][0]
            self.t = max(self.t, deadline)
            while self._heap and self._heap[0][0] <= self.t:
                _, _, fut = heapq.heappop(self._heap)
                if not fut.done():
                    fut.set_result(None)
