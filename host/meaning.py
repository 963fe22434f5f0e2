"""What the host has already said, by meaning. A whole-sentence embedding is dominated by the template
around a fact (two selling points under one lead-in score higher than one selling point under two), so
the comparison is per clause. A clause is old when it was said before in a line about the same products
(those it names, else its segment's; a line about none matches any), word for word or within ``threshold`` cosine stating the same figures. A line with a figure not said
before is news; otherwise it repeats when it holds a whole earlier line, when its main clause (the longest, ``MAIN_CHARS`` or more) is old or
old clauses make up ``share`` of it, product names weighing nothing. "大家看，磁吸方管，开合手感好。" after
"口红的亮点之一：磁吸方管，开合手感好。" repeats; a new selling point after an old "口红的亮点之一" does not.
Uses the project's sentence encoder (the room's ``embed``)."""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping

import numpy as np

REPEAT_COS = 0.9  # clause-level cosine for "the same thing"
REPEAT_SHARE = 0.6  # share of a line's weight in clauses said before
MAIN_CHARS = 8  # a main clause this long said before makes the line a repeat on its own

_SPLIT = re.compile(r"[，,。！!？?；;：:]+")  # not spaces or 、: product names and lists stay whole
_NUM = re.compile(r"\d+(?:\.\d+)?")


def clauses(text: str) -> list[str]:
    return [c for c in (x.strip() for x in _SPLIT.split(text)) if c]


def _same_subject(a: frozenset[str], b: frozenset[str]) -> bool:
    """About the same products, or one of the lines about none in particular."""
    return a == b or not a or not b


def _no_names() -> Mapping[str, str]:
    return {}


class MeaningMemory:
    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray],
        names: Callable[[], Mapping[str, str]] = _no_names,
        threshold: float = REPEAT_COS,
        share: float = REPEAT_SHARE,
        keep: int = 6000,
    ):
        """``names``: the catalog's product names and spoken short names → sku, longest first."""
        self.embed, self.names, self.threshold, self.share, self.keep = embed, names, threshold, share, keep
        self._said: OrderedDict[tuple[str, frozenset[str]], np.ndarray] = OrderedDict()  # (clause, products)
        self._figs: dict[tuple[str, frozenset[str]], frozenset[str]] = {}  # … and the figures they state
        self._mat: np.ndarray | None = None  # stacked vectors of _said, rebuilt lazily
        self._lines: deque[tuple[frozenset[tuple[str, frozenset[str]]], int]] = deque(maxlen=keep // 3)

    def _vecs(self, texts: list[str]) -> np.ndarray:
        v = np.asarray(self.embed(texts), dtype=np.float32)
        return v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9)

    def _parse(self, text: str, sku: str | None) -> tuple[list[str], list[int], list[frozenset[str]], frozenset[str]]:
        """(clauses, their lengths and figures without product names, the products the line is about:
        those it names, else its segment's ``sku``)."""
        cs, weights, figs, about = clauses(text), [], [], set()
        names = self.names()
        for c in cs:
            rest = c
            for n, named in names.items():
                if n and n in rest:
                    about.add(named)
                    rest = rest.replace(n, "")
            weights.append(len(rest.strip()))
            figs.append(frozenset(_NUM.findall(rest)))
        return cs, weights, figs, frozenset(about) or frozenset([sku] if sku else [])

    def repeats(self, text: str, sku: str | None = None) -> bool:
        cs, weights, figs, about = self._parse(text, sku)
        if not cs or not self._said:
            return False
        if self._mat is None:
            self._mat = np.stack(list(self._said.values()))
        said = list(self._said)
        said_figs = list(self._figs.values())
        sims = self._vecs(cs) @ self._mat.T
        hits = [
            {said[j] for j in np.nonzero(sims[i] >= self.threshold)[0] if said_figs[j] == figs[i]}
            for i in range(len(cs))
        ]
        hits = [{k for k in h if _same_subject(k[1], about)} for h in hits]
        old = [bool(h) for h in hits]
        if any(f and not o for f, o in zip(figs, old)):
            return False  # a figure not said before is news
        matched = set().union(*hits)
        if any(keys <= matched for keys, w in self._lines if w >= MAIN_CHARS):
            return True  # a whole earlier line under a new lead-in
        main = max(range(len(cs)), key=lambda i: weights[i])
        if old[main] and weights[main] >= MAIN_CHARS:
            return True
        total = sum(weights)
        if not total:
            return all(old)  # nothing but product names
        return sum(w for w, o in zip(weights, old) if o) >= self.share * total

    def add(self, text: str, sku: str | None = None) -> None:
        cs, weights, figs, about = self._parse(text, sku)
        self._lines.append((frozenset((c, about) for c in cs), sum(weights)))
        fig_of = dict(zip(cs, figs))
        new = [c for c in dict.fromkeys(cs) if (c, about) not in self._said]
        if not new:
            return
        for c, v in zip(new, self._vecs(new)):
            self._said[(c, about)] = v
            self._figs[(c, about)] = fig_of[c]
        while len(self._said) > self.keep:
            self._figs.pop(self._said.popitem(last=False)[0], None)
        self._mat = None
