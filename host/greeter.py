"""Greetings and thanks without flooding: events and greeting danmaku are counted, and at most one
welcome line per ``welcome_every_s`` and one thank-you per ``thanks_every_s`` is offered to the
host loop, aggregated ("欢迎刚进来的12位朋友"). No viewer ids, names or amounts are spoken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from host.frames import RoomEvent


@dataclass
class GreeterConfig:
    welcome_every_s: float = 90.0
    thanks_every_s: float = 45.0
    min_new: int = 3  # welcome only once this many new viewers came in
    big_order: float = 300.0  # yuan: an order this big gets its own thanks


class Greeter:
    def __init__(self, clock: Callable[[], float], config: GreeterConfig | None = None):
        self.clock = clock
        self.cfg = config or GreeterConfig()
        self.new = 0
        self.greeted = 0  # greeting danmaku ("主播好") since the last welcome
        self.orders = 0
        self.big_orders = 0
        self.shares = 0
        self.fans_back = 0
        self._last_welcome = -1e18
        self._last_thanks = -1e18
        self.enabled = True

    def on_event(self, ev: RoomEvent) -> None:
        if ev.type == "enter":
            self.new += 1
        elif ev.type == "purchase":
            self.orders += 1
            if (ev.amount or 0) >= self.cfg.big_order:
                self.big_orders += 1
        elif ev.type == "share":
            self.shares += 1

    def on_greeting(self) -> None:
        self.greeted += 1

    def on_fans(self, n: int) -> None:
        self.fans_back += n

    def welcome(self) -> list[str] | None:
        """Candidate welcome sentences (variants), or None when it is not time."""
        now = self.clock()
        if not self.enabled or now - self._last_welcome < self.cfg.welcome_every_s:
            return None
        n = self.new
        if n < self.cfg.min_new and not self.greeted:
            return None
        self._last_welcome = now
        fans, self.new, self.greeted, self.fans_back = self.fans_back, 0, 0, 0
        if n >= self.cfg.min_new:
            out = [
                f"欢迎刚进直播间的{n}位朋友！",
                f"欢迎新进来的{n}位朋友，有问题随时问。",
                f"刚刚又进来{n}位朋友，欢迎欢迎！",
            ]
        else:
            out = ["谢谢大家的招呼，欢迎欢迎！", "看到大家打招呼了，欢迎！", "欢迎刚来的朋友，有问题随时问。"]
        if fans:
            out = [o + "也欢迎老粉们回来。" for o in out] + out
        return out

    def thanks(self) -> list[str] | None:
        now = self.clock()
        if not self.enabled or now - self._last_thanks < self.cfg.thanks_every_s:
            return None
        if not (self.orders or self.shares):
            return None
        self._last_thanks = now
        orders, big, shares = self.orders, self.big_orders, self.shares
        self.orders = self.big_orders = self.shares = 0
        out = []
        if big:
            out += ["感谢刚刚下大单的朋友，谢谢支持！", "谢谢下大单的朋友的信任！"]
        if orders:
            out += [f"感谢刚刚下单的{orders}位朋友！", f"谢谢{orders}位朋友的支持，已经下单的朋友耐心等发货。"]
        if shares:
            out += [f"谢谢{shares}位朋友分享直播间！", "感谢帮忙分享直播间的朋友！"]
        return out
