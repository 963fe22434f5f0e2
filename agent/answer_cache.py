"""Whole-answer cache in front of the agent's fast path.

A live room asks the same few questions over and over ("多少钱", "包邮吗"). A composed answer is a pure
function of what the key holds, so it is composed once and replayed to every viewer who asks it again:

- the merchant, the KB snapshot's version (a new version is a new key: nothing stale is ever served) and
  the claim checker in force (``checker_for`` makes a new one when the merchant's overrides change);
- the sanitised question text, the language the message asked for and the viewer's remembered language,
  the product on screen, whether a model is configured (chit-chat may go to it);
- the part of the viewer's memory the understanding step reads. For a question that names its product
  that is the product in focus (its category tilts ambiguous names) and the last intent; for any other
  question the first two products in focus — except a store policy asked without a product, keyed by
  the first only and checked against the asking viewer's first two (``Entry.pointable``). A viewer's
  first question has an empty memory, so it is shared with every other first question.

Stored only when the answer depends on nothing else about the viewer (``storable``): the fast path, only
catalog tools (no profile lookup, no coupon), no picture, no injection, not a follow-up by its wording,
not about a product in focus the question did not name, no flag of a timing-dependent step.

The merchant's style is applied after the cache (``Agent.stream``), so the cached text is the composed
one and a style publish needs no invalidation; the prompts are read only by the model's paths, which are
never stored; a claims publish is a new checker, so a new key. ``invalidate`` drops a merchant's entries
at once (memory, not correctness).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.messages import AgentAnswer

# Tools whose results are the catalog's, the same for every viewer; any other call keeps an answer out.
_SHARED_TOOLS = frozenset({"search_products", "get_product"})
# Flags of steps whose outcome depends on timing or the viewer's behaviour, not on the question.
_VOLATILE_FLAGS = frozenset({"smalltalk_budget", "llm_unavailable", "rate_limited", "injection"})
_SHORT_TALK = ("chitchat", "noise", "greeting")
HIT_FLAG = "answer_cache"


@dataclass(frozen=True)
class Probe:
    """One question's two candidate keys, and the memory it was asked with (for ``storable``)."""

    merchant: str
    named_key: tuple[Hashable, ...]
    open_key: tuple[Hashable, ...]
    focus: tuple[str, ...]


@dataclass(frozen=True)
class Entry:
    """A composed answer and what it leaves in the asking viewer's memory."""

    answer: AgentAnswer
    intent: str
    attributes: tuple[str, ...] | None
    skus: tuple[str, ...]
    # A store-policy answer to a question naming no product is keyed by the first focus product only, but
    # the understanding also tried to point the question at one of the first two ("便宜的那个…"): the
    # agent checks that against the asking viewer's memory before replaying it (``parsed`` is the reading).
    pointable: bool = False
    parsed: Any = None

    def replay(self) -> AgentAnswer:
        """A fresh answer object (the style step rewrites its text in place), marked as a replay."""
        a = self.answer.model_copy()
        a.flags = sorted({*self.answer.flags, HIT_FLAG})
        a.citations = list(self.answer.citations)
        return a


TWIN_WAIT_S = 1.0  # the longest a twin waits for the first asker's answer before composing its own


class Flight:
    """One question being composed on an event loop; twins asking the same on that loop wait for it."""

    def __init__(self, cache: AnswerCache, key: tuple[Hashable, ...]) -> None:
        self._cache, self._key = cache, key
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()

    async def landed(self, timeout: float) -> None:
        """Wait until it has landed (stored or not), at most ``timeout``; a flight from another loop (another
        thread's) is not waited for."""
        if self._loop is not asyncio.get_running_loop():
            return
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            pass

    def land(self) -> None:
        with self._cache._lock:
            if self._cache._flights.get(self._key) is self:
                del self._cache._flights[self._key]
        self._done.set()


