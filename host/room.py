"""One live room's intelligence: danmaku triage → clustering → suggestions; events → funnel →
alerts; greetings; individual text replies. ``HostHub`` holds a process's rooms.

``HostRoom`` is what both modes share: a human host gets its bus (suggestions, alerts, replies)
on the console; the virtual host (``host.loop.HostLoop``) also subscribes and speaks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.bus import AnswerBus
from agent.core import Agent, AgentConfig
from agent.intent_model import IntentModel
from agent.memory import Memory
from agent.messages import ViewerMessage
from core.clock import Clock, RealClock
from host.alerts import AlertEngine, AlertRules
from host.answers import ClusterAnswerer
from host.clustering import ClusterConfig, Clusterer
from host.coupons import RoomCoupons
from host.danmaku import DanmakuTriage, TriageConfig
from host.frames import Alert, Danmaku, Reply, RoomEvent, Triaged
from host.funnel import Funnel, FunnelStore
from host.greeter import Greeter, GreeterConfig
from host.mix import RoomMix, mix_from_profiles
from host.pipeline import Bus
from host.suggestions import SuggestionEngine
from host.topics import normalize_key
from knowledge.store import KBError, KnowledgeBase, LoadedVersion

log = logging.getLogger("liveroom.host")


@dataclass
class RoomConfig:
    triage: TriageConfig = field(default_factory=TriageConfig)
    clusters: ClusterConfig = field(default_factory=ClusterConfig)
    alerts: AlertRules = field(default_factory=AlertRules)
    greeter: GreeterConfig = field(default_factory=GreeterConfig)
    replies_per_s: float = 10.0  # individual text answers composed per second (show time); 0 = off
    reply_cache_s: float = 60.0  # the same question (same product) within this gets the same answer, free
    reply_queue: int = 200  # questions waiting for a text answer; the oldest are skipped beyond this
    tick_s: float = 10.0  # alerts / presence housekeeping period (show time)
    mix_sample: int = 200  # profiles read to estimate the room mix
    mix_every_s: float = 60.0


def default_intent_model(kb: KnowledgeBase) -> IntentModel:
    """The packaged intent model over the KB's encoder (trained once, then read from the on-disk cache)."""
    return IntentModel.load_or_train(kb.embedder)


def intent_classifier(model: IntentModel) -> Callable[[str], str]:
    """text → intent (one of ``agent.intent_model.INTENTS``), for the danmaku triage."""
    return lambda text: model.predict(text).intent


def host_agent(
    kb: KnowledgeBase, audience: Any | None, answers: AnswerBus | None = None, intent_model: IntentModel | None = None
) -> Agent:
    """A fast-path-only agent for the host: no LLM (never slow), no per-viewer rate limit (the room
    rate-limits), its own memory. Coupon requests go through the real ledger when there is one. Its
    answers (``channel="host"``) are published on ``answers`` — the app's answer bus when given. It reads
    questions with ``intent_model`` (default: the packaged one)."""
    from tools.catalog import catalog_tools
    from tools.registry import ToolRegistry

    tools = catalog_tools(kb)
    if audience is not None:
        from tools.audience_tools import audience_tools

        tools += audience_tools(audience, audience)
    agent = Agent(
        kb,
        ToolRegistry(tools),
        llm=None,
        memory=Memory(max_viewers=5000),
        config=AgentConfig(rate=(1_000_000, 1.0)),
        answers=answers,
    )
    agent.intent_model = intent_model or default_intent_model(kb)
    return agent


