"""Keeps a pull connector (a WebSocket to a platform, a replay) running: it never stops silently.

``Supervisor.run(session)`` calls ``await session()`` — one connection, which returns or raises when the
connection ends — again and again. Between attempts it waits an exponential backoff with jitter
(``base_s`` · 2ⁿ, capped at ``max_s``; reset after a connection that stayed up ``stable_s``), and tells the
connector's ``Health`` (``failing`` with the reason and the backoff, then ``connected`` on the next event).
Only ``stop()`` or cancelling the task ends it; either is logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from connectors.health import Health

log = logging.getLogger("liveroom.connectors")


class Supervisor:
    def __init__(
        self,
        health: Health,
        *,
        base_s: float = 1.0,
        max_s: float = 60.0,
        stable_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ):
        self.health = health
        self.base_s, self.max_s, self.stable_s = base_s, max_s, stable_s
        self.sleep, self.clock = sleep, clock
        self.rng = rng or random.Random()
        self.attempt = 0
        self.sessions = 0
        self._stop = False

    def backoff(self) -> float:
        d = min(self.max_s, self.base_s * (2 ** min(self.attempt, 16)))
        return d * (0.5 + self.rng.random() / 2)  # jitter: 50-100 % of the step

    def stop(self) -> None:
        self._stop = True
        self.health.stopped = True

    async def run(self, session: Callable[[], Awaitable[None]]) -> None:
        cid = self.health.connector_id
        try:
            while not self._stop:
                started = self.clock()
                self.sessions += 1
                try:
                    self.health.on_up(reconnected=self.sessions > 1)
                    await session()
                    reason = "connection closed by the platform"
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    reason = f"{type(e).__name__}: {e}"
                if self._stop:
                    break
                if self.clock() - started >= self.stable_s:
                    self.attempt = 0
                wait = self.backoff()
                self.attempt += 1
                self.health.on_down(reason, wait)
                log.warning("connector %s: %s; reconnecting in %.1f s (attempt %d)", cid, reason, wait, self.attempt)
                await self.sleep(wait)
        except asyncio.CancelledError:
            log.info("connector %s: supervisor cancelled", cid)
            raise
        finally:
            log.info("connector %s: supervisor stopped after %d session(s)", cid, self.sessions)
