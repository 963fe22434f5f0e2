"""Push timing: when to send each viewer their copy.

* pre-show: shortly before the segment of the product they care about (or the show start), at a time
  they are usually active, never in quiet hours, and not absurdly early;
* live: push / SMS just before the product's segment; pop-up and host lines when the product is on;
* post-show: the first of their active hours after the show (plus a short delay), else the first time
  outside quiet hours.
Active hours are local hours of day (the profile's ``active_hours``, in the merchant's timezone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from copywriting.schema import Show
from core.timeutil import zone

DEFAULT_HOURS = (12, 19, 20)  # when nothing is known about a viewer: lunch and evening


@dataclass(frozen=True)
class TimingPolicy:
    quiet_start: int = 22  # local hour quiet hours begin (inclusive)
    quiet_end: int = 8  # local hour they end (exclusive)
    lead_minutes: int = 30  # pre-show: this long before the product's segment / the show
    max_advance_hours: float = 12.0  # pre-show: not earlier than this before the target
    post_delay_minutes: int = 30  # post-show: not earlier than this after the end
    post_window_hours: float = 48.0  # post-show: look this far for an active hour
    tz: str = "Asia/Shanghai"

    def quiet(self, t: datetime) -> bool:
        h = t.astimezone(zone(self.tz)).hour
        if self.quiet_start == self.quiet_end:
            return False
        if self.quiet_start > self.quiet_end:  # wraps midnight (22 → 8)
            return h >= self.quiet_start or h < self.quiet_end
        return self.quiet_start <= h < self.quiet_end


@dataclass
class SendPlan:
    at: datetime | None  # None: no allowed time (don't send)
    reason: str


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _last_allowed_before(target: datetime, earliest: datetime, p: TimingPolicy) -> datetime | None:
    """The latest minute ≤ target, ≥ earliest, outside quiet hours."""
    t = target
    while t >= earliest:
        if not p.quiet(t):
            return t
        t = _floor_hour(t) - timedelta(minutes=1)
    return None


def plan(
    phase: str,
    channel: str,
    show: Show,
    sku: str | None,
    active_hours: list[int] | None,
    policy: TimingPolicy = TimingPolicy(),
    now: datetime | None = None,
) -> SendPlan:
    tz = zone(policy.tz)
    now = (now or datetime.now(tz)).astimezone(tz)
    hours = set(active_hours or ()) or set(DEFAULT_HOURS)
    source = "active hours" if active_hours else "default hours"
    seg = show.segment_for(sku) if sku else None
    anchor = (seg.start if seg else show.start).astimezone(tz)
    what = f"the {sku} segment" if seg else "the show"
    in_room = channel in ("popup", "host")

    if phase == "live":
        if in_room:
            at = max(anchor, now)
            return SendPlan(at, f"when {what} starts (in the room: no quiet hours)")
        at = max(anchor - timedelta(minutes=5), now)
        if policy.quiet(at):
            return SendPlan(None, "quiet hours during the show: no push")
        return SendPlan(at, f"5 minutes before {what}")

    if phase == "pre":
        target = anchor - timedelta(minutes=policy.lead_minutes)
        if target < now:
            if anchor <= now:
                return SendPlan(None, f"{what} has already started")
            target = now
        earliest = max(now, target - timedelta(hours=policy.max_advance_hours))
        # latest active-hour slot at or before the target
        slot = _floor_hour(target)
        while slot + timedelta(hours=1) > earliest:
            if slot.hour in hours:
                at = min(target, slot + timedelta(minutes=59))
                at = max(at, earliest)
                if not policy.quiet(at) and at <= target:
                    return SendPlan(at, f"{source} ({slot.hour}:00) before {what}")
            slot -= timedelta(hours=1)
        at = _last_allowed_before(target, earliest, policy)
        if at is None:
            return SendPlan(None, "no time outside quiet hours before the show")
        return SendPlan(at, f"{policy.lead_minutes} min before {what} (no active hour in the window)")

    # post-show recall
    start = show.end_time().astimezone(tz) + timedelta(minutes=policy.post_delay_minutes)
    start = max(start, now)
    end = start + timedelta(hours=policy.post_window_hours)
    slot = _floor_hour(start)
    while slot < end:
        if slot.hour in hours:
            at = max(slot, start)
            if not policy.quiet(at):
                return SendPlan(at, f"first {source[:-1]} ({slot.hour}:00) after the show")
        slot += timedelta(hours=1)
    t = start
    while policy.quiet(t) and t < end:
        t = _floor_hour(t) + timedelta(hours=1)
    return SendPlan(t if not policy.quiet(t) else None, "first time outside quiet hours after the show")