class HostRoom:
    def __init__(
        self,
        merchant: str,
        room_id: str,
        *,
        kb: KnowledgeBase,
        embed: Callable[[list[str]], np.ndarray],
        audience: Any | None = None,
        agent: Agent | None = None,
        clock: Clock | None = None,
        funnel: Funnel | None = None,
        config: RoomConfig | None = None,
        inline_embed: bool = False,
        seed: int = 7,
        intent_model: IntentModel | None = None,
        classify: Callable[[str], str] | None = None,
    ):
        """``intent_model``: reads danmaku and the host agent's questions (default: the agent's, else the
        packaged one); ``classify`` (text → intent) overrides it for the danmaku triage."""
        self.merchant, self.room_id = merchant, room_id
        self.kb, self.embed, self.audience = kb, embed, audience
        self.clock = clock or RealClock()
        self.cfg = config or RoomConfig()
        self.bus = Bus()
        self.funnel = funnel or Funnel()
        if intent_model is None and classify is None:
            intent_model = getattr(agent, "intent_model", None) or default_intent_model(kb)
        self.agent = agent or host_agent(kb, audience, intent_model=intent_model)
        self.intent_model = intent_model
        self.coupons = RoomCoupons(audience, merchant, self.clock.now)
        self.context_sku: str | None = None  # the product on screen
        self.qa_mode = False  # Q&A segment: smaller clusters count as hot for the host loop
        self.rng = random.Random(seed)
        self._sku_cache: OrderedDict[str, str | None] = OrderedDict()
        self.triage = DanmakuTriage(
            self.cfg.triage, match_sku=self._match_sku, on_flood=self._on_flood, classify=classify or self._classify
        )
        self.clusterer = Clusterer(embed, self.cfg.clusters, self.clock.now, inline=inline_embed)
        self.answerer = ClusterAnswerer(self.snapshot, self.coupons.offers)
        self.suggestions = SuggestionEngine(merchant, room_id, self.clusterer, self.answerer, self.bus, self.clock.now)
        self.alerts = AlertEngine(
            merchant, room_id, self.funnel, self.clusterer, self._alert, self.clock.now, self.cfg.alerts
        )
        self.greeter = Greeter(self.clock.now, self.cfg.greeter)
        self.triage.link(self._route)
        self.replies: deque[Reply] = deque(maxlen=200)
        self._reply_q: deque[Triaged] = deque()
        self._reply_cache: OrderedDict[tuple[str, str | None], tuple[float, str]] = OrderedDict()
        self._reply_wake = asyncio.Event()
        self.recent_questions: deque[Triaged] = deque(maxlen=50)
        self.mix = RoomMix()
        self._mix_at = -1e18
        self._tasks: list[asyncio.Task] = []
        self.stats = {"replies": 0, "replies_skipped": 0, "coupons_issued": 0, "reply_errors": 0}

    # --- knowledge ----------------------------------------------------------------------------
    def snapshot(self) -> LoadedVersion | None:
        try:
            return self.kb.snapshot(self.merchant)
        except KBError:
            return None

    def _classify(self, text: str) -> str:
        """The intent of a danmaku (the triage caches it by text). Its vector is the one the clusterer
        would compute for the message's key, so a question is embedded once, for both."""
        assert self.intent_model is not None
        key = normalize_key(text) or text
        cache = self.clusterer._cache
        vec = cache.get(key)
        if vec is None:
            vec = cache[key] = np.asarray(self.embed([key])[0], dtype=np.float32)
        return str(self.intent_model.predict(text, vec).intent)

    def _match_sku(self, text: str) -> str | None:
        if text in self._sku_cache:
            return self._sku_cache[text]
        snap = self.snapshot()
        found = None
        if snap is not None:
            m = {k: v for k, v in snap.index.matcher.match(text).items() if not k.startswith("doc:") and v >= 0.7}
            found = max(m, key=m.get) if m else None
        self._sku_cache[text] = found
        if len(self._sku_cache) > 20_000:
            self._sku_cache.popitem(last=False)
        return found

    # --- ingest (synchronous: called from the API, the simulator, the benchmark) ----------------
    def ingest(
        self,
        viewer_id: str,
        text: str,
        ts: float | None = None,
        context_sku: str | None = None,
        t_in: float | None = None,
        *,
        verified: bool = True,
        reply: bool = True,
    ) -> Triaged:
        import time as _t

        msg = Danmaku(
            self.merchant,
            self.room_id,
            viewer_id,
            text or "",
            self.clock.now() if ts is None else ts,
            context_sku or self.context_sku,
            _t.perf_counter() if t_in is None else t_in,
            verified,
            reply,
        )
        out: list[Triaged] = []
        self._last = out
        self.triage.process(msg)
        return out[0] if out else Triaged(msg, "", "", "empty")

    def _route(self, t: Triaged) -> None:
        self._last.append(t)
        kind = t.kind
        if kind in ("question", "coupon_request", "greeting", "chatter"):
            self.funnel.record_danmaku(t.msg.ts, kind == "question")
        if kind == "question":
            self.clusterer.submit(t)
            self.recent_questions.append(t)
            self._queue_reply(t)
        elif kind == "coupon_request":
            self.clusterer.submit(t)
            self._queue_reply(t)
        elif kind == "greeting":
            self.greeter.on_greeting()

    def _queue_reply(self, t: Triaged) -> None:
        if self.cfg.replies_per_s <= 0 or not t.msg.reply:
            return
        if (
            t.kind == "question"
            and (hit := self._reply_cache.get((t.key, t.sku))) is not None
            and t.msg.ts - hit[0] < self.cfg.reply_cache_s
        ):
            if hit[1]:
                self._publish_reply(t, hit[1])  # asked (in these words) moments ago: same answer, no work
            return
        if len(self._reply_q) >= self.cfg.reply_queue:
            self._reply_q.popleft()
            self.stats["replies_skipped"] += 1
        self._reply_q.append(t)
        self._reply_wake.set()

    def ingest_event(self, ev: RoomEvent) -> None:
        self.funnel.record(ev)
        self.greeter.on_event(ev)

    def _on_flood(self, key: str, n: int) -> None:
        self.alerts.alert(
            "flood",
            f"同一条弹幕10秒内刷屏{n}次（{key[:20]}），已自动去重，不影响主播",
            severity="info",
            key=f"flood:{key}",
            count=n,
        )

    def _alert(self, a: Alert) -> None:
        self.bus.publish("alert", a)

    # --- audience mix ---------------------------------------------------------------------------
    async def refresh_mix(self, force: bool = False) -> RoomMix:
        now = self.clock.now()
        if not force and now - self._mix_at < self.cfg.mix_every_s:
            return self.mix
        self._mix_at = now
        present = self.funnel.presence.sample(self.cfg.mix_sample, self.rng)
        if self.audience is None or not present:
            self.mix = RoomMix(viewers=len(self.funnel.presence))
            return self.mix
        try:
            if self.clusterer.inline:  # virtual-clock runs: no threads, deterministic
                profiles = self.audience.profiles(self.merchant, present)
            else:
                profiles = await asyncio.to_thread(self.audience.profiles, self.merchant, present)
        except Exception:
            log.exception("profile lookup failed; keeping the last room mix")
            return self.mix
        self.mix = mix_from_profiles(len(self.funnel.presence), profiles.values())
        new = self.funnel.presence.new_since_mix
        if new:
            fans = sum(1 for v in new if v in profiles and profiles[v].tier == "铁粉")
            self.greeter.on_fans(fans)
            self.funnel.presence.new_since_mix = []
        return self.mix

    # --- background work -------------------------------------------------------------------------
    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self.clusterer.run(), name=f"clusters:{self.room_id}"),
            asyncio.create_task(self._replies(), name=f"replies:{self.room_id}"),
            asyncio.create_task(self._ticker(), name=f"ticker:{self.room_id}"),
        ]

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []

    async def _ticker(self) -> None:
        while True:
            await self.clock.sleep(self.cfg.tick_s)
            try:
                self.funnel.tick(self.clock.now())
                self.clusterer.expire(self.clock.now())
                self.alerts.evaluate()
            except Exception:
                log.exception("room tick failed")

    async def _replies(self) -> None:
        n = 0
        while True:
            if not self._reply_q:
                self._reply_wake.clear()
                await self._reply_wake.wait()
                continue
            t = self._reply_q.popleft()
            if (
                t.kind == "question"
                and (hit := self._reply_cache.get((t.key, t.sku))) is not None
                and self.clock.now() - hit[0] < self.cfg.reply_cache_s
            ):
                if hit[1]:
                    self._publish_reply(t, hit[1])  # answered while this one waited
                n += 1
                if n % 50 == 0:
                    await asyncio.sleep(0)
                continue
            try:
                await self.reply(t)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats["reply_errors"] += 1
                log.exception("text reply failed")
            await self.clock.sleep(1.0 / self.cfg.replies_per_s)

    def _publish_reply(self, t: Triaged, answer: str) -> Reply:
        r = Reply(viewer_id=t.msg.viewer_id, question=t.text, answer=answer, at=self.clock.now())
        self.replies.append(r)
        self.stats["replies"] += 1
        self.bus.publish("reply", r)
        return r

    async def reply(self, t: Triaged) -> Reply | None:
        """Answer one viewer in text (fast path; coupon requests through the ledger)."""
        msg = ViewerMessage(
            merchant=self.merchant,
            room_id=self.room_id,
            viewer_id=t.msg.viewer_id,
            # danmaku reach the host through the merchant's authenticated API (POST …/danmaku with its API
            # token): the merchant vouches for these viewer ids; a platform's unsigned ids are not vouched for
            verified=t.msg.verified,
            text=t.text,
            context_sku=t.sku,
            channel="host",
        )
        ans = await self.agent.answer(msg)
        issued = any(
            c.name == "issue_coupon" and c.ok and isinstance(c.result, dict) and c.result.get("code") == "issued"
            for c in ans.tool_calls
        )
        if issued:
            self.stats["coupons_issued"] += 1
            self.funnel.record_coupon_issued(self.clock.now())
        useful = not (ans.refused and t.kind == "question" and not issued)
        if t.kind == "question":
            self._reply_cache[(t.key, t.sku)] = (self.clock.now(), ans.answer if useful else "")
            self._reply_cache.move_to_end((t.key, t.sku))
            if len(self._reply_cache) > 5000:
                self._reply_cache.popitem(last=False)
        if not useful:
            return None  # nothing useful to say in text; hot clusters are answered aloud
        return self._publish_reply(t, ans.answer)

    def snapshot_state(self) -> dict:
        """What the console shows on connect."""
        return {
            "merchant": self.merchant,
            "room_id": self.room_id,
            "context_sku": self.context_sku,
            "online": self.funnel.online,
            "hot_clusters": [c.model_dump() for c in self.suggestions.hot_clusters()],
            "suggestions": [s.model_dump() for s in self.suggestions.recent(10)],
            "alerts": [a.model_dump() for a in self.alerts.raised[-10:]],
        }


