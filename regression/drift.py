"""Drift watch during a show: live answers sampled into the review queue, and an alert when the share of
"I'll check with the host" answers, or the rate of reviews, rises suddenly.

``DriftWatch.on_answer`` subscribes to the container's answer bus; it sees every channel's answers and
keeps only live ones (not the console's previews; a regression run uses a private bus anyway). Every
``sample_every``-th live answer, and every "I'll check" answer while the alert is up, goes to ``sink``
(the console files it as an open review, with its citations) — on one writer thread of its own, since
filing is an SQL insert and the bus calls ``on_answer`` on the event loop; ``flush`` waits for it.

The alert compares the last ``window_s`` with the ``baseline_s`` before it: it fires when the window
has at least ``min_answers`` answers and its "I'll check" share is at least ``min_share`` and at least
``factor`` × the baseline's (with no baseline to speak of, ``min_share`` × ``factor`` alone). Reviews
filed by people (thumbs-down) are compared the same way per minute.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.bus import AnsweredEvent

log = logging.getLogger("liveroom.regression.drift")

LIVE_CHANNELS = {"ws", "http", "voice", "v1", "sim"}
# Refusals that are not a missing fact: too fast, empty, abusive, screened, injected, unheard.
NOT_CHECKS = {"rate_limited", "empty", "abuse", "screened", "injection", "noise"}


def is_check(ev: AnsweredEvent) -> bool:
    """An "I'll check with the host" answer: the agent had nothing in the catalog to say."""
    return ev.refused and ev.intent not in NOT_CHECKS


@dataclass
class _Merchant:
    answers: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=20_000))
    reviews: deque[float] = field(default_factory=lambda: deque(maxlen=5_000))
    seen: int = 0
    sampled: int = 0


class DriftWatch:
    def __init__(
        self,
        sink: Callable[[AnsweredEvent, str], Any] | None = None,
        *,
        sample_every: int = 25,
        window_s: float = 300.0,
        baseline_s: float = 1800.0,
        min_answers: int = 10,
        min_share: float = 0.2,
        factor: float = 2.0,
        clock: Callable[[], float] = time.time,
    ):
        self.sink = sink
        self.sample_every, self.window_s, self.baseline_s = sample_every, window_s, baseline_s
        self.min_answers, self.min_share, self.factor = min_answers, min_share, factor
        self.clock = clock
        self._m: dict[str, _Merchant] = {}
        self._lock = threading.Lock()
        # samples waiting for the sink; bounded: past it a sample is dropped (counted), never an answer slowed
        self._pending: queue.Queue[tuple[AnsweredEvent, str]] = queue.Queue(maxsize=1000)
        self._writer: threading.Thread | None = None
        self.dropped = 0

    def _of(self, merchant: str) -> _Merchant:
        m = self._m.get(merchant)
        if m is None:
            m = self._m[merchant] = _Merchant()
        return m

    def on_answer(self, ev: AnsweredEvent) -> None:
        if ev.channel not in LIVE_CHANNELS:
            return
        check = is_check(ev)
        with self._lock:
            m = self._of(ev.merchant)
            m.answers.append((ev.at, check))
            m.seen += 1
            sample = m.seen % self.sample_every == 0
        reason = ""
        if sample:
            reason = "抽检：直播中的回答"
        elif check and self._alerting(ev.merchant):
            reason = "抽检：“稍后确认”类回答突增"
        if reason and self.sink is not None:
            with self._lock:
                m.sampled += 1
            self._file(ev, reason)

    def _file(self, ev: AnsweredEvent, reason: str) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write, name="drift-sink", daemon=True)
                self._writer.start()
        try:
            self._pending.put_nowait((ev, reason))
        except queue.Full:
            self.dropped += 1

    def _write(self) -> None:
        while True:
            ev, reason = self._pending.get()
            try:
                if self.sink is not None:
                    self.sink(ev, reason)
            except Exception:  # noqa: BLE001 - a failed filing is logged; the watch goes on
                log.exception("drift sample not filed")
            finally:
                self._pending.task_done()

    def flush(self) -> None:
        """Wait until every sample so far has reached the sink."""
        self._pending.join()

    def on_review(self, merchant: str, at: float | None = None) -> None:
        with self._lock:
            self._of(merchant).reviews.append(self.clock() if at is None else at)

    # --- status ----------------------------------------------------------------------------------
    def status(self, merchant: str) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            m = self._of(merchant)
            answers, reviews, seen, sampled = list(m.answers), list(m.reviews), m.seen, m.sampled
        w0, b0 = now - self.window_s, now - self.window_s - self.baseline_s
        win = [c for t, c in answers if t >= w0]
        base = [c for t, c in answers if b0 <= t < w0]
        share = sum(win) / len(win) if win else 0.0
        base_share = sum(base) / len(base) if len(base) >= self.min_answers else None
        need = max(self.min_share, self.factor * base_share) if base_share is not None else self.min_share * self.factor
        check_alert = len(win) >= self.min_answers and share >= need
        r_win = sum(1 for t in reviews if t >= w0)
        r_base = sum(1 for t in reviews if b0 <= t < w0)
        per_min = r_win / (self.window_s / 60)
        base_per_min = r_base / (self.baseline_s / 60)
        review_alert = r_win >= 3 and per_min >= self.factor * max(base_per_min, 0.1)
        return {
            "window_s": self.window_s,
            "answers": len(win),
            "checks": sum(win),
            "check_share": round(share, 3),
            "baseline_answers": len(base),
            "baseline_check_share": None if base_share is None else round(base_share, 3),
            "threshold": round(need, 3),
            "check_alert": check_alert,
            "reviews": r_win,
            "reviews_per_min": round(per_min, 2),
            "baseline_reviews_per_min": round(base_per_min, 2),
            "review_alert": review_alert,
            "seen": seen,
            "sampled": sampled,
        }

    def _alerting(self, merchant: str) -> bool:
        return bool(self.status(merchant)["check_alert"])

    def alerts(self, merchant: str) -> list[dict[str, Any]]:
        """Dashboard alerts (console/live.py shows them with the room's own)."""
        s = self.status(merchant)
        out = []
        if s["check_alert"]:
            base = s["baseline_check_share"]
            was = f"（此前 {round(base * 100)}%）" if base is not None else ""
            out.append(
                {
                    "level": "warn",
                    "kind": "drift_checks",
                    "text": f"近{int(self.window_s // 60)}分钟 {round(s['check_share'] * 100)}% 的回答是“稍后请主播确认”{was}，"
                    "知识库可能缺资料或刚发布的版本有问题，已抽样送去复核",
                }
            )
        if s["review_alert"]:
            out.append(
                {
                    "level": "warn",
                    "kind": "drift_reviews",
                    "text": f"近{int(self.window_s // 60)}分钟有 {s['reviews']} 条回答被标记有误，明显多于此前",
                }
            )
        return out
