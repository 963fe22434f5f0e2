"""The virtual host: runs a rundown by itself, sentence by sentence, on the show clock.

Between two sentences (never inside one: the current sentence always finishes) the host looks at
what the room needs, in this order:

1. hot question clusters, hottest first — answered aloud, then a bridge line and the script
   resumes at the next sentence it had not said;
2. alerts — a conversion drop switches to a flash coupon (a real, announceable campaign), an entry
   surge gets a hook line for newcomers;
3. welcomes and thanks (aggregated, rate-limited).

Failures never stop the show: a segment that fails is logged and skipped, a missing product turns
its segment into Q&A, the voice falls back to the text track, the LLM falls back to templates.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from agent.messages import ViewerMessage
from host.answers import guard, render_fact, short_name, topic_fact
from host.clustering import Cluster
from host.frames import Alert, SpokenLine
from host.meaning import MeaningMemory
from host.personal import has_personal, redact
from host.room import HostRoom
from host.rundown import ClosingSegment, CouponSegment, OpeningSegment, ProductSegment, Rundown, Slot, Timeline
from host.script import Line, Rephraser, ScriptWriter, ShowMemory
from host.speech import Speaker
from host.topics import is_store_topic, on_topic, topics_of
from knowledge.schema import Product

log = logging.getLogger("liveroom.host")


@dataclass
class LoopConfig:
    max_answers_per_break: int = 2  # hot clusters answered back to back before the script resumes
    qa_min_viewers: int = 2  # in a Q&A segment, a cluster this big is answered
    flash_cooldown_s: float = 600.0
    hook_cooldown_s: float = 300.0
    llm_lines: int = 4  # script lines per segment the LLM may reword (ahead of time)
    quiet_step_s: float = 5.0  # how long the host listens when it has nothing to say


class ShowReport(BaseModel):
    merchant: str
    room_id: str
    started_at: float
    ended_at: float = 0.0
    show_hours: float = 0.0
    wall_s: float = 0.0
    slots: int = 0
    lines: int = 0
    lines_by_kind: dict[str, int] = Field(default_factory=dict)
    repeated_lines: int = 0  # lines said that repeat an earlier one by meaning (host/meaning.py)
    repeats_withheld: int = 0  # lines not said because they would have
    answered_clusters: int = 0
    announcements: list[dict[str, Any]] = Field(default_factory=list)
    skipped_segments: list[dict[str, Any]] = Field(default_factory=list)
    alerts: dict[str, int] = Field(default_factory=dict)
    reactions: dict[str, int] = Field(default_factory=dict)
    suggestions: int = 0
    replies: int = 0
    coupons_issued: int = 0
    segment_errors: int = 0
    llm: dict[str, int] = Field(default_factory=dict)
    speech: dict[str, float] = Field(default_factory=dict)
    danmaku: dict[str, int] = Field(default_factory=dict)
    funnel: dict[str, Any] = Field(default_factory=dict)


_ADDRESS = re.compile(r"^(主播|请问|宝宝们|姐妹们|家人们|亲)+[,，、～~ ]*")
_TAIL = re.compile(r"[啊呀呢哈哦～~!！?？。.,，\s\U0001F300-\U0001FAFF]+$")


def clean_question(text: str) -> str:
    """ "主播主播，七天无理由吗呀😊" → "七天无理由吗" (for reading a viewer's question out)."""
    t = _ADDRESS.sub("", text.strip())
    t = _TAIL.sub("", t)
    t = t or text
    return redact(t)[:30] if has_personal(t) else t[:30]  # a viewer's weight, phone, address never on air


_CJK_OR_WORD = re.compile(r"[\u4e00-\u9fff]|[A-Za-z0-9]+")
_FUNCTION = set("吗呢吧啊呀的了么是不能会可以有没这那个什怎样多少么和与就都还也很太要用")


def answers_question(answer: str, questions: list[str], p: Product | None) -> bool:
    """Does the answer share a content word (a CJK bigram or a latin/number token) with the question,
    once the product's own name is taken out? A question the topic book does not know ('吃饭会掉吗' on a
    power bank) is answered only by a fact that speaks to it."""

    def grams(t: str) -> set[str]:
        if p is not None:
            t = t.replace(p.name, " ").replace(short_name(p), " ")
        toks = _CJK_OR_WORD.findall(t)
        out = {x.lower() for x in toks if len(x) > 1}
        cjk = [x for x in toks if len(x) == 1]
        out |= {a + b for a, b in zip(cjk, cjk[1:]) if not (a in _FUNCTION and b in _FUNCTION)}
        return out

    a = grams(answer)
    return any(grams(q) & a for q in questions)


class HostLoop:
    def __init__(
        self,
        room: HostRoom,
        rundown: Rundown,
        speaker: Speaker,
        *,
        hours: float | None = None,
        llm: Any | None = None,
        config: LoopConfig | None = None,
        shop: str | None = None,
    ):
        self.room, self.rundown, self.speaker = room, rundown, speaker
        self.clock = room.clock
        self.hours = rundown.hours if hours is None else hours
        self.cfg = config or LoopConfig()
        self.memory = ShowMemory()
        snap = room.snapshot()
        self.shop = shop or (snap.catalog.merchant.name if snap and snap.catalog.merchant.name else room.merchant)
        self.writer = ScriptWriter(self.memory, self.shop)
        self.rephraser = Rephraser(llm, self.memory, clock=self.clock.now) if llm is not None else None
        self._alerts = room.bus.subscribe(["alert"], maxsize=100)
        self.slot: Slot | None = None
        self.product: Product | None = None
        self.seq = 0
        self.said: list[SpokenLine] = []  # the last 1000 lines (tests, console)
        self._kinds: dict[str, int] = {}
        self._spoken: set[bytes] = set()  # audit: every sentence actually said
        # …and what they meant: nothing is said twice in other words. Answers are weighed against answers
        # only: a viewer asking what the script said deserves the answer.
        self._meaning = {k: MeaningMemory(room.embed, self._catalog_names) for k in ("answer", "show")}
        self._names: tuple[Any, dict[str, str]] = (None, {})
        self._answered_keys: OrderedDict[str, float] = OrderedDict()
        self._last_flash = -1e18
        self._last_hook = -1e18
        self._last_interaction = -1e18
        self._stop = asyncio.Event()
        self.report = ShowReport(merchant=room.merchant, room_id=room.room_id, started_at=self.clock.now())

    def attach_llm(self, llm: Any) -> None:
        """The LLM came up mid-show: script lines from the next segment on may be reworded."""
        if llm is not None and self.rephraser is None:
            self.rephraser = Rephraser(llm, self.memory, clock=self.clock.now)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- the show ---------------------------------------------------------------------------------
    async def run(self) -> ShowReport:
        t0 = time.perf_counter()
        start = self.clock.now()
        self.report.started_at = start
        timeline = Timeline(self.rundown, start, self.hours)
        try:
            for slot in timeline:
                if self.stopping:
                    break
                if self.clock.now() >= slot.end:
                    continue  # an earlier segment overran
                self.slot = slot
                self.report.slots += 1
                try:
                    await self._segment(slot)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # one broken segment must not end a 24-hour show
                    self.report.segment_errors += 1
                    log.exception("segment %d (%s) failed; moving on", slot.index, slot.segment.type)
                    self.report.skipped_segments.append(
                        {"slot": slot.index, "type": slot.segment.type, "reason": f"error: {e}"}
                    )
                    await self._listen_until(slot.end)
        finally:
            self._alerts.close()
            self.room.context_sku = None
            self._finish(t0)
        return self.report

    def _finish(self, t0: float) -> None:
        r = self.report
        r.ended_at = self.clock.now()
        r.show_hours = round((r.ended_at - r.started_at) / 3600, 3)
        r.wall_s = round(time.perf_counter() - t0, 2)
        r.lines = self.seq
        r.lines_by_kind = dict(self._kinds)
        r.alerts = {}
        for a in self.room.alerts.raised:
            r.alerts[a.kind] = r.alerts.get(a.kind, 0) + 1
        r.suggestions = len(self.room.suggestions.latencies_ms)
        r.replies = self.room.stats["replies"]
        r.coupons_issued = self.room.stats["coupons_issued"]
        r.llm = dict(self.rephraser.stats) if self.rephraser else {}
        r.speech = {k: round(float(v), 1) for k, v in self.speaker.stats.items()}
        r.danmaku = {"received": self.room.triage.stats.received, **self.room.triage.stats.by_kind}
        r.funnel = self.room.funnel.totals().model_dump()

    async def _segment(self, slot: Slot) -> None:
        seg = slot.segment
        self.room.qa_mode = False
        if isinstance(seg, ProductSegment):
            await self._product(slot, seg)
        elif isinstance(seg, CouponSegment):
            await self._coupon(slot, seg)
        elif isinstance(seg, OpeningSegment):
            await self._opening(slot)
        elif isinstance(seg, ClosingSegment):
            await self._closing(slot)
        else:
            await self._qa(slot)

    # --- segments -----------------------------------------------------------------------------------
    def _current_product(self, sku: str) -> Product | None:
        snap = self.room.snapshot()
        return snap.product(sku) if snap is not None else None

    def _sku_missing(self, slot: Slot, sku: str) -> None:
        if self.product is not None and self.product.sku == sku:
            self.product = None
        if self.room.context_sku == sku:
            self.room.context_sku = None
        self.room.alerts.alert(
            "sku_missing",
            f"商品{sku}已不在知识库中，本段改为答疑",
            action="skip_segment",
            key=f"sku_missing:{sku}:{slot.index}",
            sku=sku,
            slot=slot.index,
        )
        self.report.skipped_segments.append(
            {"slot": slot.index, "type": "product", "sku": sku, "reason": "sku no longer in the knowledge base"}
        )

    async def _product(self, slot: Slot, seg: ProductSegment) -> None:
        p = self._current_product(seg.sku)
        if p is None:
            self._sku_missing(slot, seg.sku)
            return await self._qa(slot, intro=False)
        self.product = p
        self.room.context_sku = p.sku
        mix = await self.room.refresh_mix()
        snap = self.room.snapshot()
        lines, spare = self.writer.product(snap, p, mix, self.room.coupons.offers(p.sku), seg.emphasis, slot.loop)
        improve = None
        if self.rephraser is not None and self.rephraser.available and len(lines) > 1:
            improve = asyncio.create_task(self.rephraser.improve(lines[1:], self.cfg.llm_lines))
        try:
            await self._script(slot, lines, spare, sku=p.sku)
        finally:
            if improve is not None and not improve.done():
                improve.cancel()

    async def _script(self, slot: Slot, lines: list[Line], spare: Any = iter(()), sku: str | None = None) -> None:
        """Say ``lines`` in order, serving the room between sentences; fill the rest of the slot."""
        i = 0
        gap = self.rundown.pace.gap_seconds
        while self.clock.now() < slot.end and not self.stopping:
            if sku is not None and self._current_product(sku) is None:  # removed mid-show
                self._sku_missing(slot, sku)
                return await self._qa(slot, intro=False)
            if await self._serve_room(resume=0 < i < len(lines)):
                continue
            if i < len(lines):
                await self._say(lines[i])
                i += 1
                await self.clock.sleep(gap)
            elif self.clock.now() - self._last_interaction >= self.rundown.pace.interaction_every_s:
                self._last_interaction = self.clock.now()
                ln = self.writer.interaction(self.product if sku else None)
                if ln:
                    await self._say(ln)
            elif (ln := next(spare, None)) is not None:
                await self._say(ln)
                await self.clock.sleep(gap)
            else:
                await self._listen(slot.end)

    async def _listen(self, until: float) -> None:
        await self.clock.sleep(max(0.0, min(self.cfg.quiet_step_s, until - self.clock.now())))

    async def _listen_until(self, until: float) -> None:
        while self.clock.now() < until and not self.stopping:
            await self._listen(until)

    async def _coupon(self, slot: Slot, seg: CouponSegment) -> None:
        p = self._current_product(seg.sku) if seg.sku else None
        if p is not None:
            self.room.context_sku = p.sku
            self.product = p
        campaign, why = self.room.coupons.announceable(seg.campaign)
        if campaign is None or why:
            self.room.alerts.alert(
                "coupon_unavailable",
                f"券{seg.campaign}不能播报（{why}），本段改为答疑",
                action="skip_segment",
                key=f"coupon:{seg.campaign}:{slot.index}",
                campaign_id=seg.campaign,
                reason=why,
            )
            self.report.skipped_segments.append(
                {"slot": slot.index, "type": "coupon", "campaign": seg.campaign, "reason": why}
            )
            return await self._qa(slot)
        await self._announce(campaign, p, slot, reason="rundown")
        await self._qa(slot, intro=False)

    async def _announce(self, campaign: Any, p: Product | None, slot: Slot, reason: str) -> bool:
        snap = self.room.snapshot()
        facts = [f for f in snap.index.facts if p is not None and f.sku == p.sku] if snap else []
        lines = self.writer.coupon(campaign, p, facts)
        if not lines:
            return False
        self.report.announcements.append(
            {
                "campaign_id": campaign.campaign_id,
                "title": campaign.title,
                "at": self.clock.now(),
                "slot": slot.index,
                "reason": reason,
                "remaining": campaign.remaining,
            }
        )
        for ln in lines:
            await self._say(ln)
        return True

    async def _qa(self, slot: Slot, intro: bool = True) -> None:
        self.room.qa_mode = True
        try:
            if intro and (ln := self.writer.qa_intro()):
                await self._say(ln)
            while self.clock.now() < slot.end and not self.stopping:
                if await self._serve_room(resume=False):
                    continue
                if await self._answer_single():
                    continue
                if self.clock.now() - self._last_interaction >= self.rundown.pace.interaction_every_s:
                    self._last_interaction = self.clock.now()
                    if ln := self.writer.interaction(self.product):
                        await self._say(ln)
                        continue
                await self._listen(slot.end)
        finally:
            self.room.qa_mode = False

    async def _opening(self, slot: Slot) -> None:
        snap = self.room.snapshot()
        names, facts = [], []
        for sku in self.rundown.skus():
            p = snap.product(sku) if snap else None
            if p is not None:
                names.append(short_name(p))
                facts += [f for f in snap.index.facts if f.sku == sku and f.kind == "summary"]
        offers = self.room.coupons.active()
        await self.room.refresh_mix(force=True)
        await self._script(slot, self.writer.opening(self.shop, self.rundown.title, names, offers, facts))

    async def _closing(self, slot: Slot) -> None:
        """The closing lines, the room served between them; after the sign-off the host says nothing more
        (no answers, greetings or fillers) until the slot ends."""
        self.product = None
        self.room.context_sku = None
        lines = self.writer.closing(self.shop)
        if not lines:
            return await self._listen_until(slot.end)
        gap = self.rundown.pace.gap_seconds
        for i, ln in enumerate(lines):
            if self.clock.now() >= slot.end or self.stopping:
                return
            while i and await self._serve_room(resume=True) and self.clock.now() < slot.end:
                pass
            await self._say(ln)
            await self.clock.sleep(gap)
        self.room.context_sku = None
        await self._listen_until(slot.end)

    # --- serving the room between sentences --------------------------------------------------------
    async def _serve_room(self, resume: bool) -> bool:
        """Hot questions, alerts, greetings. True if anything was said (then a bridge if ``resume``)."""
        said = False
        for _ in range(self.cfg.max_answers_per_break):
            c = self._next_cluster()
            if c is None:
                break
            said |= await self._answer_cluster(c)
        said |= await self._react_to_alerts()
        for cands, kind in ((self.room.greeter.welcome(), "greeting"), (self.room.greeter.thanks(), "thanks")):
            # the counts in these lines are the room's own (grounded by the event stream)
            if cands and (
                ln := self.writer.line(cands, kind=kind, lead_ins=False, extra=re.findall(r"\d+", " ".join(cands)))
            ):
                await self._say(ln)
                said = True
        if said and resume and self.product is not None:
            if b := self.writer.bridge(self.product):
                await self._say(b)
        return said

    def _next_cluster(self) -> Cluster | None:
        need = self.cfg.qa_min_viewers if self.room.qa_mode else self.room.clusterer.cfg.min_viewers
        for c in self.room.clusterer.hottest(limit=5, unanswered=True, min_viewers=need):
            if c.answered_at is None or (c.hot and c.hot_at and c.hot_at > c.answered_at):
                return c
        return None

    async def _answer_cluster(self, c: Cluster) -> bool:
        heat = c.heat
        text, facts, source = await self._answer_text(c.examples or [""], c.sku, c.topics, c.centroid)
        now = self.clock.now()
        self.room.clusterer.mark_answered(c.cluster_id, now)
        if not text:
            return False
        p = self._product_of(c.sku)
        label = clean_question(c.label) if has_personal(c.label) else c.label
        if not label or has_personal(text):
            return False
        ln = self.writer.answer_line(label, text, p, facts, heat, source)
        if ln is None:
            return False
        if not await self._say(ln, cluster_id=c.cluster_id):
            return False
        self.report.answered_clusters += 1
        return True

    async def _answer_text(
        self, questions: list[str], sku: str | None, topics: frozenset[str], vec: Any
    ) -> tuple[str, list, str]:
        text, facts, source = await self._find_answer(questions, sku, topics, vec)
        p = self._product_of(sku or self.room.context_sku)
        if text and not topics and not answers_question(text, questions, p):
            return "", [], source  # a fact that does not answer it: not at all
        named = frozenset().union(*(topics_of(q) for q in questions))
        if text and named and not on_topic(text, named):
            return "", [], source  # '专柜有吗' read as a stock question: the stock figure does not answer it
        return text, facts, source

    async def _find_answer(
        self, questions: list[str], sku: str | None, topics: frozenset[str], vec: Any
    ) -> tuple[str, list, str]:
        """A fact the topic asks for (保质期 for a shelf-life question) first, then the agent's fast path,
        then the cluster answerer; "" if none can answer."""
        p = self._product_of(sku or self.room.context_sku)
        snap = self.room.snapshot()
        if p is not None and snap is not None and topics and not is_store_topic(topics):
            f = topic_fact(snap, p, topics)
            if f is not None:
                text = guard(f"{short_name(p)}：{render_fact(f)}", p, [f])
                if text:
                    return text, [f], "fastpath"
        for q in sorted(questions, key=len)[:3]:
            try:
                ans = await self.room.agent.answer(
                    ViewerMessage(
                        merchant=self.room.merchant,
                        room_id=self.room.room_id,
                        viewer_id="host-loop",
                        text=q,
                        context_sku=sku or self.room.context_sku,
                        channel="host",
                    )
                )
            except Exception:
                log.exception("agent answer failed; using facts")
                break
            if not ans.refused and ans.answer and "coupon" not in topics and on_topic(ans.answer, topics):
                snap = self.room.snapshot()
                facts = [f for f in ([snap.fact(c.fact_id) for c in ans.citations] if snap else []) if f is not None]
                if not self._fits(facts, p, questions) or self._names_other(ans.answer, p, questions):
                    return "", [], "fastpath"  # the fact that answers it is not this product's
                return ans.answer, facts, "fastpath"
        comp = self.room.answerer.answer(questions, topics, sku, vec=vec)
        if comp.refused or not on_topic(comp.text, topics) or not self._fits(comp.facts, p, questions):
            return "", [], "fastpath"
        return comp.text, comp.facts, "fastpath"

    def _names_other(self, text: str, p: Product | None, questions: list[str]) -> bool:
        snap = self.room.snapshot()
        if p is None or snap is None:
            return False
        for q in snap.catalog.products:
            if q.sku != p.sku and q.name in text and q.name not in p.name and not any(q.name in x for x in questions):
                return True
        return False

    def _fits(self, facts: list, p: Product | None, questions: list[str]) -> bool:
        """An answer about the product on segment draws on its own facts (or the store's); another
        product's fact answers only a question that names that product — else not at all."""
        if p is None:
            return True
        for f in facts:
            other = f.sku and f.sku != p.sku and self._product_of(f.sku)
            if other and not any(short_name(other) in q or other.name in q for q in questions):
                return False
        return True

    async def _answer_single(self) -> bool:
        """In Q&A: one viewer's recent question, read out with its answer."""
        while self.room.recent_questions:
            t = self.room.recent_questions.pop()
            now = self.clock.now()
            if now - t.msg.ts > 120:
                self.room.recent_questions.clear()
                return False
            if now - self._answered_keys.get(t.key, -1e18) < 600:
                continue  # just answered this one
            c = self.room.clusterer.cluster_of(t)
            if c is not None and c.answered_at is not None and now - c.answered_at < 600:
                continue  # its cluster was just answered aloud
            self._answered_keys[t.key] = now
            if len(self._answered_keys) > 2000:
                self._answered_keys.popitem(last=False)
            text, facts, source = await self._answer_text([t.text], t.sku, t.topics, None)
            if not text or now - self._answered_keys.get("answer:" + text, -1e18) < 600:
                continue
            self._answered_keys["answer:" + text] = now
            if c is not None:
                self.room.clusterer.mark_answered(c.cluster_id, now)
            p = self._product_of(t.sku)
            q = clean_question(t.text)
            if not q:
                continue
            ln = self.writer.line(
                [f"有朋友问“{q}”，{text}", f"回答一下“{q}”：{text}"],
                kind="answer",
                p=p,
                facts=facts,
                extra=[t.text],
                lead_ins=False,
                source=source,
            )
            if ln:
                await self._say(ln)
                return True
        return False

    def _catalog_names(self) -> dict[str, str]:
        """The catalog's product names and spoken short names → sku, longest first (per KB version)."""
        snap = self.room.snapshot()
        if snap is not None and self._names[0] is not snap:
            named = {n: p.sku for p in snap.catalog.products for n in (p.name, short_name(p))}
            self._names = (snap, dict(sorted(named.items(), key=lambda kv: -len(kv[0]))))
        return self._names[1]

    def _product_of(self, sku: str | None) -> Product | None:
        snap = self.room.snapshot()
        return snap.product(sku) if snap and sku else None

    async def _react_to_alerts(self) -> bool:
        said = False
        while (item := self._alerts.get_nowait()) is not None:
            _, a = item
            if not isinstance(a, Alert):
                continue
            if a.action == "flash_coupon":
                said |= await self._flash_coupon(a)
            elif a.action == "hook":
                said |= await self._hook(a)
        return said

    async def _flash_coupon(self, a: Alert) -> bool:
        now = self.clock.now()
        if now - self._last_flash < self.cfg.flash_cooldown_s or self.slot is None:
            return False
        ids = list(self.rundown.reserve_coupons) + [c.campaign_id for c in self.room.coupons.active()]
        for cid in dict.fromkeys(ids):
            campaign, why = self.room.coupons.announceable(cid)
            if campaign is None or why:
                continue
            self._last_flash = now
            if await self._announce(campaign, self.product, self.slot, reason=f"alert:{a.kind}"):
                self.report.reactions["flash_coupon"] = self.report.reactions.get("flash_coupon", 0) + 1
                return True
        return False

    async def _hook(self, a: Alert) -> bool:
        now = self.clock.now()
        if now - self._last_hook < self.cfg.hook_cooldown_s or self.product is None:
            return False
        self._last_hook = now
        p = self.product
        sp = (p.selling_points or [""])[0].rstrip("。")
        short = short_name(p)
        cands = (
            [
                f"刚进来的朋友先别走，现在讲的是{short}，{sp}。",
                f"新来的朋友看这里，{short}，{sp}。",
                f"欢迎新朋友，{short}的亮点：{sp}。",
            ]
            if sp
            else [f"刚进来的朋友先别走，现在讲的是{short}。"]
        )
        snap = self.room.snapshot()
        facts = [f for f in snap.index.facts if f.sku == p.sku] if snap else []
        ln = self.writer.line(cands, kind="hook", p=p, facts=facts)
        if ln is None:
            return False
        self.report.reactions["hook"] = self.report.reactions.get("hook", 0) + 1
        await self._say(ln)
        return True

    # --- speaking -----------------------------------------------------------------------------------
    async def _say(self, ln: Line, cluster_id: str | None = None) -> bool:
        """Say the line unless it repeats, by meaning, something said before (then False)."""
        memory = self._meaning["answer" if ln.kind == "answer" else "show"]
        if memory.repeats(ln.text, ln.sku):
            self.report.repeats_withheld += 1
            return False
        memory.add(ln.text, ln.sku)
        self.seq += 1
        sl = SpokenLine(
            seq=self.seq,
            text=ln.text,
            kind=ln.kind,
            at=self.clock.now(),
            segment=self.slot.index if self.slot else None,
            sku=ln.sku,
            source=ln.source,
            cluster_id=cluster_id,
        )
        self._kinds[ln.kind] = self._kinds.get(ln.kind, 0) + 1
        k = ShowMemory._key(ln.text)
        if k in self._spoken:
            self.report.repeated_lines += 1
        self._spoken.add(k)
        self.said.append(sl)
        del self.said[:-1000]
        await self.speaker.say(sl)
        return True
