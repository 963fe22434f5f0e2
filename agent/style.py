"""A merchant's structured style, applied to every answer as ONE step after composition.

The style only ever *removes* words (banned words, particles a formal tone drops), swaps one address
form for another (宝宝们/亲/您) and adds the merchant's own fixed lines (greeting, sign-off, lines to
always mention). It never adds a number or a claim: the added lines are checked when the style is saved
(``problems``) and again, with the claim checker and no facts, every time they are added; a rewritten
sentence keeps only numbers it already had. ``StyledStream`` wraps the agent's answer stream, so the
deltas a channel speaks and the final answer carry the same text.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.claims import ClaimChecker, ClaimContext, default_checker, numbers
from agent.messages import AgentAnswer, AnswerDelta

Tone = Literal["neutral", "warm", "lively", "formal"]
Address = Literal["", "宝宝们", "亲", "您"]

# How a composed answer may address the viewer: vocatives the style swaps for the merchant's form.
_VOCATIVES = ("宝宝们", "宝子们", "家人们", "姐妹们", "亲们", "宝宝", "宝子", "亲爱的", "亲")
_VOCATIVE_RE = re.compile(r"(^|[，,。！!？?～~\s])(" + "|".join(_VOCATIVES) + r")(?=[，,～~！!。\s]|$)")
_SENT_END = "。！？!?；;\n"
_PARTICLES = re.compile(r"(哦|呀|啦|哟|噢)(?=[。！？!?～~，,]|$)")
_NEGATION = re.compile(r"[不没无未非别勿]")
MAX_LINE = 40


class MerchantStyle(BaseModel):
    """What a merchant sets in the console (pydantic: it is validated at the edge and on load)."""

    model_config = ConfigDict(extra="forbid")
    greeting: str = Field(default="", max_length=MAX_LINE)  # said before the first answer sentence
    sign_off: str = Field(default="", max_length=MAX_LINE)  # said after the last
    tone: Tone = "neutral"
    address: Address = ""  # "" = keep the composed answer's own form
    banned_words: list[str] = Field(default_factory=list, max_length=100)
    always_mention: list[str] = Field(default_factory=list, max_length=5)

    @field_validator("banned_words", "always_mention")
    @classmethod
    def _clean(cls, v: list[str]) -> list[str]:
        out = [s.strip() for s in v if s and s.strip()]
        if any(len(s) > MAX_LINE for s in out):
            raise ValueError(f"each entry is at most {MAX_LINE} characters")
        return list(dict.fromkeys(out))

    def is_empty(self) -> bool:
        return self == MerchantStyle()


def _added_lines(style: MerchantStyle) -> list[str]:
    return [s for s in (style.greeting, *style.always_mention, style.sign_off) if s.strip()]


def _line_ok(line: str, checker: ClaimChecker) -> bool:
    """A line the style adds: no number at all, and the claim checker (with no facts) keeps it as is."""
    if numbers(line) or re.search(r"[0-9０-９一二两三四五六七八九十百千万]+(元|块|折|件|%|个|天|小时)", line):
        return False
    v = checker.check(line, ClaimContext(source="composed"))
    return v.text.strip() == line.strip() and not v.flags


def problems(style: MerchantStyle, checker: ClaimChecker | None = None) -> list[str]:
    """Everything that stops ``style`` from being published (empty list: it can be)."""
    checker = checker or default_checker()
    out: list[str] = []
    for line in _added_lines(style):
        if not _line_ok(line, checker):
            out.append(f"“{line}”含数字或未经核实的说法（风格只能加固定话术，不能加数字、承诺或功效）")
        hit = [w for w in style.banned_words if w in line]
        if hit:
            out.append(f"“{line}”含禁用词：{'、'.join(hit)}")
    for w in style.banned_words:
        if _NEGATION.search(w):
            out.append(f"禁用词“{w}”含否定字：删掉它会改变句子的意思，请写成不含否定字的词")
    return out


def _lines_text(lines: list[str]) -> str:
    return "".join(s if s[-1] in _SENT_END + "～~" else s + "。" for s in lines)


class StyleApplier:
    """One merchant's style, compiled; ``sentence`` rewrites composed text, ``frame`` adds the lines."""

    def __init__(self, style: MerchantStyle, checker: ClaimChecker | None = None):
        self.style = style
        self.checker = checker or default_checker()
        words = sorted(style.banned_words, key=len, reverse=True)
        self._banned = re.compile("|".join(map(re.escape, words))) if words else None
        # the lines are re-checked here too (a file edited on disk skips the console's check)
        self.lines = [s for s in _added_lines(style) if _line_ok(s, self.checker)]

    def body(self, text: str, lang: str) -> str:
        """Banned words out, the address form and tone applied, sentence by sentence; a sentence left
        with nothing to say, or that would gain a number, is dropped."""
        out = []
        for s in _split(text):
            t = self._sentence(s, lang)
            if t and numbers(t) <= numbers(s):
                out.append(t)
        if text.strip() and not out:  # everything said used a banned word: a line that claims nothing
            return "这个我再帮你确认一下～" if lang == "zh" else "Let me check that for you."
        return "".join(out)

    def _sentence(self, s: str, lang: str) -> str:
        t = s
        if self._banned is not None:
            t = self._banned.sub("", t)
            t = re.sub(r"([，,、])\1+|^[，,、\s]+", r"\1", t)
            t = re.sub(r"[，,、]+([。！？!?；;～~])", r"\1", t)
            if not re.search(r"[\w\u4e00-\u9fff]{2,}", t):
                return ""
        if lang == "zh":
            st = self.style
            if st.address:
                t = _VOCATIVE_RE.sub(lambda m: m.group(1) + st.address, t)
                if st.address == "您":
                    t = t.replace("你们", "您").replace("你", "您")
            if st.tone == "formal":
                t = _PARTICLES.sub("", t).replace("～", "。").replace("~", "。")
                t = re.sub(r"。{2,}", "。", t)
            elif st.tone == "lively" and t.endswith("。"):
                t = t[:-1] + "～"
        return t

    def frame(self, text: str, lang: str) -> tuple[str, str]:
        """The greeting (before) and the mention lines and sign-off (after) for one answer. Chinese
        lines go only on Chinese answers (an English viewer is not greeted in Chinese)."""
        lines = [s for s in self.lines if lang == "zh" or s.isascii()]
        st = self.style
        head = [s for s in lines if s == st.greeting and s not in text]
        tail = [s for s in lines if s != st.greeting and s not in text]
        return _lines_text(head), _lines_text(tail)


