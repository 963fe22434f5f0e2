"""Text normalisation and the character-level tokens the BM25 index works on."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_CJK}]+|[a-z]+|\d+(?:\.\d+)?")


def normalize(text: str) -> str:
    """NFKC folds full-width letters/digits (ＳＫ－００１ → SK-001); lower-case for matching."""
    # The answer path normalises the same few short strings hundreds of times per question; long ones
    # (documents at import) are not kept.
    return _normalize_short(text) if len(text) <= 256 else unicodedata.normalize("NFKC", text).lower()


@lru_cache(maxsize=1 << 15)
def _normalize_short(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def tokens(text: str) -> list[str]:
    """CJK runs become character unigrams + bigrams; Latin words and numbers stay whole.

    Unigrams survive typos and abbreviations (精化液 still shares 精/液 with 精华液); bigrams
    reward exact word matches (敏感, 保湿) without a word segmenter.
    """
    out: list[str] = []
    for m in _TOKEN_RE.finditer(normalize(text)):
        run = m.group()
        if "\u3400" <= run[0] <= "\ufaff":
            out.extend(run)
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            out.append(run)
    return out
