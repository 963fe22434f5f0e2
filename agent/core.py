"""The live-room agent: viewer message → triage → tools → grounded, guarded answer.

Two paths:
- fast: questions that retrieved facts answer (price, stock, spec, FAQ, comparison, policy, coupon)
  are composed from the facts in code — milliseconds, nothing invented;
- llm: recommendations, follow-ups and chit-chat go to the model with the facts, streamed sentence
  by sentence; each sentence passes compliance, number grounding and leak checks before it leaves.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from agent import compliance, compose, style, understand
from agent.answer_cache import TWIN_WAIT_S, AnswerCache, Entry, Probe
from agent.bus import AnswerBus, AnsweredEvent
from agent.claims import ClaimChecker, ClaimContext, default_checker, numbers
from agent.compose import Draft
from agent.guardrails import RateLimiter, check_sentence
from agent.llm import LLMClient, LLMUnavailable
from agent.memory import ConversationMemory, Memory, ViewerState
from agent.messages import AgentAnswer, AnswerDelta, Citation, ToolCallRecord, ViewerMessage
from agent.triage import Triage, detect_lang, triage
from agent.understand import Direction
from knowledge.lexicon import CatalogLexicon, Mention
from knowledge.schema import Fact, Product, SearchHit
from knowledge.store import KnowledgeBase, LoadedVersion
from knowledge.text import normalize
from prompts import loader as prompts
from tools.registry import ToolContext, ToolError, ToolRegistry

log = logging.getLogger("liveroom.agent")

# Intents answered about a product: a follow-up without a product name continues the one in focus.
_PRODUCT_INTENTS = ("price", "stock", "detail", "suitability", "compare")
_SENT_END = "。！？!?；;\n"


@dataclass
class AgentConfig:
    max_chars: int = 60  # live-room answers are short
    llm_max_tokens: int = 90
    planner: Literal["rules", "llm", "auto"] = "auto"  # auto: the model plans only with native tool calls
    rephrase_budget_ms: int = 0  # >0: let the LLM rephrase fast answers within this budget
    smalltalk_budget_ms: int = 900  # chit-chat may come from the LLM if it is ready within this; else a set reply
    # Let the model write recommendations (a strong OpenAI-compatible endpoint); off on the embedded
    # default, where answers are composed in code and the model only small-talks.
    llm_writes: bool = False
    rate: tuple[int, float] = (6, 10.0)  # messages per seconds, per viewer
    llm_timeout_s: float = 20.0
    vision_model: bool = False  # the LLM endpoint accepts image_url content: send it the picture too


@dataclass
class _Turn:
    msg: ViewerMessage
    tri: Triage
    lang: str
    ctx: ToolContext
    snap: LoadedVersion
    calls: list[ToolCallRecord] = field(default_factory=list)
    hits: list[SearchHit] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    image: Any = None  # vision.ImageAnalysis of the viewer's picture, when one was sent
    question: str = ""  # what coverage is checked against (a follow-up carries the previous question)
    parsed: understand.Parsed | None = None
    lex: CatalogLexicon | None = None
    qvec: np.ndarray | None = None
    runner_up: str = ""  # the classifier's second reading, tried when the first finds nothing
    proba: dict[str, float] = field(default_factory=dict)  # the classifier's reading of every intent


class Agent:
    def __init__(
        self,
        kb: KnowledgeBase,
        tools: ToolRegistry,
        llm: LLMClient | None = None,
        memory: ConversationMemory | None = None,
        config: AgentConfig | None = None,
        vision: Any = None,
        answers: AnswerBus | None = None,
    ):
        self.kb, self.tools, self.llm, self.vision = kb, tools, llm, vision
        # every finished answer is published here (metrics, the console's live log subscribe)
        self.answers = answers if answers is not None else AnswerBus()
        self.prompt_store: Any = None  # merchants' published prompt overrides (prompts/store.py)
        # in process, or in Redis with several workers (agent/memory_redis.py); an empty Memory is falsy (__len__)
        self.memory: ConversationMemory = memory if memory is not None else Memory()
        self.config = config or AgentConfig()
        self.intent_model: Any = None  # agent.intent_model.IntentModel; the container loads it
        # The claim checker with the merchant's own additions (the container reads their overrides file).
        self.claims_for: Callable[[str], ClaimChecker] = lambda merchant: default_checker()
        # The merchant's published style (agent/style.py), applied last on every path; the container sets it.
        self.style_for: Callable[[str], style.StyleApplier | None] = lambda merchant: None
        self.limiter = RateLimiter(rate=self.config.rate[0], per=self.config.rate[1], burst=self.config.rate[0])
        # Composed answers replayed to every viewer who asks the same (agent/answer_cache.py); the container sets it.
        self.answer_cache: AnswerCache | None = None

    # --- public -------------------------------------------------------------------------
    async def answer(self, msg: ViewerMessage) -> AgentAnswer:
        final: AgentAnswer | None = None
        async for ev in self.stream(msg):
            if isinstance(ev, AgentAnswer):
                final = ev
        assert final is not None
        return final

    async def stream(self, msg: ViewerMessage) -> AsyncIterator[AnswerDelta | AgentAnswer]:
        """Yield answer sentences as they are ready, then the final ``AgentAnswer``: every path's text
        leaves through the merchant's style (one step, agent/style.py), then is published on the answer bus."""
        styled = style.StyledStream(self.style_for(msg.merchant))
        async with aclosing(self._stream(msg)) as events:
            async for ev in styled.wrap(events, lambda ans: self.answers.publish(AnsweredEvent.of(msg, ans))):
                yield ev

    async def _stream(self, msg: ViewerMessage) -> AsyncGenerator[AnswerDelta | AgentAnswer, None]:
        """Every final answer, on every path, goes through ``done`` (timings) just before it is yielded."""
        t0 = time.perf_counter()
        first: list[float] = []

        def done(ans: AgentAnswer) -> AgentAnswer:
            ans.latency_ms = round((time.perf_counter() - t0) * 1000, 1)
            ans.first_token_ms = round(first[0], 1) if first else ans.latency_ms
            return ans

        tri = triage(msg.text or ("这是什么" if msg.image_id else ""))
        lang = msg.lang or tri.lang
        if not self.limiter.allow((msg.merchant, msg.viewer_id)):
            text = (
                "You're sending messages a bit fast — please wait a moment."
                if lang == "en"
                else "消息有点快哦，稍等几秒再问我～"
            )
            yield AnswerDelta(text=text, index=0)
            yield done(AgentAnswer(answer=text, refused=True, lang=lang, intent="rate_limited", flags=["rate_limited"]))
            return
        if not tri.text:
            text = "Please type your question." if lang == "en" else "请直接发文字问题哦～"
            yield AnswerDelta(text=text, index=0)
            yield done(AgentAnswer(answer=text, refused=True, lang=lang, intent="empty"))
            return
        snap = self.kb.snapshot(msg.merchant)
        turn = _Turn(
            msg,
            tri,
            lang,
            ToolContext(msg.merchant, msg.viewer_id, msg.room_id, verified=msg.verified, lang=lang),
            snap,
        )
        if tri.truncated:
            turn.flags.append("truncated")
        if tri.injection:
            turn.flags.append("injection")
        if tri.abuse:
            text = (
                "Let's keep the chat friendly — ask me anything about the products."
                if lang == "en"
                else "我们文明看播哦～商品有问题随时问我。"
            )
            yield AnswerDelta(text=text, index=0)
            yield done(self._finish(turn, Draft(text, refused=True), "fast", "abuse"))
            return
        probe = self._cache_probe(msg, tri, snap)
        cache = self.answer_cache
        if probe is not None and cache is not None:
            twin = cache.in_flight(probe)
            if twin is not None:  # the same question from the same memory is being composed: wait for it
                await twin.landed(TWIN_WAIT_S)
            if hit := cache.get(probe, self._still_unpointed(probe, snap)):
                ans = hit.replay()  # the rate limit above applied; memory and the bus see it as any answer
                self._remember(msg, tri.text, hit.intent, hit.attributes, ans.lang, hit.skus, ans.answer)
                first.append((time.perf_counter() - t0) * 1000)
                yield AnswerDelta(text=ans.answer, index=0)
                yield done(ans)
                return
        # A burst of one question on a cold cache composes it once; the twins replay it (single flight).
        flight = cache.take_off(probe) if probe is not None and cache is not None else None
        try:
            async for ev in self._answer_afresh(msg, tri, lang, turn, snap, probe, t0, first, done):
                yield ev
        finally:
            if flight is not None:
                flight.land()

    async def _answer_afresh(
        self,
        msg: ViewerMessage,
        tri: Triage,
        lang: str,
        turn: _Turn,
        snap: LoadedVersion,
        probe: Probe | None,
        t0: float,
        first: list[float],
        done: Callable[[AgentAnswer], AgentAnswer],
    ) -> AsyncGenerator[AnswerDelta | AgentAnswer, None]:
        """A message the answer cache did not answer: understood, composed (or the model's), checked."""
        cache = self.answer_cache
        if msg.image_id:
            err = await self._look_at_image(turn)
            if err:
                yield AnswerDelta(text=err, index=0)
                yield done(self._finish(turn, Draft(err, refused=True), "fast", "image"))
                return
        screened = self.claims_for(msg.merchant).screen(tri.text, lang)
        if screened is not None:  # system-prompt requests, politics, other viewers' data: a fixed reply
            turn.flags.append(f"screen:{screened.rule}")
            yield AnswerDelta(text=screened.reply, index=0)
            yield done(self._finish(turn, Draft(screened.reply, refused=True), "fast", "screened"))
            return
        state = self.memory.get(msg.merchant, msg.room_id, msg.viewer_id)
        if not snap.lexicon_ready:
            await self.prepare(msg.merchant)
        if not msg.lang:  # a language-neutral message ("K84多少", "ok") keeps the viewer's language
            # Product names in Latin letters ("Air Pro多重") say nothing about the viewer's language.
            plain = snap.lexicon.without_latin_names(tri.text)
            lang = detect_lang(plain) if plain.strip() else tri.lang
            lang = turn.lang = lang if _decisive_lang(plain) or not state.lang else state.lang
            latin = re.findall(r"[A-Za-z]+", plain)
            if lang == "en" and latin and sum(map(understand.is_pinyin, latin)) * 2 >= len(latin):
                lang = turn.lang = "zh"  # "chongdianbao 1w多少": Chinese typed in pinyin
        self._understand(turn, state)
        intent = turn.parsed.intent if turn.parsed else "detail"
        if (
            intent == "chitchat"
            and self.llm is not None
            and not tri.injection
            and self.config.smalltalk_budget_ms > 0
            and not understand.is_question(tri.text)  # a question off the catalog gets the honest reply
        ):
            talk = await self._small_talk(turn)
            if talk:
                text = "".join(talk)
                first.append((time.perf_counter() - t0) * 1000)
                yield AnswerDelta(text=text, index=0)
                yield done(self._finish(turn, Draft(text), "llm", intent))
                return
        if intent == "recommend" and self.llm is not None and self.config.llm_writes and not tri.injection:
            # A strong configured model may write recommendations itself; every sentence still passes the
            # claim checker, and with nothing usable in time the composed answer goes.
            sentences: list[str] = []
            try:
                async for sentence in self._llm_sentences(turn, intent):
                    if not first:
                        first.append((time.perf_counter() - t0) * 1000)
                    sentences.append(sentence)
                    yield AnswerDelta(text=sentence, index=len(sentences) - 1)
            except (TimeoutError, LLMUnavailable) as e:
                log.warning("LLM path failed (%s); composing from facts", e)
                turn.flags.append("llm_unavailable")
            if sentences:
                text = "".join(sentences)
                yield done(self._finish(turn, Draft(text, self._cited(turn, text)), "llm", intent))
                return
        draft = await self._compose(turn, intent)
        draft = await self._maybe_rephrase(turn, draft)
        text = self._guard_whole(turn, draft)
        # Every sentence dropped by the checker: what goes out is the honest "I'll check", and says so.
        refused = draft.refused or (bool(draft.text.strip()) and text == compose.not_found(turn.lang).text)
        first.append((time.perf_counter() - t0) * 1000)
        yield AnswerDelta(text=text, index=0)
        # stored only if the viewer's memory is still what the keys say (another of their questions may have
        # been answered while this one waited, e.g. on the lexicon's first build)
        same = probe is not None and self._cache_probe(msg, tri, snap) == probe
        ans = done(self._finish(turn, Draft(text, draft.facts, refused), "fast", intent))
        if same and probe is not None and cache is not None:
            cache.offer(probe, turn, ans)
        yield ans

    def _still_unpointed(self, probe: Probe, snap: LoadedVersion) -> Callable[[Entry], bool]:
        """Whether a policy answer keyed by the first focus product stays one for this viewer: their first two
        focus products give the question nothing to point at (as they did for the viewer it was composed for)."""

        def accept(e: Entry) -> bool:
            focus = [p for s in probe.focus[:2] if (p := snap.product(s)) is not None]
            return len(focus) < 2 or self._by_direction(e.parsed, focus, snap.lexicon) is None

        return accept

    def _cache_probe(self, msg: ViewerMessage, tri: Triage, snap: LoadedVersion) -> Probe | None:
        """The answer cache's keys for this message (None: not a cached kind of message at all)."""
        if self.answer_cache is None or msg.image_id or tri.injection:
            return None
        if self.llm is not None and self.config.rephrase_budget_ms > 0:
            return None  # answers reworded by the model within a time budget are not a function of the question
        state = self.memory.get(msg.merchant, msg.room_id, msg.viewer_id)
        return AnswerCache.probe(
            merchant=msg.merchant,
            version=snap.version,
            checker=self.claims_for(msg.merchant),
            text=tri.text,
            lang_asked=msg.lang,
            # the remembered language decides only a message without Chinese characters (see above)
            lang_known="" if _CJK.search(tri.text) else state.lang,
            context_sku=msg.context_sku,
            model=self.llm is not None,
            focus=[s for s in state.focus if snap.product(s) is not None],
            had_focus=bool(state.focus),
            last_intent=state.last_intent,
        )

    # --- retrieval and tools --------------------------------------------------------------
    def _call(self, turn: _Turn, name: str, args: dict[str, Any], by: Literal["rules", "llm"] = "rules") -> Any:
        try:
            result = self.tools.run(turn.ctx, name, args)
            turn.calls.append(ToolCallRecord(name=name, arguments=args, result=result, by=by))
            return result
        except ToolError as e:
            turn.calls.append(ToolCallRecord(name=name, arguments=args, result={"error": str(e)}, ok=False, by=by))
            return None

    async def _look_at_image(self, turn: _Turn) -> str | None:
        """Analyse the viewer's picture offline (OCR, product matching, colour); returns an error
        sentence when it can't be used."""
        if self.vision is None:
            return "图片功能暂未开启，请用文字描述一下哦～"
        m = turn.msg
        try:
            a = await asyncio.to_thread(self.vision.analyze_stored, m.merchant, m.room_id, m.image_id, turn.tri.text)
        except Exception as e:  # noqa: BLE001 — unknown/expired id, unreadable file: the viewer resends
            log.info("image %s unusable: %s", m.image_id, e)
            return "这张图片已过期或不存在，请重新发送哦～"
        turn.image = a
        turn.calls.append(
            ToolCallRecord(
                name="analyze_image",
                arguments={"image_id": m.image_id},
                result={
                    "best_sku": a.best_sku,
                    "not_ours": a.not_ours,
                    "variant": a.variant,
                    "ocr_text": a.ocr_text[:200],
                    "matches": [x.model_dump(include={"sku", "score", "method"}) for x in a.matches[:3]],
                    "ephemeral": a.ephemeral,
                },
            )
        )
        return None

    # --- understanding ----------------------------------------------------------------------
    async def prepare(self, merchant: str) -> None:
        """Build the merchant's lexicon off the event loop (a large catalog takes seconds), so the first
        viewer question does not wait on it."""
        if not self.kb.snapshot(merchant).lexicon_ready:
            await asyncio.to_thread(self.prepare_sync, merchant)

    def prepare_sync(self, merchant: str) -> None:
        """Load what the first question would otherwise wait for: the KB snapshot, its lexicon, the word
        segmenter, the intent model."""
        self.kb.snapshot(merchant).lexicon.english  # noqa: B018 — built here (dictionary and all), not in the first question
        understand.words("预热")
        understand.is_pinyin("yure")  # pypinyin's syllable set (~0.4 s): not on the loop at a first Latin word
        if self.intent_model is not None:
            self.intent_model.predict("预热")

    def _classify(self, turn: _Turn, text: str, qvec: np.ndarray | None) -> tuple[str, float, Direction | None]:
        if self.intent_model is not None:
            pred = self.intent_model.predict(text, qvec)
            ranked = sorted(pred.proba.items(), key=lambda kv: -kv[1])
            if len(ranked) > 1 and ranked[1][1] >= 0.12:
                turn.runner_up = ranked[1][0]
            turn.proba = dict(pred.proba)
            return pred.intent, pred.confidence, pred.direction
        return "detail", 0.0, None  # no model loaded (bare unit tests): read every question as a detail

    def _understand(self, turn: _Turn, state: ViewerState) -> None:
        tri, snap = turn.tri, turn.snap
        lex = snap.lexicon
        turn.lex = lex
        text = tri.text
        qvec = self.kb.embedder.encode([text])[0] if text else None
        turn.qvec = qvec
        intent, conf, direction = self._classify(turn, text, qvec)
        if tri.injection and intent in ("chitchat", "greeting", "noise"):
            intent = "injection"
        focus = [p for s in state.focus if (p := snap.product(s)) is not None]
        # A short follow-up ("那大号呢", "黑色的呢", "and the other one?") continues the last question.
        followup = tri.followup or (len(text) <= 8 and intent in ("chitchat", "noise", "greeting"))
        if followup and focus and state.last_intent in _PRODUCT_INTENTS and intent in ("chitchat", "noise", "greeting"):
            intent = state.last_intent
        query = text
        if turn.image is not None:
            from vision.analyze import query_text

            query = query_text(turn.image, text)
        args: dict[str, Any] = {"query": query[:200], "k": 10}
        if turn.image is not None and turn.image.best_sku and snap.product(turn.image.best_sku):
            args["sku"] = turn.image.best_sku
        result = self._call(turn, "search_products", args)
        turn.hits = [SearchHit.model_validate(h) for h in (result or {}).get("hits", [])]
        prefer = focus[0].category if focus else None
        q = understand.parse(
            text, turn.lang, intent, conf, snap, lex, turn.hits, direction, prefer, qvec, focus[0].name if focus else ""
        )
        # What the question is about decides between a product's own spec and the store's policy:
        # "保修多久" about a named product with a warranty spec is that spec, not the repair policy.
        if q.intent == "profile" and not re.search(r"我|\bmy\b|\bi\b", text, re.I):
            q.intent = "policy"  # "积分怎么抵扣": the store's rules, not the viewer's own balance
        if q.intent in ("noise", "chitchat", "greeting") and q.by_sound and not tri.injection:
            # "byma", "fsmkd", "包油吗": an abbreviated or misspelt question about a known attribute
            a0 = lex.book.get(q.attributes[0])
            q.intent = "policy" if a0 is not None and a0.scope == "store" else "detail"
        # A follow-up that asks nothing new ("Lite耳机呢", "茶轴的呢", "and the 10000 one?") repeats the
        # last question about whatever it names.
        asks_new = bool(understand.residual(text, lex, q.products[:1] + focus[:1]))
        if (
            followup
            and state.last_intent in _PRODUCT_INTENTS
            # "L码呢": the 码 that reads as size is the named product's own name, nothing asked of it
            and (
                not q.attributes
                or (q.named and not lex.book.mentioned(understand.without_grams(text, q.products[0].name)))
            )
            and not asks_new
            and (q.intent != "compare" or (q.direction is None and not q.pair))
            # "这个能卡在推车上吗" after a price asks a yes/no of its own, whatever its words the reader kept
            and not (understand.asks_yes_no(text) and state.last_intent in ("price", "stock"))
        ):
            q.intent = state.last_intent
            q.attributes = list(state.last_attributes)
        if focus and q.named and not q.pair and q.products and q.products[0].sku != focus[0].sku:
            if _focus_explains(text, q.mentions[0] if q.mentions else None, q.products[0], focus[0]):
                # "新生儿能躺吗" after the pram: 新生儿 is in the pram's own facts, not a mention of the 新生儿提篮
                q.named = False
                q.products = [focus[0]] + [p for p in q.products if p.sku != focus[0].sku]
        # "和K104比哪个重" after talking about the K84: the named product against the one in focus.
        if q.intent == "compare" and focus and not q.pair and q.named:
            other = next((p for p in q.products if p.sku != focus[0].sku), None)
            if other is not None:
                q.products = [focus[0], other]
                q.pair = True
        store_attr = any((a := lex.book.get(x)) is not None and a.scope == "store" for x in q.attributes[:1])
        any_store = any((a := lex.book.get(x)) is not None and a.scope == "store" for x in q.attributes)
        about = q.products[0] if q.named and q.products else (focus[0] if focus else None)
        own_spec = about is not None and any(
            a not in ("price", "stock") and lex.keys_for(about.sku, a) for a in q.attributes
        )
        # "冲锋衣尺码不合适能换吗": exchange asked first, the size is why — the store's rule unless the
        # product has its own spec for what was asked first.
        own_first = bool(q.attributes) and about is not None and bool(lex.keys_for(about.sku, q.attributes[0]))
        if q.intent in ("detail", "price", "stock") and (store_attr or any_store) and not q.named and not own_spec:
            q.intent = "policy"
        elif q.intent == "policy" and own_spec and (own_first or not store_attr):
            q.intent = "detail"  # "保修多久" right after a product with its own warranty spec
        if q.intent == "policy" and q.named and q.products and (own_first or not store_attr):
            if any(lex.keys_for(q.products[0].sku, a) for a in q.attributes):
                q.intent = "detail"
        asks_spec = bool(q.products) and (
            any(a not in ("price", "stock") and lex.keys_for(q.products[0].sku, a) for a in q.attributes)
            or bool(q.keys_of(q.products[0].sku))
        )
        # money read without the product's own name: the 价 of "全价成犬粮" names the food, it asks no price
        said = compose.strip_own_name(text, q.products[0]) if q.products else text
        if asks_spec and not understand.asks_money(said) and q.intent in ("price", "detail"):
            q.intent = "detail"  # "短款裙长多少", "how much does it weigh": the number asked is a spec, not the price
            q.attributes = [a for a in q.attributes if a != "price"]
        ms = [m.score for m in q.mentions]
        if (
            q.intent == "compare"
            and not q.pair
            and q.named
            and q.direction is None
            and not understand.plural(text)
            and not understand.comparing(text)
            and (len(ms) < 2 or ms[0] >= 2 * ms[1])
        ):
            q.intent = "detail"  # "女款冲锋衣有哪些码": one product named, nothing to set it against
        if (
            q.intent == "compare"
            and not q.pair
            and len(q.products) >= 2
            and q.products[0].category != q.products[1].category
        ):
            q.intent = "recommend"  # "我家狗20斤睡哪个窝": "哪个" over products of different kinds is a choice to make
        if q.pair and q.intent in ("price", "detail", "stock", "suitability", "recommend"):
            q.intent = "compare"  # "mini和一万的差多少钱": two products named, whatever the wording
        elif q.intent in ("detail", "suitability", "price") and "stock" in q.attributes[:1]:
            q.intent = "stock"
        elif q.intent in ("detail", "suitability") and "price" in q.attributes[:1]:
            q.intent = "price"
        if (
            q.intent in ("detail", "suitability")
            and not focus
            and not any(m.why for m in q.mentions)
            and not q.attributes
        ):
            q.intent = "recommend"  # a need with no product in it ("颈椎不好 电脑太低"): suggest one
        elif (
            q.intent in ("detail", "compare")
            and not q.pair
            and not _specific(q, lex)
            and not (q.intent == "compare" and focus)
            and (turn.proba.get("recommend", 0.0) >= 0.2 or (q.intent == "compare" and q.categories))
            and sum(1 for m in q.mentions if m.score >= 0.5 and understand.has_evidence(m)) < 2
            and not understand.counted_two(text)  # "两款水管哪个轻": the two of that kind, side by side
            and not (q.products and q.keys_of(q.products[0].sku))  # "修枝剪刀片啥做的": its own spec
        ):
            # "床头想放个充电的", "哪个鼠标最轻": a need or a superlative over a kind of product, not one product
            q.intent = "recommend"
        elif (
            q.intent in ("recommend", "policy")
            and q.named
            and _specific(q, lex)
            and (asks_spec or q.intent == "recommend")
            and not (store_attr and q.intent == "policy" and not own_first)
        ):
            q.intent = "detail"  # "静音鼠标用什么电池", "欧包能放几天": about one product the viewer named
        pointed = self._by_direction(q, focus, lex) if not q.named and not q.pair else None
        if pointed is not None:
            # "便宜的能蒸吗" after a comparison: a question about the cheaper one, asked in what is left
            q.products, q.named = [pointed[0]], True
            if pointed[1]:
                q.text = normalize(text).replace(pointed[1], "", 1).strip() or text
                # the pointing adjective ("便宜的") is not what is asked: "便宜的那个有餐盘吗" asks the tray
                q.attributes, q.direction = [a for a, _ in lex.book.mentioned(q.text)], None
                if q.intent in ("price", "compare") and "price" not in q.attributes:
                    q.intent = "detail"
            if q.intent not in _PRODUCT_INTENTS and not store_attr:
                q.intent = "detail"
        elif turn.image is not None:
            best = snap.product(turn.image.best_sku) if turn.image.best_sku else None
            q.products, q.named = ([best], True) if best else ([], False)
        elif not q.named and focus and q.intent in _PRODUCT_INTENTS and not q.pair:
            q.products = self._from_focus(q, focus, lex, snap)
            q.variants = {p.sku: v for p in q.products if (v := lex.variant_in(p.sku, text)) is not None}
        elif turn.msg.context_sku and snap.product(turn.msg.context_sku) and not (q.named and _specific(q, lex)):
            # "这个裙子多长" with a dress on screen: the one on screen, unless another is named outright.
            q.products = [p for p in [snap.product(turn.msg.context_sku)] if p is not None]
        if q.by_sound and not turn.msg.lang:
            turn.lang = q.lang = "zh"  # pinyin initials are Chinese
        if q.intent == "policy" or any((a := lex.book.get(x)) is not None and a.scope == "store" for x in q.attributes):
            store_query = query
            if q.by_sound and (a0 := lex.book.get(q.attributes[0])) is not None:
                store_query = " ".join(a0.names_zh[:4])  # search by what the pinyin spells, not the letters
            store = self._call(turn, "search_products", {"query": store_query[:200], "k": 6, "scope": "store"})
            turn.hits = [SearchHit.model_validate(h) for h in (store or {}).get("hits", [])] + turn.hits
        turn.parsed = q
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "parsed %r intent=%s attrs=%s dir=%s products=%s named=%s mentions=%s",
                text,
                q.intent,
                q.attributes,
                q.direction,
                [p.sku for p in q.products],
                q.named,
                [(m.sku, m.score, m.why) for m in q.mentions[:4]],
            )
        turn.products = q.products
        turn.question = q.text

    def _from_focus(
        self, q: understand.Parsed, focus: list[Product], lex: CatalogLexicon, snap: LoadedVersion
    ) -> list[Product]:
        """The product in focus, or its sibling the follow-up points at ("那大号呢", "2米的呢")."""
        here = focus[0]
        picked = self._by_direction(q, focus, lex)
        if picked is not None:
            return [picked[0]]
        siblings = [
            m
            for m in understand.score_products(q.text, snap, lex, [], here.category)
            if m.sku != here.sku
            and lex.entries[m.sku].category == here.category
            and any(w.startswith(("qty", "code", "variant", "name")) for w in m.why)
        ]

        # Of the siblings the words fit, the one closest to the product in focus ("A系列小号" → "那大号呢"
        # is the A series' big size, not another series').
        def kin(sku: str) -> float:
            a, b = understand.name_grams(here.name), understand.name_grams(lex.entries[sku].product.name)
            return len(a & b) / max(1, len(a | b))

        # "能折叠吗" after the high chair whose own FAQ says it folds: 折叠 in the 折叠餐椅's name is no pointer
        # ("海盐的多少钱" is: a name word said as "X的" picks the sibling it names).
        siblings = [
            m
            for m in siblings
            if m.score >= 0.5
            and (p := snap.product(m.sku)) is not None
            and (_picks_by_name(q.text, p) or not _focus_explains(q.text, m, p, here))
        ]
        siblings.sort(key=lambda m: -(m.score + 0.8 * kin(m.sku)))
        if lex.variant_in(here.sku, q.text) is None and siblings:
            sib = snap.product(siblings[0].sku)
            if sib is not None:
                return [sib, here] if q.intent == "compare" else [sib]
        if q.intent == "compare" and len(focus) >= 2:
            return focus[:2]
        return [here] + [p for p in q.products if p.sku != here.sku][:1]

    @staticmethod
    def _by_direction(q: understand.Parsed, focus: list[Product], lex: CatalogLexicon) -> tuple[Product, str] | None:
        """ "那便宜的那个能躺吗" after two were compared: of the products in focus, the cheaper (lighter,
        bigger…) one the words point at, and the pointing words ("那便宜的那个")."""
        if q.intent == "compare" or len(focus) < 2 or not re.search(r"的|那个|这个|one", q.text):
            return None
        t = normalize(q.text)
        # "便宜的那个" points with the adjective the book reads in "哪个便宜"
        dirs = [(x, "") for x in lex.book.direction(t)] + [
            (x, m.group(1)[-k:] + "的")
            for m in re.finditer(r"([\u4e00-\u9fff]{1,4})的", t)
            for k in range(1, len(m.group(1)) + 1)
            for x in lex.book.direction("哪个" + m.group(1)[-k:])
        ]
        for (attr, d), said in dirs:
            values: dict[str, float] = {}
            for p in focus[:2]:
                if attr == "price":
                    values[p.sku] = p.price
                elif (k := next(iter(lex.keys_for(p.sku, attr)), None)) and (v := compose.value_number(p.specs[k])):
                    values[p.sku] = v
            if len(values) == 2 and len(set(values.values())) == 2:
                sku = (min if d == "less" else max)(values, key=lambda x: values[x])
                m = re.search(rf"[那这]?{re.escape(said)}(?:那个|这个|那款|这款|那一款)?", t) if said else None
                return next(p for p in focus if p.sku == sku), (m.group(0) if m else "")
        return None

    # --- composition ------------------------------------------------------------------------
    async def _compose(self, turn: _Turn, intent: str) -> Draft:
        snap, lang = turn.snap, turn.lang
        q, lex = turn.parsed, turn.lex
        assert q is not None and lex is not None
        p = q.products[0] if q.products else None
        if turn.image is not None and p is None:
            text = (
                "I couldn't find the product in this picture in our store."
                if lang == "en"
                else "图里的商品没有在咱们店里找到哦～可以发商品名字，我帮你查查相近的。"
            )
            return Draft(text, refused=True)
        if turn.image is not None and p is not None and intent not in _PRODUCT_INTENTS:  # "这个有吗?" + picture
            d = compose.price(snap, p, lang)
            variant = f"（{turn.image.variant}）" if turn.image.variant else ""
            lead = f"This looks like {p.name}{variant}. " if lang == "en" else f"图里是{p.name}{variant}，"
            return Draft(lead + d.text.replace(p.name, "", 1).lstrip("，"), d.facts)
        if intent == "injection" or (turn.tri.injection and intent not in _PRODUCT_INTENTS):
            text = (
                "I can only help with questions about our products and store."
                if lang == "en"
                else "我只能回答商品和店铺相关的问题哦～"
            )
            return Draft(text, refused=True)
        if intent == "coupon":
            return self._coupon(turn)
        if intent == "noise":
            return Draft(
                "Sorry, I didn't catch that — could you say it again?" if lang == "en" else "没听清，能再说一遍吗？",
                refused=True,
            )
        if intent in ("greeting", "chitchat") and understand.is_question(q.text) and not q.attributes:
            # "主播用的什么手机直播的": a question off the catalog gets the honest reply, not a welcome.
            return compose.not_found(lang)
        if intent in ("greeting", "chitchat"):
            text = (
                "Welcome! Ask me anything about tonight's products."
                if lang == "en"
                else "欢迎来到直播间～有想了解的商品随时问我！"
            )
            return Draft(text)
        if intent == "profile":
            return self._profile(turn)
        if intent == "policy":
            pol = compose.policy(snap, lex, q, turn.hits, turn.qvec, self.kb.embedder.encode)
            if not pol.refused or p is None or not (q.named or q.categories):
                return pol
            intent = "detail"  # "提篮要买底座吗": no store rule says it, the named product's own facts may
        if not q.named and intent in (*_PRODUCT_INTENTS, "recommend") and (faq := self._faq_asked(turn, q)):
            return faq  # a product's own FAQ asked word for word ("奶嘴多久换一次") names the product itself
        if intent == "recommend" or (
            intent in ("detail", "price") and not q.pair and understand.asks_for_kind(q.text, lex)
        ):
            # "想要不用充电的头灯", "椅子要最轻的": a product of a kind asked for, whatever names it fits
            return self._recommend(turn)
        if intent == "compare":
            if len(q.products) >= 2:
                return compose.compare(snap, lex, q, q.products, turn.qvec)
            if p is not None:
                variants = [v for v in p.variant_list() if v.name and normalize(v.name) in normalize(q.text)]
                if len(variants) >= 2 and all(v.price is not None for v in variants[:2]):
                    if "price" not in q.attributes:  # "茶轴和红轴有啥区别" may be a FAQ; "差几块" is the prices
                        d = compose.detail(snap, lex, q, p, turn.qvec)
                        if not d.refused and d.facts and d.facts[0].kind in ("faq", "qa"):
                            return d
                    return self._variant_compare(turn, p, variants[:2])
                d = compose.detail(snap, lex, q, p, turn.qvec)
                if d.refused and self._a_need(turn, q, lex):
                    return self._recommend(turn)  # "my kid is 7, which toothbrush?": one kind, a need — a choice
                return d
            return compose.not_found(lang)
        if p is None:
            if any((a := lex.book.get(x)) is not None and a.scope == "store" for x in q.attributes):
                return compose.policy(snap, lex, q, turn.hits, turn.qvec, self.kb.embedder.encode)
            return compose.not_found(lang)
        if not (q.named or turn.image is not None or turn.msg.context_sku or q.categories or self._had_focus(turn)):
            # Nothing in the question points at a product: guessing one would answer a question not asked —
            # but a stated need ("家里狗狗10岁了") asks nothing about a product, it asks for one.
            if self._a_need(turn, q, lex):
                return self._recommend(turn)
            return compose.not_found(lang)
        chosen = q.variants.get(p.sku)
        if (
            intent == "detail"
            and chosen is not None
            and understand.asks_how_much(q.text)
            and not understand.residual(q.text, lex, [p])
            and not lex.book.mentioned(understand.without_grams(q.text, chosen.name or ""))
        ):
            intent = "price"  # "二段三罐装多少": an option named and "多少" of nothing else is its price
        if intent == "price" and (part := self._part_price(turn, q, p)) is not None:
            return part
        if intent == "price":
            return compose.price(snap, p, lang, chosen)
        if intent == "stock" and not (
            lang != "en" and understand.asks_existence(q.text) and self._asks_beyond_stock(q, lex, p)
        ):
            return compose.stock(snap, p, lang, chosen)
        d = compose.detail(snap, lex, q, p, turn.qvec)
        if d.refused and q.categories and _kind_only(q) and not self._had_focus(turn):
            # "奶粉开罐以后多久要喝完": only the kind is named; the first of it that says is the answer
            for other in [x for x in q.products[1:4] if x.category in q.categories]:
                alt = compose.detail(snap, lex, q, other, turn.qvec)
                words = understand.residual(q.text, lex, [other])
                # …saying what was asked in its own words, not a spec of the attribute whatever it says
                if not alt.refused and words and any(w in normalize(f.text) for f in alt.facts for w in words):
                    return alt
        if d.refused and (own := self._own_faq(turn, q, p)) is not None:
            return own  # "伞车能带上飞机吗" is the product's own "能上飞机吗", whatever attribute it read as
        if (
            d.refused
            and not q.attributes
            and turn.runner_up in ("price", "stock")
            and not understand.residual(q.text, lex, [p])
        ):
            # Nothing in the catalog answers it as a detail; the classifier's next reading ("…多少") does.
            return (
                compose.price(snap, p, lang, chosen)
                if turn.runner_up == "price"
                else compose.stock(snap, p, lang, chosen)
            )
        if d.refused and (opts := self._options(turn, q, p)) is not None:
            return opts
        if d.refused and not q.attributes and any(h.kind in ("doc", "qa") and not h.sku for h in turn.hits[:3]):
            pol = compose.policy(snap, lex, q, turn.hits, turn.qvec, self.kb.embedder.encode)
            if not pol.refused:
                return pol
        if d.refused and self._a_need(turn, q, lex):
            # "家里有大狗选哪个牵引绳", "macbook只有两个c口 想接网线": nothing asked of one product's facts,
            # a kind of product (or none) for a need the viewer describes — that is a recommendation.
            return self._recommend(turn)
        return d

    def _part_price(self, turn: _Turn, q: understand.Parsed, p: Product) -> Draft | None:
        """ "刷头多少钱", "isofix底座多少钱": the price of a part or add-on the product's own facts quote,
        not the product's price — a fact naming the asked words together with an amount of money."""
        lex = turn.lex
        assert lex is not None
        terms = [t for t in understand.residual(q.text, lex, [p]) if not understand.asks_money(t)]
        if not terms or q.variants.get(p.sku) is not None:
            return None
        d = compose.detail(turn.snap, lex, q, p, turn.qvec)
        if d.refused or not d.facts:
            return None
        said = normalize(" ".join(x for f in d.facts for x in (f.key, f.value, f.text) if x))
        if any(normalize(t) in said for t in terms) and re.search(r"\d\s*(元|块)|[¥￥]\s*\d", said):
            return d
        return None

    def _faq_asked(self, turn: _Turn, q: understand.Parsed) -> Draft | None:
        """The answer of the one product FAQ whose question is the viewer's, near word for word (two
        FAQs that both fit and answer differently leave it unanswered: it is unclear which product)."""
        said = _bigrams(q.text)
        if len(said) < 3 or turn.lang == "en":  # an English question takes the usual path
            return None
        scored: list[tuple[float, Fact]] = []
        for h in turn.hits[:6]:
            if h.kind != "faq" or not h.sku:
                continue
            f = next((x for x in turn.snap.index.facts_of(h.sku) if x.id == h.fact_id), None)
            if f is None or not f.key or not f.value:
                continue
            if (dice := _dice(said, f.key)) >= 0.7:
                scored.append((dice, f))
        if not scored:
            return None
        top = max(d for d, _ in scored)
        fits = [f for d, f in scored if d >= top - 0.05]
        if len({normalize(f.value or "") for f in fits}) > 1:
            return None
        names = list(dict.fromkeys(f.name or "" for f in fits))
        who = names[0] if len(names) == 1 else "、".join(names[:3]) + "都一样"
        return Draft(f"{who}：{fits[0].value}", list({f.id: f for f in fits}.values()))

    @staticmethod
    def _asks_beyond_stock(q: understand.Parsed, lex: CatalogLexicon, p: Product) -> bool:
        """ "3段奶粉加了OPO吗" reads like "有…吗" but names a thing besides the product and its stock."""
        stock = lex.book.get("stock")
        names = [normalize(n) for n in (stock.names_zh + stock.names_en if stock else [])]
        return any(
            not any(t in n or n in t for n in names) for t in understand.residual(q.text, lex, [p]) if len(t) >= 2
        )

    def _options(self, turn: _Turn, q: understand.Parsed, p: Product) -> Draft | None:
        """ "伞车有什么颜色", "有粉色吗": a colour or size asked of a product with no such spec but
        variants — its options, the one that has the asked word first."""
        if not {"color", "size_fit", "style"} & set(q.attributes):
            return None
        facts = [f for f in turn.snap.index.facts_of(p.sku) if f.kind == "variant" and f.key]
        if len(facts) < 2:
            return None
        t = normalize(q.text)

        # the option sharing most characters with the words said, not counting the words every option
        # name may carry ("粉色" → 樱花粉; "紫色的" → 薰衣草紫, not 白色)
        def shared(f: Fact) -> int:
            return sum(1 for ch in set(normalize(f.key or "")) if ch in t and ch not in "色款号码的")

        best = max((shared(f) for f in facts), default=0)
        said = [f for f in facts if best and shared(f) == best]
        names = "、".join(f.key or "" for f in facts)
        m = turn.msg
        last = self.memory.get(m.merchant, m.room_id, m.viewer_id).last_intent
        if said and last in ("price", "stock") and not understand.asks_existence(q.text):
            # "紫色的呢" after the price: that option's price (or stock)
            v = next((x for x in p.variant_list() if x.name == said[0].key), None)
            if v is not None:
                return (compose.price if last == "price" else compose.stock)(turn.snap, p, turn.lang, v)
        if turn.lang == "en":
            return Draft(f"{p.name} comes in: {names}.", facts)
        if said and understand.asks_existence(q.text):
            return Draft(f"有的，{p.name}有{said[0].key}，可选：{names}。", facts)
        return Draft(f"{p.name}可选：{names}。", facts)

    def _own_faq(self, turn: _Turn, q: understand.Parsed, p: Product) -> Draft | None:
        """The named product's FAQ whose question is the viewer's, its name aside (bigram Dice ≥ 0.6)."""
        said = _bigrams(compose.strip_own_name(q.text, p))
        if len(said) < 2 or turn.lang == "en":
            return None
        best: tuple[float, Fact] | None = None
        for f in turn.snap.index.facts_of(p.sku):
            if f.kind in ("faq", "qa") and f.key and f.value and (dice := _dice(said, f.key)) >= 0.6:
                if best is None or dice > best[0]:
                    best = (dice, f)
        return Draft(f"{p.name}：{best[1].value}", [best[1]]) if best else None

    def _a_need(self, turn: _Turn, q: understand.Parsed, lex: CatalogLexicon) -> bool:
        """The question asks no fact (no attribute, no spec key, not a yes/no about a feature) of one
        product the viewer named outright: what is left is a need to match products against."""
        t = normalize(q.text)
        return (
            all((a := lex.book.get(x)) is not None and a.audience for x in q.attributes)
            and not any(normalize(k) in t for _, k in q.keys)  # a key said whole; its 2-char head may be a verb
            and not understand.asks_existence(q.text)
            and not understand.asks_yes_no(q.text)
            and not (understand.asks_value(q.text) and not _choice(t, lex))
            and not (q.named and _specific(q, lex) and not _choice(t, lex))
            and not turn.tri.injection
            and bool(understand.residual(q.text, lex))
        )

    def _had_focus(self, turn: _Turn) -> bool:
        return bool(self.memory.get(turn.msg.merchant, turn.msg.room_id, turn.msg.viewer_id).focus)

    def _variant_compare(self, turn: _Turn, p: Product, variants: list[Any]) -> Draft:
        vf = {f.key: f for f in turn.snap.index.facts_of(p.sku) if f.kind == "variant"}
        a, b = variants
        facts = [vf[v.name] for v in variants if v.name in vf]
        if turn.lang == "en":
            return Draft(f"{p.name}: {a.name} ¥{a.price:g}, {b.name} ¥{b.price:g}.", facts)
        return Draft(f"{p.name}{a.name}直播价{a.price:g}元，{b.name}直播价{b.price:g}元。", facts)

    def _recommend(self, turn: _Turn) -> Draft:
        q, lex, snap = turn.parsed, turn.lex, turn.snap
        assert q is not None and lex is not None
        prof = self._call(turn, "lookup_profile", {}) or {}
        interests = [t["tag"] for t in prof.get("interest_tags", [])][:2] if prof.get("known") else []
        # Recommend within the kind of product the viewer said ("耳机", or a named product's kind); a need
        # with no product words ("自驾游充电用啥") is matched against the whole catalog.
        worded = bool(q.mentions) and any(w.startswith(("name:", "code", "qty", "variant")) for w in q.mentions[0].why)
        head = understand.head_category(q.text, lex) if len(q.categories) > 1 else None
        cats = ({head} if head else set(q.categories)) or (
            {lex.entries[p.sku].category for p in q.products[:1] if p.sku in lex.entries} if worded else set()
        )
        pool = [e.product for e in lex.entries.values() if not cats or e.category in cats]
        return compose.recommend(snap, lex, q, pool, turn.hits, turn.qvec, interests if not cats else ())

    def _profile(self, turn: _Turn) -> Draft:
        prof = self._call(turn, "lookup_profile", {}) or {}
        if not prof.get("known"):
            return compose.not_found(turn.lang)
        tier = str(prof.get("tier") or "")
        if turn.lang == "en":
            return Draft(f"Your membership tier is {tier}." if tier else "I can't see your membership right now.")
        return Draft(f"你现在的会员等级是{tier}～" if tier else "暂时查不到你的会员信息哦～")

    def _coupon(self, turn: _Turn) -> Draft:
        sku = turn.products[0].sku if turn.products else None
        self._call(turn, "lookup_profile", {})
        res = self._call(turn, "issue_coupon", {"sku": sku} if sku else {})
        if not res:
            return Draft("优惠券暂时领不了，稍后再试哦～", refused=True)
        if res.get("ok") and res.get("offer"):
            o = res["offer"]
            value = f"{o['amount']:g}元" if o["kind"] == "amount" else f"{o['discount'] * 10:g}折"
            cond = f"满{o['threshold']:g}元可用" if o.get("threshold") else "无门槛"
            if turn.lang == "en":
                return Draft(f"Done! A coupon '{o['title']}' is in your account.")
            return Draft(f"已经给你发了一张「{o['title']}」，{value}，{cond}，下单时自动抵扣～")
        return Draft(res.get("message") or "这张券暂时领不了哦～", refused=True)

    async def _maybe_rephrase(self, turn: _Turn, draft: Draft) -> Draft:
        """Optionally let the LLM make a fast answer sound more natural — within a hard time budget,
        and only if the result keeps every number and passes the guardrails."""
        if not (self.llm and self.config.rephrase_budget_ms > 0 and draft.text and not draft.refused):
            return draft
        msgs = [
            {
                "role": "system",
                "content": "把下面这句话改写得更口语、更像直播间助理，不改变任何数字和事实，不加新信息，不超过60字。",
            },
            {"role": "user", "content": draft.text},
        ]
        try:
            text = await asyncio.wait_for(self.llm.complete(msgs, max_tokens=80), self.config.rephrase_budget_ms / 1000)
        except (TimeoutError, LLMUnavailable):
            return draft
        text = text.strip()
        if not text or numbers(text) != numbers(draft.text):
            return draft
        return Draft(text, draft.facts, draft.refused)

    # --- LLM path -------------------------------------------------------------------------
    def _facts_for_llm(self, turn: _Turn, n: int = 5) -> list[Fact]:
        facts = [turn.snap.fact(h.fact_id) for h in turn.hits[:n]]
        return [f for f in facts if f is not None]

    def _system_prompt(self, turn: _Turn) -> str:
        return self.system_prompt(turn.snap.catalog.merchant.name or turn.msg.merchant, turn.msg.merchant)

    def system_prompt(self, shop: str, merchant: str | None = None) -> str:
        return prompts.render_for(
            merchant, "system", store=self.prompt_store, shop=shop, max_chars=self.config.max_chars
        )

    async def warm_up(self, merchant: str) -> None:
        """Evaluate the merchant's system prompt once so its KV cache is reused by every question
        (first token drops from ~5 s to ~0.4 s on the embedded model)."""
        if self.llm is None:
            return
        try:
            shop = self.kb.snapshot(merchant).catalog.merchant.name or merchant
            await self.llm.complete(
                [
                    {"role": "system", "content": self.system_prompt(shop, merchant)},
                    {"role": "user", "content": "你好"},
                ],
                max_tokens=1,
            )
        except Exception as e:  # noqa: BLE001 — warm-up is best effort
            log.info("warm-up skipped: %s", e)

    async def _plan_with_llm(self, turn: _Turn) -> None:
        """The model picks extra tools; its arguments are constrained to real skus and validated."""
        assert self.llm is not None  # only planned when a model is configured
        candidates = sorted({h.sku for h in turn.hits if h.sku})[:8]
        tools = [
            t
            for t in self.tools.openai_tools()
            if t["function"]["name"] in ("get_product", "lookup_profile", "issue_coupon")
        ]
        schema_tools = []
        for t in tools:
            t = {"type": "function", "function": dict(t["function"])}
            params = {"type": "object", "properties": {}, "required": []}
            if t["function"]["name"] == "get_product" and candidates:
                params = {"type": "object", "properties": {"sku": {"enum": candidates}}, "required": ["sku"]}
            t["function"]["parameters"] = params
            schema_tools.append(t)
        msgs = [
            {
                "role": "system",
                "content": "为回答观众问题选择需要的工具：get_product查商品详情，lookup_profile查提问观众的画像（推荐时用），"
                "issue_coupon发券（观众要券时用）。不需要就返回空列表。",
            },
            {"role": "user", "content": turn.tri.text},
        ]
        caps = await self.llm.capabilities()
        calls = await asyncio.wait_for(
            self.llm.choose_tools(msgs, self.tools.openai_tools() if caps.native_tools else schema_tools),
            self.config.llm_timeout_s,
        )
        for c in calls[:3]:
            if c.name in ("get_product", "lookup_profile", "issue_coupon"):
                self._call(turn, c.name, c.arguments, by="llm")

    def _use_llm_planner(self, native: bool) -> bool:
        return self.config.planner == "llm" or (self.config.planner == "auto" and native)

    async def _small_talk(self, turn: _Turn) -> list[str]:
        """Chit-chat from the model, if it is ready within the budget: no facts are given, so any
        number, product claim or promise it makes is dropped by the sentence checks."""
        assert self.llm is not None
        system = self._system_prompt(turn)
        msgs = [
            {"role": "system", "content": system},
            {
                "role": "user",
                "content": "观众在闲聊，用一句友好的话回应（不超过25字，不提价格、数字、商品功效或任何承诺）：\n"
                + turn.tri.text.replace("【", "[").replace("】", "]")
                + ("\n(Answer in English.)" if turn.lang == "en" else ""),
            },
        ]
        out: list[str] = []

        async def run() -> None:
            assert self.llm is not None
            buf = ""
            stream = self.llm.stream(msgs, max_tokens=40)
            async with aclosing(stream):  # type: ignore[type-var]
                async for delta in stream:
                    buf += delta
                    while (cut := next((i for i, ch in enumerate(buf) if ch in _SENT_END), -1)) >= 0:
                        sentence, buf = buf[: cut + 1], buf[cut + 1 :]
                        if kept := self._guard_sentence(turn, sentence, [], system, None):
                            out.append(kept)
                            return
            if buf.strip() and (kept := self._guard_sentence(turn, buf, [], system, None)):
                out.append(kept)

        try:
            await asyncio.wait_for(run(), self.config.smalltalk_budget_ms / 1000)
        except (TimeoutError, LLMUnavailable):
            turn.flags.append("smalltalk_budget")
        return out[:1]

    async def _llm_sentences(self, turn: _Turn, intent: str) -> AsyncIterator[str]:
        assert self.llm is not None
        caps = await self.llm.capabilities()
        if self._use_llm_planner(caps.native_tools):
            try:
                await self._plan_with_llm(turn)
            except (TimeoutError, LLMUnavailable) as e:
                log.info("LLM planner unavailable (%s); rules plan only", e)
        elif intent == "recommend":
            self._call(turn, "lookup_profile", {})
        facts = self._facts_for_llm(turn)
        profile = next((c.result for c in turn.calls if c.name == "lookup_profile" and c.ok), None)
        prof_txt = ""
        if profile and profile.get("known"):
            tags = "、".join(t["tag"] for t in profile.get("interest_tags", [])[:3]) or "无"
            prof_txt = (
                f"【提问观众】{profile.get('tier')}，兴趣：{tags}，价格敏感度：{profile.get('price_sensitivity')}\n"
            )
        state = self.memory.get(turn.msg.merchant, turn.msg.room_id, turn.msg.viewer_id)
        hist = [f"{'观众' if t.role == 'viewer' else '助理'}：{t.text}" for t in list(state.turns)[-4:]]
        history = ("【最近对话】\n" + "\n".join(hist) + "\n") if hist else ""
        facts_txt = "\n".join(f"- {f.text}" for f in facts) or "（无相关资料）"
        system = self._system_prompt(turn)
        user = prompts.render_for(
            turn.msg.merchant,
            "answer",
            store=self.prompt_store,
            facts=facts_txt,
            profile=prof_txt,
            history=history,
            question=turn.tri.text.replace("【", "[").replace("】", "]"),
        )
        if turn.lang == "en":
            user += "\n(Answer in English.)"
        content: Any = user
        if turn.image is not None:
            user += "\n" + turn.image.prompt_block()
            content = user
            if self.config.vision_model and self.vision and turn.image.image_id:
                content = self.vision.model_content(turn.msg.room_id, turn.image.image_id, user)
        real_stock = turn.products[0].stock if turn.products else None
        buf, emitted = "", 0
        stream = self.llm.stream(
            [{"role": "system", "content": system}, {"role": "user", "content": content}],
            max_tokens=self.config.llm_max_tokens,
        )
        deadline = time.monotonic() + self.config.llm_timeout_s
        async with aclosing(stream):  # type: ignore[type-var]  # an async generator at runtime; closing the HTTP stream early stops generation server-side
            async for delta in stream:
                if time.monotonic() > deadline:
                    raise TimeoutError()
                buf += delta
                while True:
                    cut = next((i for i, ch in enumerate(buf) if ch in _SENT_END), -1)
                    if cut < 0:
                        break
                    sentence, buf = buf[: cut + 1], buf[cut + 1 :]
                    out = self._guard_sentence(turn, sentence, facts, system, real_stock)
                    if out:
                        if emitted + len(out) > self.config.max_chars * 1.5 and emitted:
                            return
                        emitted += len(out)
                        yield out
                if emitted >= self.config.max_chars:
                    return
        if buf.strip():
            out = self._guard_sentence(turn, buf, facts, system, real_stock)
            if out and (emitted + len(out) <= self.config.max_chars * 1.5 or not emitted):
                yield out

    def _claim_context(
        self, turn: _Turn, facts: list[Fact], source: Literal["composed", "llm"], secrets: Sequence[str] = ()
    ) -> ClaimContext:
        """Everything one turn's sentences may be checked against: this turn's facts and tool results,
        the catalog's names, the real stock and prices of the product talked about."""
        # Price claims are checked against the product's real prices when the answer is about one product;
        # an answer naming several is checked number by number against all their facts.
        skus = {f.sku for f in facts if f.sku}
        p = turn.products[0] if turn.products and skus <= {turn.products[0].sku} else None
        return ClaimContext(
            question=turn.tri.text,
            facts=tuple(facts),
            tool_calls=tuple(turn.calls),
            catalog_names=turn.lex.names if turn.lex is not None else (),
            secrets=tuple(secrets),
            real_stock=p.stock if p is not None else None,
            prices=compliance.PriceFacts.from_product(p, (), [f.text for f in facts]) if p is not None else None,
            lang=turn.lang,
            source=source,
        )

    def _guard_sentence(
        self, turn: _Turn, sentence: str, facts: list[Fact], system: str, real_stock: int | None
    ) -> str:
        """One model-written sentence through the claim checker; "" when it must not be said."""
        sentence = sentence.strip()
        if not sentence:
            return ""
        ctx = self._claim_context(turn, facts, "llm", [system])
        res = check_sentence(sentence, ctx=ctx, checker=self.claims_for(turn.msg.merchant))
        turn.flags += res.flags
        return res.text

    def _guard_whole(self, turn: _Turn, draft: Draft) -> str:
        """Composed text comes from facts, but facts are merchant-written: the same checker, sentence by
        sentence; what fails is dropped."""
        ctx = self._claim_context(turn, draft.facts + self._facts_for_llm(turn, 8), "composed")
        checker = self.claims_for(turn.msg.merchant)
        kept = []
        for s in _split_sentences(draft.text):
            res = check_sentence(s, ctx=ctx, checker=checker)
            turn.flags += res.flags
            if res.text:
                kept.append(res.text)
        return "".join(kept) or compose.not_found(turn.lang).text

    @staticmethod
    def _data_texts(turn: _Turn) -> list[str]:
        """Results of this turn's ledger/profile tools: real data that may ground a number."""
        import json

        return [
            json.dumps(c.result, ensure_ascii=False)
            for c in turn.calls
            if c.ok and c.name in ("issue_coupon", "get_product") and c.result
        ]

    def _cited(self, turn: _Turn, text: str) -> list[Fact]:
        """Facts the answer actually uses: shared numbers, or shared spec/FAQ values."""
        facts = self._facts_for_llm(turn)
        nums = numbers(text)
        used = [f for f in facts if nums & numbers(f.text) or (f.value and f.value[:6] in text)]
        return used or facts[:1]

    def _finish(self, turn: _Turn, draft: Draft, path: Literal["fast", "llm"], intent: str) -> AgentAnswer:
        cites = list(dict.fromkeys((f.id, f.sku) for f in draft.facts))
        if turn.image is not None and turn.image.image_id:
            # The offline image finding is cited too (its method and score are in tool_calls).
            cites.append((f"image:{turn.image.image_id}", turn.image.best_sku))
        skus = [s for _, s in cites if s] or [p.sku for p in turn.products[:1]]
        attributes = turn.parsed.attributes if turn.parsed is not None else None
        self._remember(turn.msg, turn.tri.text, intent, attributes, turn.lang, skus, draft.text)
        return AgentAnswer(
            answer=draft.text,
            citations=[Citation(fact_id=i, sku=s) for i, s in cites],
            tool_calls=turn.calls,
            refused=draft.refused,
            path=path,
            intent=intent,
            lang=turn.lang,
            kb_version=turn.snap.version,
            flags=sorted(set(turn.flags)),
        )

    def _remember(
        self,
        m: ViewerMessage,
        said: str,
        intent: str,
        attributes: Sequence[str] | None,
        lang: str,
        skus: Sequence[str],
        answer: str,
    ) -> None:
        """What one answered turn leaves in the viewer's memory (a cached answer leaves the same): one write,
        applied atomically by a shared memory."""
        self.memory.remember(
            m.merchant,
            m.room_id,
            m.viewer_id,
            said=said,
            answer=answer,
            skus=skus,
            intent=intent,
            attributes=attributes,
            lang=lang,
            lang_decisive=_decisive_lang(said),
        )


