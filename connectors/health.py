"""Health of one connector: what the dashboard shows, so that nothing stops silently.

State, from the counters:

- ``connected`` — the source is up and events arrive (or the show is not live, so quiet is fine);
- ``lagging`` — up, but nothing arrived for ``quiet_after_s`` while the show is live, or the newest event is
  older than ``lag_after_s`` when it reaches us (the platform is behind);
- ``failing`` — the source is down (a pull connection reconnecting with backoff) or its last
  ``fail_after`` requests all failed (bad signatures, malformed bodies);
- ``stopped`` — stopped on purpose.

Every transition is logged and kept (``outages``: from, to, reason), which is what the soak checks.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("liveroom.connectors")


class Health:
    def __init__(
        self,
        connector_id: str,
        *,
        clock: Callable[[], float] = time.time,
        quiet_after_s: float = 60.0,
        lag_after_s: float = 30.0,
        fail_after: int = 5,
    ):
        self.connector_id = connector_id
        self.clock = clock
        self.quiet_after_s, self.lag_after_s, self.fail_after = quiet_after_s, lag_after_s, fail_after
        self.up = True  # a push endpoint is "up" while the server runs; pull sources set it
        self.stopped = False
        self.live = False  # the show is on air: quiet means trouble
        self.events = 0
        self.duplicates = 0
        self.dead_letters = 0
        self.rejected = 0  # forged / stale signatures
        self.reconnects = 0
        self.backoff_s = 0.0
        self.last_error = ""
        self.last_event_at: float | None = None
        self.last_event_ts: float | None = None
        self.started_at = clock()
        self._consecutive_failures = 0
        self._recent: deque[float] = deque()  # arrival times in the last 10 s
        self._state = "connected"
        self.outages: list[dict[str, Any]] = []  # state changes away from and back to connected

    # --- what happened --------------------------------------------------------------------------------
    def on_events(self, n: int, newest_ts: float | None = None) -> None:
        now = self.clock()
        self.events += n
        self.last_event_at = now
        if newest_ts is not None:
            self.last_event_ts = newest_ts
        for _ in range(min(n, 1000)):
            self._recent.append(now)
        self._consecutive_failures = 0
        self.state()

    def on_failure(self, reason: str) -> None:
        self._consecutive_failures += 1
        self.last_error = reason[:300]
        self.state()

    def on_down(self, reason: str, backoff_s: float) -> None:
        self.up = False
        self.last_error = reason[:300]
        self.backoff_s = backoff_s
        self.state()

    def on_up(self, reconnected: bool = True) -> None:
        if not self.up and reconnected:
            self.reconnects += 1
        self.up = True
        self.backoff_s = 0.0
        self.state()

    # --- what it means ----------------------------------------------------------------------------------
    def events_per_s(self) -> float:
        now = self.clock()
        while self._recent and self._recent[0] < now - 10:
            self._recent.popleft()
        return len(self._recent) / 10.0

    def last_event_age_s(self) -> float | None:
        return None if self.last_event_at is None else max(0.0, self.clock() - self.last_event_at)

    def state(self) -> str:
        now = self.clock()
        if self.stopped:
            new = "stopped"
        elif not self.up or self._consecutive_failures >= self.fail_after:
            new = "failing"
        else:
            quiet_since = self.last_event_at if self.last_event_at is not None else self.started_at
            behind = (
                self.last_event_ts is not None
                and self.last_event_at is not None
                and self.last_event_at - self.last_event_ts > self.lag_after_s
                and now - self.last_event_at < self.quiet_after_s
            )
            new = "lagging" if (self.live and now - quiet_since > self.quiet_after_s) or behind else "connected"
        if new != self._state:
            reason = self.last_error if new == "failing" else ("quiet" if new == "lagging" else "")
            log.warning("connector %s: %s → %s %s", self.connector_id, self._state, new, reason)
            if new != "connected" and self._state == "connected":
                self.outages.append({"state": new, "from": now, "to": None, "reason": reason})
            elif new == "connected" and self.outages and self.outages[-1]["to"] is None:
                self.outages[-1]["to"] = now
            elif self.outages and self.outages[-1]["to"] is None:
                self.outages[-1]["state"] = new
            self._state = new
        return new

    def snapshot(self) -> dict[str, Any]:
        age = self.last_event_age_s()
        return {
            "connector_id": self.connector_id,
            "state": self.state(),
            "live": self.live,
            "events": self.events,
            "events_per_s": round(self.events_per_s(), 2),
            "last_event_age_s": None if age is None else round(age, 1),
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
            "rejected": self.rejected,
            "reconnects": self.reconnects,
            "backoff_s": round(self.backoff_s, 2),
            "last_error": self.last_error,
            "outages": len(self.outages),
            "recent_outages": self.outages[-5:],
        }