class HostHub:
    """The process's rooms (the server keeps one on ``app.state.host_hub``)."""

    def __init__(
        self,
        kb: KnowledgeBase,
        embed: Callable[[list[str]], np.ndarray],
        audience: Any | None = None,
        clock: Clock | None = None,
        config: RoomConfig | None = None,
        max_rooms: int = 200,
        answers: AnswerBus | None = None,
        intent_model: IntentModel | None = None,
    ):
        self.kb, self.embed, self.audience = kb, embed, audience
        self.intent_model = intent_model  # None: the packaged model, loaded with the first room
        self.answers = answers  # the app's answer bus: the host's answers reach the metrics and the console
        self.clock = clock or RealClock()
        self.config = config or RoomConfig()
        self.funnel = FunnelStore()
        self._rooms: OrderedDict[tuple[str, str], HostRoom] = OrderedDict()
        self.max_rooms = max_rooms
        self._agent: Agent | None = None

    @classmethod
    def from_container(cls, c: Any, clock: Clock | None = None) -> HostHub:
        return cls(c.kb, c.embedder.encode, c.audience, clock, answers=c.answer_bus, intent_model=c.intent_model)

    def room(self, merchant: str, room_id: str, create: bool = True) -> HostRoom | None:
        key = (merchant, room_id)
        r = self._rooms.get(key)
        if r is None and create:
            if self.intent_model is None:
                self.intent_model = default_intent_model(self.kb)
            if self._agent is None:
                self._agent = host_agent(self.kb, self.audience, self.answers, self.intent_model)
            r = HostRoom(
                merchant,
                room_id,
                kb=self.kb,
                embed=self.embed,
                audience=self.audience,
                agent=self._agent,
                clock=self.clock,
                funnel=self.funnel.room(merchant, room_id),
                config=self.config,
                intent_model=self.intent_model,
            )
            self._rooms[key] = r
            try:
                r.start()
            except RuntimeError:  # no running loop (sync caller): started on first async use
                pass
        return r

    def add(self, room: HostRoom) -> HostRoom:
        """Serve an existing room (``liveroom host --serve``: the console watches the virtual host)."""
        self._rooms[(room.merchant, room.room_id)] = room
        return room

    def rooms(self) -> list[HostRoom]:
        return list(self._rooms.values())

    async def aclose(self) -> None:
        for r in self._rooms.values():
            await r.aclose()