def _kind_only(q: understand.Parsed) -> bool:
    """The question names a kind of product, not one of them: no alias, code or near-whole name said, and
    beside the kind's word nothing of the first product's name ("轻便钓箱" names that box)."""
    top = q.mentions[0] if q.mentions else None
    if top is not None and any(
        w == "alias" or w.startswith(("code:", "qty:", "gloss:")) or (w.startswith("name:") and float(w[5:]) >= 0.8)
        for w in top.why
    ):
        return False
    rest = normalize(q.text)
    for c in q.categories:
        rest = rest.replace(normalize(c), " ")
    name = normalize(q.products[0].name) if q.products else ""
    return not any(rest[i : i + 2] in name for i in range(len(rest) - 1) if rest[i : i + 2].strip())


def _picks_by_name(text: str, p: Product) -> bool:
    """ "海盐的…", "黑色那款": a word of the product's name said as what picks one ("X的", "X那")."""
    t = normalize(text)
    return any(
        re.search(re.escape(g) + "(的|那|这)", t)
        for n in [p.name, *p.aliases]
        for g in understand.name_grams_exact(normalize(n or ""))
        if len(g) >= 2
    )


def _focus_explains(text: str, m: Mention | None, other: Product, here: Product) -> bool:
    """Whether the words naming ``other`` in a follow-up are only part of its name that the product in
    focus's own facts say too (its audience, its use): then they are about ``here``."""
    if m is None or m.sku != other.sku or any(not w.startswith(("name:", "dense:", "category")) for w in m.why):
        return False
    if any(w.startswith("name:") and float(w[5:]) >= 1.0 for w in m.why):
        return False
    t = normalize(text)
    grams = {
        g
        for n in [other.name, other.series, other.category, *other.aliases]
        for g in understand.name_grams_exact(normalize(n or ""))
    }
    said = {g for g in grams if g in t}
    said = {g for g in said if not any(g != h and g in h for h in said)}
    if not said:
        return False
    facts = normalize(
        " ".join([*here.specs.values(), *here.selling_points, *here.suitable_for, *(f.q + f.a for f in here.faq)])
    )
    return all(g in facts for g in said)


