"""Danmaku triage: every viewer message, in microseconds, before anything expensive.

``DanmakuTriage.process(Danmaku)`` emits one ``Triaged`` frame per message, with its ``kind``:

- ``empty`` / ``flood`` (one viewer sending too fast) / ``duplicate`` (same viewer, same text, in the
  dedupe window) — dropped;
- ``abuse`` / ``injection`` / ``spam`` (contact details, links, 刷单 …) — filtered, never answered;
- ``question`` / ``coupon_request`` — go on to clustering and answers;
- ``greeting`` / ``chatter`` — counted (the greeter folds greetings into its welcome lines).

Hostility (injection, abuse) and the sanitised text come from ``agent.triage``, what the viewer asks from
the learned intent model (``classify``: text → one of ``agent.intent_model.INTENTS``), topics from
``host.topics``. Both are cached by raw text (danmaku repeat a lot).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.triage import triage
from host.frames import Danmaku, Triaged
from host.pipeline import Processor
from host.topics import normalize_key, topics_of

log = logging.getLogger("liveroom.host")

_SPAM = re.compile(
    r"https?://|www\.|\.com\b|\.cn\b|加\s*(v|V|微|威|薇|我)|(vx|wx|v信|微信|薇信|qq|QQ|扣扣)\s*[:：]?\s*[A-Za-z0-9_-]{4,}|"
    r"(?<!\d)1[3-9]\d{9}(?!\d)|刷单|兼职|日赚|代购|私聊我|私信我|看我主页|进群|加群|返现|免费领取.{0,6}(加|联系)|"
    r"低价出|高仿|原单|引流",
    re.I,
)
_QUESTION = re.compile(
    r"[?？]|吗|呢$|[不没]$|怎么|多少|多[高大长重久远宽厚]|几.|(\w)不\1|什么|哪[个款种里]|能不能|可不可以|可以吗|有没有|"
    r"是不是|会不会|如何|咋|啥|是否|适合|多久|多大|多长|\b(how|what|which|can|does|is|are|do)\b",
    re.I,
)
# The intent model's labels → the host's kinds (anything else is a question). Small talk phrased as a
# question to the host ("主播能试用一下吗", "主播多高") is still a question: the room clusters and answers it.
_KIND_OF_INTENT = {"coupon": "coupon_request", "greeting": "greeting", "chitchat": "chatter", "noise": "chatter"}
_ASKED = {"greeting", "chitchat"}
_CHATTER = re.compile(
    r"^(\d{1,4}|[+＋]1|扣1|111+|666+|好看|好美|漂亮|来了|已拍|拍了|买了|冲|冲冲冲|哈+|支持|爱了|想要|"
    r"求链接|上链接|好物|不错|可以)$"
)


@dataclass
class TriageConfig:
    dedupe_window_s: float = 60.0  # same viewer, same text within this → duplicate
    viewer_burst: int = 6  # per-viewer token bucket: burst ...
    viewer_per_s: float = 0.5  # ... refilled at this rate (one message every 2 s sustained)
    flood_identical: int = 100  # the same text this many times in flood_window_s → "flood" alert (once)
    flood_window_s: float = 10.0
    max_viewers_tracked: int = 50_000


@dataclass
class TriageStats:
    received: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1


class DanmakuTriage(Processor):
    """Sanitize → rate/dedupe → filter → classify, in one pass (one frame in, one frame out)."""

    def __init__(
        self,
        config: TriageConfig | None = None,
        match_sku: Callable[[str], str | None] | None = None,
        on_flood: Callable[[str, int], None] | None = None,
        classify: Callable[[str], str] | None = None,
    ):
        super().__init__()
        self.cfg = config or TriageConfig()
        self.match_sku = match_sku  # text → sku named in it (the KB's product matcher), optional
        self.on_flood = on_flood
        # text → intent (the learned model); without one, a message with a question mark or word is a
        # question and anything else chatter
        self.classify_intent = classify
        self.stats = TriageStats()
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # viewer → [tokens, last_ts]
        self._recent: OrderedDict[tuple[str, str], float] = OrderedDict()  # (viewer, key) → ts
        self._identical: dict[str, deque] = {}  # key → timestamps (only for frequent keys)
        self._flooded: dict[str, float] = {}
        self._text_cache: OrderedDict[str, tuple] = OrderedDict()
        self._topic_cache: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()
        # normalized key → intent: "主播～敏感肌能用吗？？" and "敏感肌能用吗" are one model call
        self._intent_cache: OrderedDict[str, str] = OrderedDict()

    def _topics(self, text: str, intent: str) -> frozenset[str]:
        k = (text, intent)
        t = self._topic_cache.get(k)
        if t is None:
            t = self._topic_cache[k] = topics_of(text, intent)
            if len(self._topic_cache) > 20_000:
                self._topic_cache.popitem(last=False)
        return t

    # --- stages -----------------------------------------------------------------------------
    def _allow(self, viewer: str, ts: float) -> bool:
        b = self._buckets.get(viewer)
        if b is None:
            b = [float(self.cfg.viewer_burst), ts]
            self._buckets[viewer] = b
            if len(self._buckets) > self.cfg.max_viewers_tracked:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(viewer)
        b[0] = min(self.cfg.viewer_burst, b[0] + (ts - b[1]) * self.cfg.viewer_per_s)
        b[1] = ts
        if b[0] < 1.0:
            return False
        b[0] -= 1.0
        return True

    def _duplicate(self, viewer: str, key: str, ts: float) -> bool:
        k = (viewer, key)
        prev = self._recent.get(k)
        self._recent[k] = ts
        self._recent.move_to_end(k)
        horizon = ts - self.cfg.dedupe_window_s
        while self._recent:  # expire from the old end
            old_k, old_ts = next(iter(self._recent.items()))
            if old_ts >= horizon and len(self._recent) <= 4 * self.cfg.max_viewers_tracked:
                break
            self._recent.popitem(last=False)
        return prev is not None and prev >= horizon

    def _track_identical(self, key: str, ts: float) -> None:
        q = self._identical.get(key)
        if q is None:
            if len(self._identical) > 5000:
                self._identical.clear()
            q = self._identical[key] = deque()
        q.append(ts)
        horizon = ts - self.cfg.flood_window_s
        while q and q[0] < horizon:
            q.popleft()
        if len(q) >= self.cfg.flood_identical and ts - self._flooded.get(key, -1e18) > 60:
            self._flooded[key] = ts
            if len(self._flooded) > 1000:
                self._flooded.clear()
            if self.on_flood:
                self.on_flood(key, len(q))

    # --- the processor ------------------------------------------------------------------------
    def _read(self, raw: str) -> tuple:
        """The text-only part of triage, cached by raw text (danmaku repeat a lot)."""
        hit = self._text_cache.get(raw)
        if hit is not None:
            return hit
        tri = triage(raw)
        text = tri.text
        key = normalize_key(text)
        spam = bool(_SPAM.search(text))
        question = bool(_QUESTION.search(text))
        chatter = bool(_CHATTER.match(key))
        intent = ""
        if key and not (tri.abuse or tri.injection or spam):
            intent = self._intent(text, key, question, chatter)
        out = (tri, text, key, spam, intent, question and not chatter)
        self._text_cache[raw] = out
        if len(self._text_cache) > 20_000:
            self._text_cache.popitem(last=False)
        return out

    def _intent(self, text: str, key: str, question: bool, chatter: bool) -> str:
        """The learned intent, cached by normalized key; live-room chatter ("666", "扣1", "上链接") stays
        chatter whatever it is classified as, unless it asks for a coupon."""
        if self.classify_intent is None:
            intent = "chitchat" if chatter or not question else "detail"
        elif (hit := self._intent_cache.get(key)) is not None:
            intent = hit
        else:
            try:
                intent = self.classify_intent(text)
            except Exception:  # a failing model must not take the room down
                log.exception("intent model failed; reading the message as a question")
                intent = "detail" if question else "chitchat"
            else:
                self._intent_cache[key] = intent
                if len(self._intent_cache) > 20_000:
                    self._intent_cache.popitem(last=False)
        if chatter and intent != "coupon":
            return "chitchat"
        return intent

    def classify(self, msg: Danmaku) -> Triaged:
        self.stats.received += 1
        tri, text, key, spam, intent, asks = self._read(msg.text)
        if not key:  # nothing but fillers / emoji / punctuation ("哈哈哈", "👏👏")
            return Triaged(msg, text, key, "empty" if not text.strip() else "chatter", lang=tri.lang)
        if not self._allow(msg.viewer_id, msg.ts):
            return Triaged(msg, text, key, "flood", lang=tri.lang)
        if self._duplicate(msg.viewer_id, key, msg.ts):
            return Triaged(msg, text, key, "duplicate", lang=tri.lang)
        self._track_identical(key, msg.ts)
        if tri.abuse:
            return Triaged(msg, text, key, "abuse", lang=tri.lang)
        if tri.injection:
            return Triaged(msg, text, key, "injection", lang=tri.lang)
        if spam:
            return Triaged(msg, text, key, "spam", lang=tri.lang)
        kind = _KIND_OF_INTENT.get(intent, "question")
        if intent in _ASKED and asks and len(key) >= 3:
            kind = "question"
        sku, named = msg.context_sku, False
        if kind in ("question", "coupon_request") and self.match_sku is not None:
            found = self.match_sku(text)
            if found:
                sku, named = found, True
        topics = self._topics(text, intent) if kind in ("question", "coupon_request") else frozenset()
        return Triaged(msg, text, key, kind, intent, topics, sku, named, tri.lang)

    def process(self, msg: Danmaku) -> None:
        t = self.classify(msg)
        self.stats.count(t.kind)
        self.emit(t)
