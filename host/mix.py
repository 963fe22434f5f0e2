"""Who is in the room right now: presence from enter/leave/heartbeat events, and the audience mix
(tier shares, top interest tags, price sensitivity) from the viewers' profiles.

The mix decides how a script leads (``RoomMix.angles``): price first for a price-sensitive room,
fan benefits for a room of regulars, an interest hook when the room's interests match the product.
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from host.frames import RoomEvent


class Presence:
    """Viewers in the room: entered and not left, seen within ``idle_s`` (a missed leave expires)."""

    def __init__(self, idle_s: float = 600.0, max_viewers: int = 200_000):
        self.idle_s, self.max_viewers = idle_s, max_viewers
        self._seen: OrderedDict[str, float] = OrderedDict()  # viewer → last seen (oldest first)
        self._entered: dict[str, float] = {}
        self.new_since_mix: list[str] = []

    def record(self, ev: RoomEvent) -> float | None:
        """Update; returns the stay in seconds when a viewer leaves."""
        v = ev.viewer_id
        if ev.type == "leave":
            self._seen.pop(v, None)
            start = self._entered.pop(v, None)
            return max(0.0, ev.ts - start) if start is not None else ev.seconds
        if ev.type == "enter":
            self._entered[v] = ev.ts
            if len(self.new_since_mix) < 5000:
                self.new_since_mix.append(v)
        self._seen[v] = ev.ts
        self._seen.move_to_end(v)
        if len(self._seen) > self.max_viewers:
            old, _ = self._seen.popitem(last=False)
            self._entered.pop(old, None)
        return None

    def expire(self, now: float) -> None:
        horizon = now - self.idle_s
        while self._seen:
            v, ts = next(iter(self._seen.items()))
            if ts >= horizon:
                break
            self._seen.popitem(last=False)
            self._entered.pop(v, None)

    def __len__(self) -> int:
        return len(self._seen)

    def viewers(self) -> list[str]:
        return list(self._seen)

    def sample(self, n: int, rng: random.Random | None = None) -> list[str]:
        vs = self.viewers()
        if len(vs) <= n:
            return vs
        return (rng or random).sample(vs, n)


@dataclass
class RoomMix:
    viewers: int = 0  # in the room
    sampled: int = 0  # profiles read
    tiers: dict[str, float] = field(default_factory=dict)  # share per tier
    top_tags: list[str] = field(default_factory=list)  # "护肤兴趣" …
    price_high: float = 0.0  # share with high price sensitivity
    members: float = 0.0

    @property
    def fans(self) -> float:
        return self.tiers.get("铁粉", 0.0)

    @property
    def newcomers(self) -> float:
        return self.tiers.get("路过", 0.0)

    def angles(self) -> list[str]:
        """Lead angles for the script, strongest first."""
        out = []
        if self.sampled and self.price_high >= 0.35:
            out.append("price")
        if self.sampled and (self.fans >= 0.3 or self.members >= 0.3):
            out.append("fans")
        if self.sampled and self.newcomers >= 0.5:
            out.append("newcomers")
        return out

    def interest_in(self, *words: str) -> str | None:
        """The room's top interest tag matching any of ``words`` (a product's name / category)."""
        for tag in self.top_tags:
            base = tag.replace("兴趣", "")
            if base and any(base in w for w in words if w):
                return base
        return None

    def describe(self) -> str:
        if not self.sampled:
            return "empty room" if not self.viewers else "no profiles"
        tiers = ", ".join(f"{k} {v:.0%}" for k, v in sorted(self.tiers.items(), key=lambda kv: -kv[1]))
        return (
            f"{self.viewers} viewers ({tiers}); interests {', '.join(self.top_tags[:3]) or '-'}; "
            f"price-sensitive {self.price_high:.0%}"
        )


def mix_from_profiles(viewers: int, profiles: Iterable[Any]) -> RoomMix:
    """``profiles``: ``ProfileView``s of (a sample of) the viewers present."""
    ps = list(profiles)
    if not ps:
        return RoomMix(viewers=viewers)
    n = len(ps)
    tiers = Counter(p.tier for p in ps)
    tags: Counter = Counter()
    for p in ps:
        for t in p.interest_tags[:3]:
            tags[t.tag] += t.weight
    return RoomMix(
        viewers=viewers,
        sampled=n,
        tiers={k: v / n for k, v in tiers.items()},
        top_tags=[t for t, _ in tags.most_common(5)],
        price_high=sum(p.price_sensitivity == "high" for p in ps) / n,
        members=sum(bool(p.member) for p in ps) / n,
    )
