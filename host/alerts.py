"""Alerts from the funnel and the question clusters, for the host loop (which reacts) and the console.

- ``entry_surge_short_stay``: entries in the last minute ≥ ``surge_factor`` × the recent median and
  ≥ ``surge_min_entries``, while many who leave stay under 30 s → the host hooks newcomers;
- ``conversion_drop``: orders per active viewer over the last ``window_min`` minutes fell below
  ``drop_ratio`` × the preceding ``baseline_min`` minutes (with enough orders to mean something)
  → the host switches to a flash coupon;
- ``question_unanswered``: a hot question cluster not answered within ``unanswered_after_s``
  → the host answers it;
- ``empty_room``: nobody online for ``empty_after_s``.
Each kind has a cooldown, so an alert is raised once per episode, not every tick.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable

from pydantic import BaseModel, Field

from host.clustering import Clusterer
from host.frames import Alert
from host.funnel import Funnel


class AlertRules(BaseModel):
    surge_factor: float = Field(3.0, gt=1)
    surge_min_entries: int = Field(20, ge=1)
    short_stay_share: float = Field(0.5, gt=0, le=1)
    window_min: int = Field(5, ge=1, le=60)
    baseline_min: int = Field(20, ge=2, le=240)
    drop_ratio: float = Field(0.5, gt=0, lt=1)
    min_baseline_orders: int = Field(5, ge=1)
    unanswered_after_s: float = Field(45.0, gt=0)
    empty_after_s: float = Field(120.0, gt=0)
    cooldown_s: dict[str, float] = Field(
        default_factory=lambda: {
            "entry_surge_short_stay": 600,
            "conversion_drop": 900,
            "question_unanswered": 120,
            "empty_room": 1800,
        }
    )


class AlertEngine:
    def __init__(
        self,
        merchant: str,
        room_id: str,
        funnel: Funnel,
        clusters: Clusterer | None,
        publish: Callable[[Alert], None],
        clock: Callable[[], float],
        rules: AlertRules | None = None,
    ):
        self.merchant, self.room_id = merchant, room_id
        self.funnel, self.clusters, self.publish, self.clock = funnel, clusters, publish, clock
        self.rules = rules or AlertRules()
        self._last: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._empty_since: float | None = None
        self._unanswered_sent: dict[str, float] = {}
        self.raised: list[Alert] = []  # the last 200 (for the console / tests)

    def alert(
        self,
        kind: str,
        message: str,
        *,
        action: str = "none",
        severity: str = "warning",
        key: str | None = None,
        **data,
    ) -> Alert | None:
        now = self.clock()
        k = key or kind
        cd = self.rules.cooldown_s.get(kind, 300.0)
        if now - self._last.get(k, -1e18) < cd:
            return None
        self._last[k] = now
        if len(self._last) > 2000:
            self._last = dict(list(self._last.items())[-1000:])
        a = Alert(
            alert_id=f"a{next(self._ids)}",
            merchant=self.merchant,
            room_id=self.room_id,
            kind=kind,
            severity=severity,
            message=message,
            at=now,
            action=action,
            data=data,
        )
        self.raised.append(a)
        del self.raised[:-200]
        self.publish(a)
        return a

    def evaluate(self) -> list[Alert]:
        out = [a for a in (self._surge(), self._conversion(), self._empty()) if a]
        out += self._unanswered()
        return out

    # --- rules ------------------------------------------------------------------------------------
    def _closed(self, n: int) -> list:
        """The last ``n`` closed minutes (the current one is still filling)."""
        s = self.funnel.series(n + 1, self.clock())
        return s[:-1]

    def _surge(self) -> Alert | None:
        r = self.rules
        s = self._closed(11)
        if len(s) < 3:
            return None
        last, prev = s[-1], s[:-1]
        base = statistics.median(m.entries for m in prev) if prev else 0
        if last.entries < r.surge_min_entries or last.entries < r.surge_factor * max(base, 1):
            return None
        left = last.leaves
        short_share = last.short_stays / left if left else 0.0
        if short_share < r.short_stay_share:
            return None
        return self.alert(
            "entry_surge_short_stay",
            f"进入人数激增（{last.entries}人/分钟，平时约{base:g}人），但{short_share:.0%}的离开观众停留不足30秒，"
            f"建议马上讲核心卖点和福利留住新观众",
            action="hook",
            entries=last.entries,
            baseline=base,
            short_stay_share=round(short_share, 2),
        )

    def _conversion(self) -> Alert | None:
        r = self.rules
        s = self._closed(r.window_min + r.baseline_min)
        if len(s) < r.window_min + r.baseline_min:
            return None
        base, cur = s[: r.baseline_min], s[r.baseline_min :]
        b_orders, b_active = sum(m.orders for m in base), sum(m.active_viewers for m in base)
        c_orders, c_active = sum(m.orders for m in cur), sum(m.active_viewers for m in cur)
        if b_orders < r.min_baseline_orders or not b_active or not c_active:
            return None
        b_rate, c_rate = b_orders / b_active, c_orders / c_active
        if c_rate >= r.drop_ratio * b_rate:
            return None
        return self.alert(
            "conversion_drop",
            f"近{r.window_min}分钟转化率{c_rate:.2%}，低于前{r.baseline_min}分钟的{b_rate:.2%}，建议上限时福利券",
            action="flash_coupon",
            rate=round(c_rate, 4),
            baseline=round(b_rate, 4),
        )

    def _empty(self) -> Alert | None:
        now = self.clock()
        if self.funnel.online > 0:
            self._empty_since = None
            return None
        if self._empty_since is None:
            self._empty_since = now
            return None
        if now - self._empty_since < self.rules.empty_after_s:
            return None
        return self.alert(
            "empty_room",
            "直播间暂时没有观众，主播继续按脚本讲解，观众进入后会打招呼",
            severity="info",
            since=self._empty_since,
        )

    def _unanswered(self) -> list[Alert]:
        if self.clusters is None:
            return []
        now = self.clock()
        out = []
        for c in self.clusters.hottest(limit=5, unanswered=True, min_viewers=self.clusters.cfg.min_viewers):
            if not c.hot or c.hot_at is None or now - c.hot_at < self.rules.unanswered_after_s:
                continue
            a = self.alert(
                "question_unanswered",
                f"{c.heat}位观众在问「{c.label}」，{now - c.hot_at:.0f}秒还没有回答",
                action="answer_cluster",
                key=f"unanswered:{c.cluster_id}",
                cluster_id=c.cluster_id,
                viewers=c.heat,
                label=c.label,
            )
            if a:
                out.append(a)
        return out
