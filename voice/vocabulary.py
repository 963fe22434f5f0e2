"""What the STT should know about the merchant's catalog: built from the catalog itself (never a
hand-written product list).

- ``CatalogVocabulary.prompt``: Whisper's initial prompt for a Mandarin room — the catalog's product
  words (names without brand and sizes, series, aliases) after a short Simplified-Chinese sentence, so
  Whisper writes Simplified characters and prefers the catalog's words ("巴旦木", not "八蛋木").
- ``to_simplified``: Traditional → Simplified (OpenCC's t2s tables, pure Python), applied to every
  Mandarin transcript.
- ``CatalogVocabulary.resolve``: product mentions that came back as homophones ("海元八蛋木") are
  rewritten to the catalog's word ("海盐巴旦木") when their toneless pinyin matches closely, before the
  agent sees the transcript. A transcript that still names no catalog word then gets one looser try:
  the catalog word closest in sound, off by at most half a syllable (its initial or its final), with
  confusable initials (j/q/x, z/zh, c/ch, s/sh, n/l, f/h) and nasal finals (an/ang, en/eng, in/ing)
  counted as equal ("前毛高多少钱" → "睫毛膏多少钱"; words of three characters or more: on 295 typed demo questions naming no product, two-character look-alikes rewrote 钱啊 → 姜茶). A question about a product must say which; one
  that names none is where a mis-heard product word hides. The window must be whole words (jieba) and
  not a common word of its own ("很期待" stays: 期待 is not a mis-heard 气垫).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import fuzz

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(rf"[{_CJK}]+")
PROMPT_HEAD = "以下是普通话的句子，关于直播间商品的价格、库存和优惠。"
PROMPT_MAX_CHARS = 150  # Whisper keeps ~223 prompt tokens; a Chinese character is 1-2 of them

# Initials and finals Mandarin speakers (and Whisper) confuse: compared as equal.
_FOLD = [("zh", "z"), ("ch", "c"), ("sh", "s"), ("ing", "in"), ("eng", "en"), ("ang", "an")]
COMMON_WORD_FREQ = 100  # jieba dictionary frequency from which a word is the viewer's own, not a mis-hearing
# The looser pass: initials in one group sound alike; nasal finals fold as above.
_INITIAL_GROUP = {"j": "j", "q": "j", "x": "j", "zh": "z", "ch": "c", "sh": "s", "l": "n", "h": "f"}
_FINAL_FOLD = {"ang": "an", "eng": "en", "ing": "in", "iang": "ian", "uang": "uan"}
REPROMPT_WORDS = 8  # catalog words in a second decoding's prompt
REPROMPT_MIN_SIMILARITY = 70  # rapidfuzz ratio of the two decodings' toneless pinyin


@lru_cache(maxsize=1)
def _converter():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → Simplified Chinese (OpenCC t2s); other text unchanged."""
    return _converter().convert(text) if _CJK_RUN.search(text) else text


def _syllables(text: str) -> list[str]:
    from pypinyin import lazy_pinyin

    out = []
    for s in lazy_pinyin(text, errors=lambda chars: ["?"] * len(chars)):
        for a, b in _FOLD:
            if s.startswith(a) or s.endswith(a):
                s = s.replace(a, b, 1)
        out.append("l" + s[1:] if s.startswith("n") and len(s) > 1 else s)  # n/l
    return out


def product_words(products: Iterable) -> list[list[str]]:
    """Per product, the distinctive words viewers say for it: its name without the brand word (a token
    most names share) and without sizes/codes, then its aliases and series."""
    products = list(products)
    first = [p.name.split()[0] for p in products if len(p.name.split()) > 1]
    common = max(set(first), key=first.count) if first else ""
    brand = common if first.count(common) > 1 else ""
    out = []
    for p in products:
        words = []
        for tok in p.name.split():
            if tok == brand or re.search(r"\d|#", tok) or not _CJK_RUN.search(tok):
                continue
            words.append(re.sub(r"[（(].*?[)）]", "", tok).strip())
        words += [a.strip() for a in p.aliases if _CJK_RUN.search(a)]
        if p.series and _CJK_RUN.search(p.series):
            words.append(p.series.strip())
        out.append([w for w in dict.fromkeys(words) if len(w) >= 2])
    return out