class AnswerCache:
    """Bounded LRU of composed answers, shared by every task and thread of one process."""

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[Hashable, ...], Entry] = OrderedDict()
        self._flights: dict[tuple[Hashable, ...], Flight] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = self.stores = self.twins = 0

    def in_flight(self, probe: Probe) -> Flight | None:
        """The flight composing this very question from this very memory, if one is under way."""
        with self._lock:
            f = self._flights.get(probe.open_key)
            if f is not None:
                self.twins += 1
            return f

    def take_off(self, probe: Probe) -> Flight | None:
        """Mark this question as being composed (None: another asker already is); ``land`` it when done."""
        key = probe.open_key
        with self._lock:
            if key in self._flights:
                return None
            f = self._flights[key] = Flight(self, key)
            return f

    def __len__(self) -> int:
        return len(self._data)

    @staticmethod
    def probe(
        *,
        merchant: str,
        version: str,
        checker: object,
        text: str,
        lang_asked: str | None,
        lang_known: str,
        context_sku: str | None,
        model: bool,
        focus: Sequence[str],
        had_focus: bool,
        last_intent: str,
    ) -> Probe:
        """``focus``: the remembered skus still in the snapshot, most recent first; ``had_focus``: whether
        the memory holds any (the compose step asks that of the raw memory)."""
        base = (merchant, version, checker, text, lang_asked, lang_known, context_sku, model, had_focus, last_intent)
        f = tuple(focus)
        return Probe(merchant, (*base, "named", f[:1]), (*base, "open", f[:2]), f)

    def get(self, probe: Probe, accept: Callable[[Entry], bool] | None = None) -> Entry | None:
        """The entry for this question and memory; ``accept`` may turn down a pointable one."""
        with self._lock:
            for key in (probe.named_key, probe.open_key):
                e = self._data.get(key)
                if e is not None and (accept is None or not e.pointable or accept(e)):
                    self._data.move_to_end(key)
                    self.hits += 1
                    return e
            self.misses += 1
            return None

    def put(self, probe: Probe, named: bool, entry: Entry) -> None:
        key = probe.named_key if named or entry.pointable else probe.open_key
        with self._lock:
            self._data[key] = entry
            self._data.move_to_end(key)
            self.stores += 1
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def invalidate(self, merchant: str | None = None) -> int:
        """Drop every entry of ``merchant`` (all when None); returns how many."""
        with self._lock:
            drop = [k for k in self._data if merchant is None or k[0] == merchant]
            for k in drop:
                del self._data[k]
            return len(drop)

    def offer(self, probe: Probe, turn: Any, answer: AgentAnswer) -> bool:
        """Store ``answer`` (the agent's ``_Turn`` that made it) if ``storable``; whether it was."""
        named = storable(turn, answer, probe.focus)
        if named is None:
            return False
        q = turn.parsed
        skus = [c.sku for c in answer.citations if c.sku] or [p.sku for p in turn.products[:1]]
        # not named and a policy to the end: nothing took a product from memory (pointing at one names it,
        # the focus product is taken only for a product intent), so only the pointing attempt read focus[1]
        pointable = not named and not q.named and q.intent == "policy" and answer.intent == "policy"
        entry = Entry(
            answer.model_copy(deep=True),
            answer.intent,
            tuple(q.attributes) if q is not None else None,
            tuple(dict.fromkeys(skus)),
            pointable,
            q if pointable else None,
        )
        self.put(probe, named, entry)
        return True


def storable(turn: Any, answer: AgentAnswer, focus: Sequence[str]) -> bool | None:
    """None when the answer depends on the viewer (it is never stored); else whether it goes under the
    named key (the question named its product, and what it reads of memory is the first focus product
    and the last intent) or the open one (the first two focus products)."""
    tri, q = turn.tri, turn.parsed
    if answer.path != "fast" or q is None or turn.image is not None or tri.injection or tri.abuse:
        return None
    if any(c.name not in _SHARED_TOOLS for c in turn.calls) or _VOLATILE_FLAGS & {*answer.flags, *turn.flags}:
        return None
    top = max(turn.proba, key=turn.proba.__getitem__) if turn.proba else ""
    if tri.followup or (len(tri.text) <= 8 and top in _SHORT_TALK):
        return None  # a follow-up by its wording ("那大号呢"): resolved against the viewer's last turn
    said = {m.sku for m in q.mentions} if q.named else set()
    # The products the answer is about: those it cites, and the one it was composed for (a store policy
    # cites no product: the candidates retrieval ranked for it are not what it says).
    cited = {c.sku for c in answer.citations if c.sku}
    used = cited | {p.sku for p in turn.products[:1]} if cited or q.named else set()
    if (used & set(focus)) - said:
        return None  # about a product in focus the question did not name
    # A named question answered about a focus product may have been pointed at it ("便宜的那个…"), which
    # reads the first two focus products: that one goes under the open key.
    return bool(q.named) and not (turn.products and turn.products[0].sku in focus[:2])
