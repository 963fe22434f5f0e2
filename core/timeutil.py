"""Timestamps: events carry epoch seconds/milliseconds or ISO-8601 with an offset; stored as epoch seconds."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from core.errors import BadRequest

_FIXED = {
    "Asia/Shanghai": 8,
    "Asia/Hong_Kong": 8,
    "Asia/Taipei": 8,
    "Asia/Singapore": 8,
    "Asia/Tokyo": 9,
    "UTC": 0,
    "Etc/UTC": 0,
}


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # no tz database on this machine: the common fixed-offset zones still work
        if name in _FIXED:
            return timezone(timedelta(hours=_FIXED[name]), name)
        raise ValueError(f"unknown timezone {name!r}")


class BadTimestamp(BadRequest):
    code = "bad_timestamp"


def parse_ts(value: object) -> float:
    """Epoch seconds (int/float; values above 1e11 are taken as milliseconds) or ISO-8601 with an offset."""
    if isinstance(value, bool):
        raise BadTimestamp(f"timestamp must be epoch seconds or ISO-8601, got {value!r}")
    if isinstance(value, (int, float)):
        t = float(value)
        if not math.isfinite(t) or t <= 0:
            raise BadTimestamp(f"timestamp {value!r} is not a positive epoch time")
        return t / 1000.0 if t > 1e11 else t
    if isinstance(value, str):
        s = value.strip()
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith(("Z", "z")) else s)
        except ValueError:
            raise BadTimestamp(f"timestamp {value!r} is not ISO-8601 (e.g. 2025-06-01T20:15:00+08:00)") from None
        if dt.tzinfo is None:
            raise BadTimestamp(f"timestamp {value!r} has no timezone offset (add +08:00 or Z)")
        return dt.timestamp()
    raise BadTimestamp(f"timestamp must be epoch seconds or ISO-8601, got {type(value).__name__}")


def iso(t: float | None, tz: str = "Asia/Shanghai") -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, zone(tz)).isoformat(timespec="seconds")


def hour_of(t: float, tz: str) -> int:
    return datetime.fromtimestamp(t, zone(tz)).hour