def _split_sentences(text: str) -> list[str]:
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch in _SENT_END:
            out.append(cur)
            cur = ""
    if cur.strip():
        out.append(cur)
    return out


_EN_WORD = re.compile(r"[A-Za-z]{2,}")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _decisive_lang(text: str) -> bool:
    """Whether a message says which language the viewer uses (Chinese characters, or English words
    beyond a product code)."""
    return bool(re.search(r"[\u4e00-\u9fff]", text)) or len(_EN_WORD.findall(text)) >= 2


def _bigrams(text: str) -> set[str]:
    t = re.sub(r"[^\w]", "", normalize(text))
    return {t[i : i + 2] for i in range(len(t) - 1)}


def _dice(said: set[str], question: str) -> float:
    """Bigram Dice of the viewer's words against a FAQ's question (0 when either is empty)."""
    asked = _bigrams(question)
    return 2 * len(said & asked) / (len(said) + len(asked)) if said and asked else 0.0


def _choice(t: str, lex: CatalogLexicon) -> bool:
    """ "选哪个牵引绳", "泰迪用什么牵引绳": the viewer asks which one to take, even when their words fit one."""
    if any(f in t for f in lex.book.comparison_frames):
        return True
    return any(f"{w}{c}" in t for w in ("什么", "啥") for c in lex.category_words if len(c) >= 2)


def _specific(q: understand.Parsed, lex: CatalogLexicon | None = None) -> bool:
    """The viewer named one product (not just a kind of product) clearly ahead of the rest."""
    ms = q.mentions
    if not ms or not any(w.startswith(("name:1", "code", "qty", "variant")) for w in ms[0].why):
        return False
    if lex is not None and not any(w.startswith(("code", "qty", "variant")) for w in ms[0].why):
        # "家里有大狗选哪个牵引绳": the name words said are the kind's own words (牵引绳), naming no one product
        t = normalize(q.text)
        for w in lex.kind_words:
            t = t.replace(w, " ")  # a word several products' names share names the kind, not one
        entry = lex.entries.get(ms[0].sku)
        if entry is not None and not (understand.name_grams(" ".join(entry.names)) & understand.name_grams(t)):
            return False
    return len(ms) == 1 or ms[1].score < 0.7 * ms[0].score