def product_terms(products: Iterable) -> list[str]:
    """Every product word of the catalog, interleaved (each product's first word, then each one's second,
    …; categories taking turns) so that a prompt cut short still names as many products as it can."""
    products = list(products)
    by_cat: dict[str, list] = {}
    for p in products:  # categories take turns: a prompt cut short covers the whole catalog
        by_cat.setdefault(p.category, []).append(p)
    order = [
        g[i] for i in range(max((len(g) for g in by_cat.values()), default=0)) for g in by_cat.values() if i < len(g)
    ]
    per = product_words(order)
    out: list[str] = []
    for depth in range(max((len(w) for w in per), default=0)):
        for words in per:
            if depth < len(words) and words[depth] not in out:
                out.append(words[depth])
    return out


def _parts(text: str) -> list[tuple[str, str]]:
    """(initial group, folded final) per character."""
    from pypinyin import Style, pinyin

    ini = [x[0] for x in pinyin(text, style=Style.INITIALS, strict=False, errors=lambda c: ["?"] * len(c))]
    fin = [x[0] for x in pinyin(text, style=Style.FINALS, strict=False, errors=lambda c: ["?"] * len(c))]
    return [(_INITIAL_GROUP.get(i, i), _FINAL_FOLD.get(f, f)) for i, f in zip(ini, fin)]


