"""Process resources over a long show: RSS, open file descriptors, asyncio tasks, threads, room
backlogs — sampled on the show clock, summarized as first/last/max and a least-squares slope."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


class Sample(BaseModel):
    show_minute: float
    rss_mb: float
    fds: int
    tasks: int
    threads: int
    gc_objects: int
    extra: dict[str, float] = {}


class ResourceSampler:
    def __init__(self, clock: Any, every_s: float = 60.0, extra: Callable[[], dict] | None = None):
        self.clock, self.every_s, self.extra = clock, every_s, extra
        self.samples: list[Sample] = []
        self._t0 = clock.now()

    def sample(self) -> Sample:
        s = Sample(
            show_minute=round((self.clock.now() - self._t0) / 60, 2),
            rss_mb=round(rss_mb(), 1),
            fds=open_fds(),
            tasks=len(asyncio.all_tasks()),
            threads=threading.active_count(),
            gc_objects=len(gc.get_objects()),
            extra=self.extra() if self.extra else {},
        )
        self.samples.append(s)
        return s

    async def run(self) -> None:
        while True:
            self.sample()
            await self.clock.sleep(self.every_s)

    def summary(self, skip: int = 2) -> dict:
        """first/last/max and the slope per show hour, after ``skip`` warm-up samples."""
        xs = self.samples[skip:] if len(self.samples) > skip + 2 else self.samples
        out: dict[str, Any] = {"samples": len(self.samples), "warmup_skipped": len(self.samples) - len(xs)}
        for name in ("rss_mb", "fds", "tasks", "threads", "gc_objects"):
            ys = [float(getattr(s, name)) for s in xs]
            ts = [s.show_minute / 60 for s in xs]
            out[name] = {
                "first": ys[0] if ys else None,
                "last": ys[-1] if ys else None,
                "min": min(ys) if ys else None,
                "max": max(ys) if ys else None,
                "slope_per_hour": round(_slope(ts, ys), 3),
            }
        return out


def _slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
