"""A live audience for unattended shows and the soak: the seeded demo audience (``sim.audience``)
watching, clicking, buying and typing danmaku on the show clock.

Per show hour, ``sim.audience.gen_session`` gives the behaviour events (heartbeats name the product
the rundown has on screen); comments become danmaku from ``host.questions`` about that product.
Scenarios exercise the host's reactions: question bursts (many viewers asking one thing in
different words), a flood of identical messages, a surge of entries with short stays, and a
purchase slump (conversion drop). Events also go to the audience service in batches, so profiles
(and the room mix) follow the show.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
from typing import Any

from host import questions as Q
from host.frames import RoomEvent
from host.room import HostRoom
from host.rundown import Timeline
from sim.audience import gen_session, gen_viewers

log = logging.getLogger("liveroom.host")


class ShowSimulator:
    def __init__(
        self,
        room: HostRoom,
        timeline: Timeline,
        products: list[dict],
        *,
        viewers: int = 3000,
        seed: int = 7,
        audience: Any | None = None,
        scenarios: bool = True,
        attendance: float = 0.35,
        danmaku_per_comment: int = 2,
        step_s: float = 1.0,
        ingest_every_s: float = 10.0,
        max_audience_buffer: int = 20_000,
    ):
        self.room, self.timeline = room, timeline
        self.products = {p["sku"]: p for p in products}
        self.viewers = gen_viewers(viewers, seed) if viewers else []
        self.seed, self.audience, self.scenarios = seed, audience, scenarios
        self.attendance, self.per_comment = attendance, danmaku_per_comment
        self.step_s, self.ingest_every_s = step_s, ingest_every_s
        self.max_buffer = max_audience_buffer
        self.rng = random.Random(seed)
        slots = timeline.slots()
        self._starts = [s.start for s in slots]
        self._skus = [getattr(s.segment, "sku", None) for s in slots]
        self._buf: list[dict] = []
        self._flush: asyncio.Task | None = None
        self.stats = {
            "events": 0,
            "danmaku": 0,
            "audience_accepted": 0,
            "audience_rejected": 0,
            "audience_dropped": 0,
            "audience_errors": 0,
        }

    def sku_at(self, ts: float) -> str | None:
        i = bisect.bisect_right(self._starts, ts) - 1
        for j in range(i, -1, -1):  # a coupon / Q&A slot keeps the last product on screen
            if 0 <= j < len(self._skus) and self._skus[j]:
                return self._skus[j]
        return next((s for s in self._skus if s), None)

    def category(self, sku: str | None) -> str | None:
        p = self.products.get(sku or "")
        return p.get("category") if p else None

    # --- generation ---------------------------------------------------------------------------------
    def hour(self, start: float, h: int) -> list[dict]:
        end = start + 3600
        prods = list(self.products.values()) or [{"sku": "X", "price": 100}]
        evs = gen_session(
            self.viewers,
            prods,
            seed=self.seed * 1000 + h,
            end=end,
            minutes=60,
            attendance=self.attendance,
            id_prefix=f"sim-{self.room.room_id}-{int(start)}",
        )
        rng = random.Random(self.seed * 7 + h)
        out: list[dict] = []
        for e in evs:
            if e["type"] in ("watch",) or (e["type"] == "product_click" and rng.random() < 0.6):
                e["sku"] = self.sku_at(e["ts"]) or e.get("sku")
            if self.scenarios and e["type"] == "purchase" and 40 * 60 <= e["ts"] - start < 55 * 60:
                continue  # the slump: nobody buys for a while
            out.append(e)
            if e["type"] == "comment":
                for k in range(self.per_comment):
                    out.append(
                        {
                            "type": "danmaku",
                            "viewer_id": e["viewer_id"],
                            "ts": e["ts"] + k * 7.0,
                            "text": self._text(rng, e["ts"]),
                        }
                    )
        if self.scenarios:
            out += self._scenarios(start, h, rng, evs)
        out.sort(key=lambda x: x["ts"])
        return [e for e in out if start <= e["ts"] < end]

    def _text(self, rng: random.Random, ts: float) -> str:
        r = rng.random()
        topics = Q.topics_for(self.category(self.sku_at(ts)))
        if r < 0.45:
            return Q.question(rng, rng.choice(topics))
        if r < 0.50:
            return Q.unique_question(rng, rng.choice(topics))
        if r < 0.56:
            return rng.choice(Q.COUPON_REQUESTS)
        if r < 0.59:
            return rng.choice(Q.SPAM)
        if r < 0.60:
            return rng.choice(Q.ABUSE + Q.INJECTION)
        return Q.chatter(rng)

    def _scenarios(self, start: float, h: int, rng: random.Random, evs: list[dict]) -> list[dict]:
        out: list[dict] = []
        present = sorted({e["viewer_id"] for e in evs if e["type"] == "enter"})
        for minute in (7, 22, 37, 52):  # question bursts: 6-12 viewers, one question, many phrasings
            t = start + minute * 60
            topics = Q.BY_CATEGORY.get(self.category(self.sku_at(t)) or "", []) or Q.COMMON
            topic = rng.choice(topics)
            for i, v in enumerate(rng.sample(present, min(len(present), rng.randint(6, 12)))):
                out.append(
                    {"type": "danmaku", "viewer_id": v, "ts": t + i * rng.uniform(1, 5), "text": Q.question(rng, topic)}
                )
        t = start + 12 * 60  # a flood: one viewer spamming, and a wall of identical chatter
        bot = present[0] if present else "bot"
        out += [{"type": "danmaku", "viewer_id": bot, "ts": t + i * 0.2, "text": "上链接上链接"} for i in range(60)]
        out += [
            {"type": "danmaku", "viewer_id": f"wall-{h}-{i}", "ts": t + i * 0.05, "text": "666"} for i in range(150)
        ]
        t = start + 27 * 60  # an entry surge with short stays (a traffic push of people who don't stay)
        for i in range(250):
            v, te = f"surge-{h}-{i}", t + rng.uniform(0, 55)
            out.append({"type": "enter", "viewer_id": v, "ts": te, "event_id": f"sim-surge-{int(start)}-{i}-e"})
            if rng.random() < 0.75:
                out.append(
                    {
                        "type": "leave",
                        "viewer_id": v,
                        "ts": te + rng.uniform(4, 25),
                        "event_id": f"sim-surge-{int(start)}-{i}-l",
                    }
                )
        return out

    # --- playback -----------------------------------------------------------------------------------
    async def run(self, until: float | None = None) -> None:
        clock = self.room.clock
        end = until or self.timeline.end
        h, hour_start = 0, self.timeline.start
        try:
            while hour_start < end:
                events = self.hour(hour_start, h)
                i = 0
                next_flush = clock.now() + self.ingest_every_s
                while i < len(events):
                    now = clock.now()
                    if now >= end:
                        return
                    while i < len(events) and events[i]["ts"] <= now:
                        self._play(events[i])
                        i += 1
                    if now >= next_flush:
                        next_flush = now + self.ingest_every_s
                        self._flush_audience()
                    await clock.sleep(self.step_s)
                h, hour_start = h + 1, hour_start + 3600
        finally:
            self._flush_audience()
            if self._flush is not None:
                try:
                    await self._flush
                except Exception:
                    pass

    def _play(self, e: dict) -> None:
        if e["type"] == "danmaku":
            self.stats["danmaku"] += 1
            self.room.ingest(e["viewer_id"], e["text"], ts=e["ts"])
            return
        self.stats["events"] += 1
        self.room.ingest_event(
            RoomEvent(
                type=e["type"],
                viewer_id=e["viewer_id"],
                ts=e["ts"],
                sku=e.get("sku"),
                amount=e.get("amount"),
                seconds=e.get("seconds"),
                campaign_id=e.get("campaign_id"),
                coupon_used=bool(e.get("coupon_used")),
                event_id=e.get("event_id"),
            )
        )
        if self.audience is not None and e.get("event_id"):
            self._buf.append(e)
            if len(self._buf) > self.max_buffer:
                drop = len(self._buf) - self.max_buffer
                del self._buf[:drop]
                self.stats["audience_dropped"] += drop

    def _flush_audience(self) -> None:
        if self.audience is None or not self._buf:
            return
        if self._flush is not None and not self._flush.done():
            return  # the last batch is still being written: keep buffering
        batch, self._buf = self._buf[: self.audience.max_batch], self._buf[self.audience.max_batch :]
        if self.room.clusterer.inline:
            self._ingest(batch)
        else:
            self._flush = asyncio.create_task(asyncio.to_thread(self._ingest, batch))

    def _ingest(self, batch: list[dict]) -> None:
        try:
            r = self.audience.ingest(self.room.merchant, batch)
            self.stats["audience_accepted"] += r.accepted
            self.stats["audience_rejected"] += r.rejected
        except Exception:
            self.stats["audience_errors"] += 1
            log.exception("audience ingest failed")
