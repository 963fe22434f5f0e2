"""What a merchant's catalog teaches about how viewers refer to its products, built once per KB version.

Nothing here names a product or category: everything is read from the catalog itself.
- category words: name fragments that are (nearly) only used by one category's products, so "充电头"
  points at the chargers and "猫砂" at the litter without anybody listing them;
- codes: the letter/digit tokens that tell siblings apart (Pro, mini, K84), and whether a name carries a
  token the viewer did not say (a viewer who says "两万毫安的" means the plain one, not the Pro);
- quantities: the numbers with units in names, specs and variants ("10000mAh", "2m", "65W") so
  "两万毫安" or "2米那根" resolve by value, not by spelling;
- spec attributes: which cross-category attribute (knowledge/data/attributes.json) each spec is about;
- pinyin of category words and names, for "chongdianbao" or initials.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pypinyin import Style, lazy_pinyin

from knowledge.attributes import AttributeBook, Quantity, load_attributes, parse_quantities
from knowledge.lru import LruCache
from knowledge.schema import Product, Variant
from knowledge.text import normalize

_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_CODE = re.compile(r"[a-z]+\d*[a-z]*|\d+[a-z]+\d*")
_LATIN_WORD = re.compile(r"[a-z]{3,}")
# "金毛、拉布拉多、哈士奇等大型犬": items listed, then 等 and what they all are
_KIND_LIST = re.compile(r"((?:[\u4e00-\u9fff]{2,6}[、,，/和及])+[\u4e00-\u9fff]{2,6})等([\u4e00-\u9fff]{2,6})")


def _grams(text: str, lo: int = 2, hi: int = 4) -> set[str]:
    out: set[str] = set()
    for run in _CJK_RUN.findall(text):
        for n in range(lo, hi + 1):
            out.update(run[i : i + n] for i in range(len(run) - n + 1))
    return out


def _pinyin(text: str) -> tuple[str, str]:
    syl = [s for s in lazy_pinyin(text, errors="ignore") if s]
    ini = [s for s in lazy_pinyin(text, style=Style.FIRST_LETTER, errors="ignore") if s]
    return "".join(syl), "".join(ini)


@dataclass
class Entry:
    product: Product
    names: list[str]  # normalised name, series, aliases
    codes: set[str]  # distinguishing letter/digit tokens of the name and aliases
    name_qty: list[Quantity]
    spec_qty: list[Quantity]
    variants: list[Variant]
    category: str
    pinyin: set[str] = field(default_factory=set)  # full pinyin of names/aliases


@dataclass
class Mention:
    sku: str
    score: float
    why: list[str] = field(default_factory=list)


def _same_value(q: Quantity, p: Quantity) -> bool:
    if (
        q.dimension == p.dimension == "count"
        and q.unit
        and p.unit
        and q.unit != p.unit
        and "个" not in (q.unit, p.unit)
    ):
        return False  # counts of different things: "三罐装" is not "3段"
    if q.dimension and p.dimension:
        return q.dimension == p.dimension and abs(q.base - p.base) <= 0.01 * max(abs(p.base), 1e-9)
    # A bare number ("5000的", "两万") matches the value as the product writes it.
    return abs(q.value - p.value) <= 0.01 * max(abs(p.value), 1e-9)


class CatalogLexicon:
    def __init__(self, products: Sequence[Product], book: AttributeBook | None = None):
        self.book = book or load_attributes()
        self.entries: dict[str, Entry] = {}
        self.sentence_vectors: dict[str, np.ndarray] = {}  # store-document sentences, embedded on first use
        self.pinyin_attributes: Any = None  # agent.understand's attribute-name pinyin index, built on first use
        code_count: Counter[str] = Counter()
        for p in products:
            names = [normalize(x) for x in [p.name, p.series, *p.aliases] if x]
            codes = {c for n in [normalize(p.name), *(normalize(a) for a in p.aliases)] for c in _CODE.findall(n)}
            name_qty = [q for q in parse_quantities(p.name, self.book) if q.dimension]
            spec_qty = [q for v in p.specs.values() for q in parse_quantities(v, self.book) if q.dimension]
            e = Entry(p, names, codes, name_qty, spec_qty, p.variant_list(), normalize(p.category or ""))
            self.entries[p.sku] = e
            code_count.update(codes)
        # A code on (nearly) every product is the brand, not a distinguishing mark.
        common = {c for c, n in code_count.items() if n > max(2, len(products) // 2)}
        for e in self.entries.values():
            e.codes -= common
            # A bare unit symbol is no code ("2 m"), but a size letter is ("M码", "L号").
            said = " ".join(e.names)
            e.codes = {
                c
                for c in e.codes
                if not any(u.symbol.lower() == c for u in self.book.units)
                or re.search(rf"(?<![a-z0-9.]){re.escape(c)}[码号]", said)
            }
        self.category_words = self._category_words(products)
        self._categories_memo: LruCache[str, dict[str, float]] = LruCache(4096)
        # Every name the catalog gives its products: the claim checker's list of real products.
        self.names: frozenset[str] = frozenset(n for p in products for n in [p.name, p.series, *p.aliases] if n)
        self.spec_attrs: dict[tuple[str, str], list[str]] = {
            (p.sku, k): self.book.for_spec(k, v) for p in products for k, v in p.specs.items()
        }
        self._category_pinyin: dict[str, str] | None = None  # built on the first Latin-letter question
        self._english: dict[str, set[str]] | None = None  # sku → English words (knowledge.glosses), on first use
        self._name_text: dict[str, str] = {}  # sku → its name, series, category and aliases, normalised
        self._reverse_hits: dict[str, set[str]] = {}  # English word → skus whose names say it in Chinese
        self._vocabulary: set[str] | None = None
        self._kind_words: list[str] | None = None
        self._kinds: dict[str, set[str]] | None = None
        self._latin_names: re.Pattern[str] | None = None

    @property
    def category_pinyin(self) -> dict[str, str]:
        if self._category_pinyin is None:
            out: dict[str, str] = {}
            for w, cat in self.category_words.items():
                full, ini = _pinyin(w)
                if len(full) >= 6:
                    out[full] = cat
                if len(ini) >= 3:
                    out.setdefault(ini, cat)
            self._category_pinyin = out
        return self._category_pinyin

    @property
    def kind_words(self) -> list[str]:
        """Category words that two or more products' names share (longest first): they name a kind of
        product, not one product."""
        if self._kind_words is None:
            names = [" ".join(e.names) for e in self.entries.values()]
            self._kind_words = sorted(
                (w for w in self.category_words if len(w) >= 2 and sum(1 for n in names if w in n) >= 2),
                key=len,
                reverse=True,
            )
        return self._kind_words

    @property
    def vocabulary(self) -> set[str]:
        """Every 2-4 character run of the catalog's own text (names, specs, who it suits, selling points,
        FAQ): the words the merchant uses, for cutting a question where the segmenter did not ("泰迪用")."""
        if self._vocabulary is None:
            out: set[str] = set()
            for e in self.entries.values():
                p = e.product
                texts = [p.name, p.series or "", p.category or "", *p.aliases, *p.specs.keys(), *p.specs.values()]
                texts += [*p.selling_points, str(p.suitable_for or ""), str(p.not_suitable_for or "")]
                texts += [x for f in p.faq for x in (f.q, f.a)]
                for t in texts:
                    out |= _grams(normalize(t))
            self._vocabulary = out
        return self._vocabulary

    @property
    def kinds(self) -> dict[str, set[str]]:
        """What the catalog's own lists say a thing is: "金毛、拉布拉多等大型犬" → 金毛 and 拉布拉多 are
        大型犬, wherever in the catalog it is written, so a viewer's "金毛" meets another product's "大型犬"."""
        if self._kinds is None:
            out: dict[str, set[str]] = defaultdict(set)
            for e in self.entries.values():
                p = e.product
                lists = [p.suitable_for, p.not_suitable_for, p.selling_points]
                texts = [x if isinstance(x, str) else "、".join(x or []) for x in lists]  # one list, one text
                for text in texts:
                    for items, kind in _KIND_LIST.findall(normalize(text)):
                        for it in re.split(r"[、,，/和及]", items):
                            it = it.strip()
                            if 2 <= len(it) <= 6 and kind and it != kind:
                                out[it].add(kind)
            self._kinds = dict(out)
        return self._kinds

    @property
    def english(self) -> dict[str, set[str]]:
        """Each product's English words, from the dictionary's definitions of its Chinese name, series,
        category and aliases (plus any English already in them)."""
        if self._english is None:
            from knowledge.glosses import chinese_for, english_words, stem

            chinese_for("")  # the reverse dictionary is built with the rest, not in the first English question

            out: dict[str, set[str]] = {}
            for sku, e in self.entries.items():
                p = e.product
                text = " ".join(x for x in [p.name, p.series, p.category, *p.aliases] if x)
                self._name_text[sku] = normalize(text)
                out[sku] = english_words(text) | {stem(w) for w in _LATIN_WORD.findall(self._name_text[sku])}
            self._english = out
        return self._english

    def english_match(self, words: Sequence[str]) -> dict[str, float]:
        """Products an English question names in words ("the sunscreen", "small dog leash"): the share
        of the question's catalog words (weighed by rarity) each product's English words cover."""
        from knowledge.glosses import stem

        eng = self.english
        n = max(1, len(eng))
        # Each word's products: those whose names' definitions use it, or whose names say a Chinese word
        # the dictionary defines with it ("umbrella stroller": 伞 … 婴儿车 in "伞车", "婴儿推车").
        have = {
            w: {sku for sku, ws in eng.items() if w in ws} | self._said_in_names(w) for w in {stem(x) for x in words}
        }
        have = {w: skus for w, skus in have.items() if skus}
        if not have:
            return {}
        idf = {w: np.log(1 + n / len(skus)) for w, skus in have.items()}
        total = sum(idf.values())
        out: dict[str, float] = defaultdict(float)
        for w, skus in have.items():
            for sku in skus:
                out[sku] += idf[w] / total
        return {k: round(float(v), 4) for k, v in out.items()}

    def _said_in_names(self, word: str) -> set[str]:
        from knowledge.glosses import names_in

        if word not in self._reverse_hits:
            self.english  # noqa: B018 — builds the names' texts with the rest
            self._reverse_hits[word] = {sku for sku, t in self._name_text.items() if names_in(word, t)}
        return self._reverse_hits[word]

    # --- building ----------------------------------------------------------------------------
    def _category_words(self, products: Sequence[Product]) -> dict[str, str]:
        """n-grams of names/aliases/categories that (nearly) only one category uses → that category."""
        by_cat: dict[str, Counter[str]] = defaultdict(Counter)
        for p in products:
            cat = normalize(p.category or "")
            if not cat:
                continue
            grams: set[str] = set()
            for text in [p.category, p.name, p.series, *p.aliases]:
                grams |= _grams(normalize(text or ""))
            by_cat[cat].update(grams)
        total: Counter[str] = Counter()
        for c in by_cat.values():
            total.update(c)
        out: dict[str, str] = {}
        for cat, counts in by_cat.items():
            out[cat] = cat
            for g, n in counts.items():
                if n / total[g] >= 0.8 and (n >= 2 or len(g) >= 3) and g not in out:
                    out[g] = cat
        # A one-character head noun ("窝" of 宠物窝 in 窝垫): a character of the category's own name that
        # ends two or more of its products' names, and other categories' products hardly use.
        heads: dict[str, Counter[str]] = defaultdict(Counter)
        elsewhere: Counter[tuple[str, str]] = Counter()
        for p in products:
            cat = normalize(p.category or "")
            runs = [r for r in _CJK_RUN.findall(normalize(p.name)) if len(r) >= 2]  # not "S号"
            if cat and runs:  # every run's end: "碳纤维登山杖 三节外锁" ends its noun at 杖, not at 锁
                heads[cat].update({r[-1] for r in runs})
            elsewhere.update(
                {(cat, ch) for text in [p.category, p.name, p.series, *p.aliases] for ch in normalize(text or "")}
            )
        for cat, ends in heads.items():
            for ch, n in ends.items():
                mine = elsewhere[(cat, ch)]
                others = sum(v for (c, x), v in elsewhere.items() if x == ch and c != cat)
                if n >= 2 and ch in cat and mine >= 4 * others and ch not in out:
                    out[ch] = cat
        return out

    # --- reading a question --------------------------------------------------------------------
    def categories_in(self, text: str) -> dict[str, float]:
        """Categories the text refers to, by their words (longest word wins) or their pinyin."""
        hit = self._categories_memo.get(text)  # a scan of every category word, asked several times a question
        if hit is None:
            hit = self._categories_in(text)
            self._categories_memo.put(text, hit)
        return dict(hit)

    def _categories_in(self, text: str) -> dict[str, float]:
        t = normalize(text)
        out: dict[str, float] = {}
        for w, cat in self.category_words.items():
            if w in t:
                out[cat] = max(out.get(cat, 0.0), min(1.0, 0.5 + 0.2 * len(w)))
        for word in _LATIN_WORD.findall(t):
            for py, cat in self.category_pinyin.items():
                if len(word) >= 3 and (word == py or (len(word) >= 6 and word in py) or (len(py) >= 6 and py in word)):
                    out[cat] = max(out.get(cat, 0.0), 0.8)
        return out

    def variant_in(self, sku: str, text: str) -> Variant | None:
        e = self.entries.get(sku)
        if e is None:
            return None
        t = normalize(text)
        best: Variant | None = None
        for v in e.variants:
            n = normalize(v.name)
            hit = n in t or (len(n) >= 3 and any(g in t for g in _grams(n, 2, 2) if g not in e.names[0]))
            if hit and (best is None or len(n) > len(best.name)):
                best = v
        return best

    def quantity_matches(self, sku: str, qties: Sequence[Quantity]) -> tuple[int, int]:
        """(# question quantities matched by the product's name, # matched only by its specs/variants)."""
        e = self.entries[sku]
        in_name = in_spec = 0
        for q in qties:
            if q.dimension == "count" and q.value == 1:
                continue  # "充一次", "一根": an article, not a quantity that tells products apart
            if any(_same_value(q, p) for p in e.name_qty):
                in_name += 1
            elif any(_same_value(q, p) for p in e.spec_qty):
                in_spec += 1
        return in_name, in_spec

    def codes_in(self, sku: str, text: str) -> tuple[int, int]:
        """(# of the product's distinguishing codes the text says, # it does not)."""
        e = self.entries[sku]
        t = normalize(text)
        said = {c for c in e.codes if re.search(rf"(?<![a-z0-9]){re.escape(c)}(?![a-z0-9])", t)}
        return len(said), len(e.codes - said)

    def pinyin_hit(self, sku: str, text: str) -> bool:
        words = [w for w in _LATIN_WORD.findall(normalize(text)) if len(w) >= 6]
        if not words:
            return False
        e = self.entries[sku]
        if not e.pinyin:
            e.pinyin = {_pinyin(n)[0] for n in e.names if _CJK_RUN.search(n)}
        return any(w in py or py in w for w in words for py in e.pinyin if len(py) >= 6)

    def without_latin_names(self, text: str) -> str:
        """The text without the Latin-letter words of product names ("Air Pro", "K84"), which are the
        same in any language."""
        if self._latin_names is None:
            words = {w for e in self.entries.values() for n in e.names for w in re.findall(r"[a-z][a-z0-9]*", n)}
            self._latin_names = (
                re.compile(
                    r"(?<![a-z0-9])("
                    + "|".join(sorted(map(re.escape, words), key=len, reverse=True))
                    + r")(?![a-z0-9])"
                )
                if words
                else None
            )
        if self._latin_names is None:
            return text
        return self._latin_names.sub(" ", normalize(text))

    def attributes_of(self, sku: str, key: str) -> list[str]:
        return self.spec_attrs.get((sku, key), [])

    def keys_for(self, sku: str, attribute: str) -> list[str]:
        e = self.entries.get(sku)
        if e is None:
            return []
        return [k for k in e.product.specs if attribute in self.spec_attrs.get((sku, k), [])]