def _sound_alike(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> float:
    """Syllables that differ: 0 same, 0.5 initial or final differs, 1 both (or a character with no pinyin)."""
    off = 0.0
    for (ia, fa), (ib, fb) in zip(a, b):
        if "?" in (fa, fb):
            return float(len(a))
        off += 0.5 * ((ia != ib) + (fa != fb))
    return off


@dataclass
class CatalogVocabulary:
    terms: list[str]
    _pinyin: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _parts: dict[str, list[tuple[str, str]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._pinyin = {t: _syllables(t) for t in self.terms if _CJK_RUN.fullmatch(t)}
        self._parts = {t: _parts(t) for t in self._pinyin}

    @classmethod
    def from_products(cls, products: Sequence) -> CatalogVocabulary:
        return cls(product_terms(products))

    @property
    def prompt(self) -> str:
        """The initial prompt: the head sentence, then as many product words as fit."""
        words, size = [], len(PROMPT_HEAD) + 3
        for t in self.terms:
            if size + len(t) + 1 > PROMPT_MAX_CHARS:
                break
            words.append(t)
            size += len(t) + 1
        return PROMPT_HEAD + ("商品有：" + "、".join(words) + "。" if words else "")

    def resolve(self, text: str, threshold: float = 60.0) -> tuple[str, list[tuple[str, str]]]:
        """Rewrite near-homophones of catalog words in ``text``; returns (text, [(heard, term)])."""
        fixes: list[tuple[str, str]] = []
        by_len = sorted(self._pinyin.items(), key=lambda kv: -len(kv[0]))
        for run in _CJK_RUN.findall(text):
            syl = _syllables(run)
            taken = [False] * len(run)
            new = list(run)
            # what already is a catalog word stays as it is (小白瓶 is not a mis-heard 小蓝瓶)
            spans: list[tuple[int, int]] = []
            for term, _ in by_len:
                for m in re.finditer(re.escape(term), run):
                    taken[m.start() : m.end()] = [True] * len(term)
                    spans.append((m.start(), m.end()))
            for term, tsyl in by_len:  # longer words first; a character is rewritten once at most
                n = len(term)
                if n < 2 or n > len(run) or len(tsyl) != n:
                    continue
                for i in range(len(run) - n + 1):
                    window = run[i : i + n]
                    # a catalog word already there may only be held whole and kept ("整治开衫" → "针织开衫"
                    # keeps the alias 开衫), never cut or changed ("保湿精华有" is not "保湿精华油")
                    if all(taken[i : i + n]) or any(a < i + n and b > i and (a < i or b > i + n) for a, b in spans):
                        continue
                    if any(t and window[k] != term[k] for k, t in enumerate(taken[i : i + n])):
                        continue
                    pairs = list(zip(syl[i : i + n], tsyl))
                    same = sum(a == b for a, b in pairs)
                    # a two-character word only when it sounds the same ("三分" → "散粉"); longer ones
                    # may differ in one syllable, and only by a near sound ("海元八蛋木" → "海盐巴旦木":
                    # yuan ~ yan), never another word ("大号" is not "小号")
                    if same < (n if n == 2 else n - 1):
                        continue
                    if any(a != b and fuzz.ratio(a, b) < threshold for a, b in pairs):
                        continue
                    new[i : i + n] = list(term)
                    taken[i : i + n] = [True] * n
                    fixes.append((window, term))
                    break
            fixed = "".join(new)
            if fixed != run:
                text = text.replace(run, fixed, 1)
        if not fixes and not any(t in text for t in self._pinyin):
            return self._closest(text)
        return text, fixes

    def names_product(self, text: str) -> bool:
        """Whether ``text`` holds one of the catalog's words."""
        return any(t in text for t in self._pinyin)

    def sound_alikes(self, text: str, k: int = REPROMPT_WORDS, max_off: float = 0.5) -> list[str]:
        """The ``k`` catalog words closest in sound to a stretch of ``text`` (at most ``max_off`` of a
        syllable off per character, initials and finals compared as in the looser pass), nearest first."""
        scores: dict[str, float] = {}
        for run in _CJK_RUN.findall(text):
            parts = _parts(run)
            for term, tparts in self._parts.items():
                n = len(term)
                if n < 2 or n > len(run):
                    continue
                off = min(_sound_alike(parts[i : i + n], tparts) for i in range(len(run) - n + 1)) / n
                scores[term] = min(off, scores.get(term, off))
        ranked = sorted((off, -len(t), t) for t, off in scores.items() if off <= max_off)
        return [t for _, _, t in ranked[:k]]

    def reprompt(self, heard: str) -> str | None:
        """For a transcript that names no catalog word: a prompt of the catalog words that sound like some
        of it, to decode the same audio again with (None when a product is named, or nothing sounds near).
        The fixed prompt holds only some of the catalog; this one holds the words this audio may have said."""
        text = self.resolve(to_simplified(heard))[0]
        if self.names_product(text):
            return None
        words = self.sound_alikes(text)
        return PROMPT_HEAD + "商品有：" + "、".join(words) + "。" if words else None

    def choose(self, hypotheses: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
        """The transcript to keep (Simplified, resolved): the second decoding only when it names a catalog
        word the first did not and otherwise sounds like the first (the prompt may bias Whisper's spelling
        of what it hears, not make it hear another question)."""
        first = self.resolve(to_simplified(hypotheses[0])) if hypotheses and hypotheses[0] else ("", [])
        if len(hypotheses) < 2 or not hypotheses[1] or self.names_product(first[0]):
            return first
        second = self.resolve(to_simplified(hypotheses[1]))
        a, b = " ".join(_syllables(first[0])), " ".join(_syllables(second[0]))
        if self.names_product(second[0]) and fuzz.ratio(a, b) >= REPROMPT_MIN_SIMILARITY:
            return second[0], [(first[0], second[0])]
        return first

    def _closest(self, text: str, max_off: float = 0.5) -> tuple[str, list[tuple[str, str]]]:
        """The one catalog word closest in sound to a window of ``text`` (at most ``max_off`` syllables off;
        the longer word wins a tie), for a transcript that names no catalog word."""
        import jieba

        best: tuple[tuple[float, int, int], str, str] | None = None
        for run in _CJK_RUN.findall(text):
            parts = _parts(run)
            tokens = list(jieba.tokenize(run))
            starts, ends = {t[1] for t in tokens}, {t[2] for t in tokens}
            for term, tparts in self._parts.items():
                n = len(term)
                for i in range(len(run) - n + 1) if n >= 3 else ():  # two-character words: too many look-alikes
                    window = run[i : i + n]
                    if i not in starts or i + n not in ends or (jieba.get_FREQ(window) or 0) >= COMMON_WORD_FREQ:
                        continue
                    off = _sound_alike(parts[i : i + n], tparts)
                    # nearest first; then the word sharing more characters with what was heard; then the longer
                    key = (off, -sum(a == b for a, b in zip(window, term)), -n)
                    if off <= max_off and (best is None or key < best[0]):
                        best = (key, window, term)
        if best is None:
            return text, []
        return text.replace(best[1], best[2], 1), [(best[1], best[2])]