def _split(text: str) -> list[str]:
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch in _SENT_END:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


class StyledStream:
    """Wraps one answer stream: each delta's text through ``body`` (the greeting before the first),
    the tail lines as one more delta, and the final answer's text the deltas' text plus that tail —
    so what a channel streams and what it finally shows are the same words."""

    def __init__(self, applier: StyleApplier | None):
        self.applier = applier

    async def wrap(
        self, events: AsyncIterator[AnswerDelta | AgentAnswer], publish: Callable[[AgentAnswer], None]
    ) -> AsyncIterator[AnswerDelta | AgentAnswer]:
        a = self.applier
        raw: list[str] = []
        said: list[str] = []
        lang, last = "", -1
        async for ev in events:
            if isinstance(ev, AnswerDelta):
                if a is None:
                    yield ev
                    continue
                lang = lang or _lang_of(ev.text)
                text = a.body(ev.text, lang)
                if not said:
                    text = a.frame(text, lang)[0] + text
                raw.append(ev.text)
                said.append(text)
                last = ev.index
                yield AnswerDelta(text=text, index=ev.index)
                continue
            if a is not None:
                if said and "".join(raw) == ev.answer:
                    body = "".join(said)
                    tail = a.frame(body, lang)[1]
                else:  # no deltas (or other text): style the final answer by itself
                    lang = ev.lang or _lang_of(ev.answer)
                    body = a.body(ev.answer, lang)
                    head, tail = a.frame(body, lang)
                    body = head + body
                if tail and said:
                    yield AnswerDelta(text=tail, index=last + 1)
                if body + tail != ev.answer:
                    ev.answer = body + tail
                    ev.flags = sorted({*ev.flags, "style"})
            publish(ev)
            yield ev


def _lang_of(text: str) -> str:
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"


def for_style(style: MerchantStyle | None, checker: ClaimChecker | None = None) -> StyleApplier | None:
    return None if style is None or style.is_empty() else StyleApplier(style, checker)


class StyleCache:
    """Compiled appliers per merchant, rebuilt when the published style changes (the store is read per
    answer, ~10 µs: a publish in another worker takes effect everywhere)."""

    def __init__(self, load: Callable[[str], dict[str, object] | None], checker_for: Callable[[str], ClaimChecker]):
        self.load, self.checker_for = load, checker_for
        self._compiled: dict[str, tuple[object, StyleApplier | None]] = {}

    def __call__(self, merchant: str) -> StyleApplier | None:
        draft = _preview.get()
        if draft is not None and draft[0] == merchant:  # the console's preview of a draft style
            return for_style(draft[1], self.checker_for(merchant))
        raw = self.load(merchant)
        hit = self._compiled.get(merchant)
        if hit is not None and hit[0] is raw:
            return hit[1]
        try:
            applier = for_style(MerchantStyle.model_validate(raw), self.checker_for(merchant)) if raw else None
        except ValueError:  # a file edited on disk into something invalid: no style rather than a broken one
            applier = None
        self._compiled[merchant] = (raw, applier)
        return applier


_preview: ContextVar[tuple[str, MerchantStyle] | None] = ContextVar("liveroom_style_preview", default=None)


@contextmanager
def preview(merchant: str, style: MerchantStyle) -> Iterator[None]:
    """Within this block (and tasks started in it), ``merchant``'s answers use ``style`` instead of the
    published one (the console's side-by-side preview; like ``prompts.loader.scope``)."""
    token = _preview.set((merchant, style))
    try:
        yield
    finally:
        _preview.reset(token)
