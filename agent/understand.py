"""A viewer question read against the merchant's catalog: intent, product(s), variant, attribute, direction.

The intent comes from a learned classifier (agent/intent_model.py); products, variants and attributes are resolved from the catalog lexicon built at import
(knowledge/lexicon.py) and the cross-category attribute book (knowledge/data/attributes.json).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from knowledge.attributes import AttributeBook, Quantity, load_attributes, parse_quantities
from knowledge.glosses import stem
from knowledge.lexicon import CatalogLexicon, Mention
from knowledge.schema import Product, SearchHit, Variant
from knowledge.store import LoadedVersion
from knowledge.text import normalize

Direction = Literal["more", "less"]
# "A和B", "A还是B", "A vs B", "A跟B比": where a comparison's two sides meet.
_JOIN = re.compile(r"\s*(?:和|跟|与|还是|对比|相比|比起|\bvs\.?|\bversus\b|\bor\b|\band\b|/|、)\s*", re.I)
_PLURAL = re.compile(
    r"(两|几|三|这两|那两|2)\s*(款|个|种|只|台|根|条|双|件|瓶|盒|袋)|哪个|哪款|哪一款|哪种|which", re.I
)


@lru_cache(maxsize=1)
def _function_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "function_words.json").read_text("utf-8"))
    return data


def function_words() -> tuple[list[str], set[str]]:
    data = _function_data()
    return sorted(data["zh"], key=len, reverse=True), set(data["en"])


def is_question(text: str) -> bool:
    """Whether a message asks something (question words or mark), as opposed to a remark."""
    t = normalize(text)
    return any(w in t for w in _function_data()["question_zh"]) or t.rstrip().endswith("?")


def points_elsewhere(sentence: str) -> bool:
    """A sentence that sends the reader to another section ("请看《售后保障》") rather than saying the rule."""
    return any(w in sentence for w in _function_data()["pointer_zh"])


def asks_money(text: str) -> bool:
    """Whether the question says it is about money ("多少钱", "what's the price"), not just "多少"."""
    t = normalize(text)
    return any(w in t for w in _function_data()["money_words"])


def plain_comparative(text: str) -> tuple[Direction, str] | None:
    """ "哪个DHA高": the plain adjective the question ends its comparison with, and which way it wins."""
    data = _function_data()["plain_comparatives_zh"]
    t = re.sub(r"[？?。！!\s吗呢啊呀]+$", "", normalize(text))
    for d in ("more", "less"):
        for w in data[d]:
            if t.endswith(w) or t.endswith(w + "些") or t.endswith(w + "点") or t.endswith(w + "一点"):
                return ("more" if d == "more" else "less"), w
    return None


def without_grams(text: str, *names: str) -> str:
    """The text with every two-character piece of these names it says blanked ("三罐装多少" less 罐装):
    what it asks once the words naming the product or option are taken out."""
    t = normalize(text)
    for name in names:
        n = normalize(name)
        for g in {n[i : i + 2] for i in range(len(n) - 1)}:
            t = t.replace(g, " ")
    return t


def asks_how_much(text: str) -> bool:
    """ "多少", "几块", "how much" without saying of what: a value asked, which one left open."""
    return re.search(r"多少(?!钱)|几块|how much", normalize(text)) is not None


def asks_existence(text: str) -> bool:
    """A yes/no question about whether a product has a feature ("有没有背光", "支持LDAC吗")."""
    data, t = _function_data(), normalize(text)
    if any(w in t for w in data["how_much_zh"]):
        return False  # "支持多少瓦" asks for a value, not whether
    return (
        any(w in t for w in data["existence_zh"])
        or any(re.search(p, t) for p in data["existence_zh_patterns"])
        or any(w in t for w in data["existence_en"])
    )


def function_words_of(kind: str) -> list[str]:
    """One list of the function-word data (``negators_zh``, ``desire_zh``...)."""
    return list(_function_data()[kind])


def negated(text: str) -> dict[str, str]:
    """Words the viewer says they do not want, each with its negated phrase: "不用充电的头灯" →
    {"充电": "不用充电"}."""
    ws = words(text)
    neg = set(_function_data()["negators_zh"])
    return {b: a + b for a, b in zip(ws, ws[1:]) if a in neg and len(b) >= 2 and re.fullmatch(r"[\u4e00-\u9fff]+", b)}


def advises_against(clause: str) -> bool:
    """A clause of a product's own text that says it does not fit ("山里温差大、风大不建议")."""
    return any(w in clause for w in _function_data()["advise_against_zh"])


def head_category(text: str, lex: CatalogLexicon) -> str | None:
    """The kind of product the sentence is about: of the categories named, the one whose word ends last
    ("跑越野赛要能塞包里的杖" wants a 登山杖, not a 背包; "徒步背着走 椅子要最轻的" a chair). A
    Chinese noun phrase ends with its head."""
    t = normalize(text)
    best: tuple[int, int, str] | None = None
    for w, cat in lex.category_words.items():
        i = t.rfind(w)
        if i >= 0 and (best is None or (i + len(w), len(w)) > best[:2]):
            best = (i + len(w), len(w), cat)
    return best[2] if best else None


def asks_for_kind(text: str, lex: CatalogLexicon) -> bool:
    """The viewer asks for a product of a kind, not about one product: a wish ending in the kind
    ("想要不用充电的头灯") or a superlative of the kind ("椅子要最轻的", "最便宜的垫子")."""
    t = normalize(text)
    head = head_category(t, lex)
    if head is None or asks_yes_no(text):
        return False
    words_of = sorted((w for w, c in lex.category_words.items() if c == head and w in t), key=len, reverse=True)
    end = max(t.rfind(w) + len(w) for w in words_of)
    tail = re.sub(r"[\s?？!！。~～]+|[呢吧呀啊哦嘛]+$", "", t[end:])
    wish = any(w in t[: t.rfind(words_of[0])] for w in _function_data()["desire_zh"]) and len(tail) <= 1
    superlative = re.search(r"最[\u4e00-\u9fff]", t) is not None and not asks_value(t.replace("什么", ""))
    return wish or superlative


def asks_value(text: str) -> bool:
    """The question asks for a value ("几K碳布", "多大", "多少瓦")."""
    t = normalize(text)
    return any(w in t for w in _function_data()["how_much_zh"])


def asks_yes_no(text: str) -> bool:
    """A question answered yes or no ("鼠标适合左手吗", "能不能机洗", "can the litter be flushed"): it asks a
    fact of what it names, not which product to take."""
    data, t = _function_data(), text.strip().lower()
    if any(re.search(p, t) for p in data["yes_no_zh_patterns"]):
        return True
    first = re.sub(r"^[^a-z]*", "", t)
    return any(re.match(rf"{re.escape(w)}\b", first) for w in data["yes_no_en_starts"]) and not re.search(
        r"[\u4e00-\u9fff]", t
    )


@dataclass
class Parsed:
    text: str
    lang: str
    intent: str
    confidence: float = 0.0
    attributes: list[str] = field(default_factory=list)  # attribute ids asked about, best first
    direction: Direction | None = None
    products: list[Product] = field(default_factory=list)  # best first; two or more for comparisons
    variants: dict[str, Variant] = field(default_factory=dict)  # sku → the variant the viewer named
    categories: list[str] = field(default_factory=list)
    quantities: list[Quantity] = field(default_factory=list)
    named: bool = False  # the viewer named a product (wins over the product in focus)
    pair: bool = False  # "A和B…": each side named its own product — a comparison whatever the wording
    by_sound: bool = False  # the attribute was read from pinyin or a homophone typo, not from its words
    mentions: list[Mention] = field(default_factory=list)
    # (sku, spec key) pairs the viewer spelled out, whole or by its head ("透湿多少" → 透湿指数), product
    # names and quantities aside: the spec asked about, whether or not the attribute book knows it.
    keys: list[tuple[str, str]] = field(default_factory=list)

    def keys_of(self, sku: str) -> list[str]:
        return [k for s, k in self.keys if s == sku]


def spelled_keys(bare: str, lex: CatalogLexicon) -> list[tuple[str, str]]:
    """(sku, key) for every spec key written in ``bare`` (normalised, names and quantities blanked):
    the whole key, or the first two characters of a longer Chinese key when they are not a function
    word ("保温多久" → 保温效果, "透湿多少" → 透湿指数)."""
    fn = set(function_words()[0])
    out: list[tuple[str, str]] = []
    for e in lex.entries.values():
        for k in e.product.specs:
            nk = normalize(k)
            if len(nk) >= 2 and nk in bare:
                out.append((e.product.sku, k))
            elif len(nk) >= 3 and re.fullmatch(r"[\u4e00-\u9fff]{2}", nk[:2]) and nk[:2] not in fn and nk[:2] in bare:
                out.append((e.product.sku, k))
    return out


@lru_cache(maxsize=1)
def _segmenter() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    # The attribute book's everyday names are words ("包邮", "续航"): "多少钱包邮" is 多少钱 + 包邮, not 钱包.
    for a in load_attributes().attributes:
        for n in a.names_zh:
            if len(n) == 2 and re.fullmatch(r"[\u4e00-\u9fff]+", n):
                jieba.add_word(n, freq=2000)
    return jieba


_LEADING = set("能可会要想还都也就再")
_TRAILING = set("啥吗呢么吧呀哦嘛了的啊")


def words(text: str) -> list[str]:
    """Chinese words (jieba's dictionary segmentation) and Latin words of a text, normalised."""
    return [w for w in (x.strip() for x in _segmenter().lcut(normalize(text))) if w]


def _article(q: Quantity) -> bool:
    """ "一次", "一根": one of something is grammar, not a quantity that tells products apart."""
    return q.dimension == "count" and q.value == 1


def residual(text: str, lex: CatalogLexicon, products: Sequence[Product] = ()) -> list[str]:
    """The words left once product names, category words, numbers and function words are removed:
    what the viewer asks about ("衣服开线了怎么办" → 开线)."""
    names = " ".join(normalize(n or "") for p in products for n in [p.name, p.series, *p.aliases, p.sku, p.category])
    zh, en = function_words()
    zh_set = set(zh)
    english = (
        set().union(*(lex.english.get(p.sku, set()) for p in products))
        if products and re.search(r"[a-z]{3}", normalize(text))
        else set()
    )
    for qt in sorted((x for x in parse_quantities(text) if not _article(x)), key=lambda x: -x.span[0]):
        # "7天无理由": 7天 is not a topic (but "充一次电" keeps its 一次)
        text = text[: qt.span[0]] + " " + text[qt.span[1] :]
    # Product and category words go before segmenting, so "充电宝多大" leaves "多大", not "宝多大".
    text = normalize(text)
    # With the products known, only their own kind's words name them: "提篮能卡在推车上吗" asks about 推车.
    kinds = {normalize(p.category or "") for p in products}
    cut = sorted(
        {w for w, c in lex.category_words.items() if len(w) >= 2 and w in text and (not products or c in kinds)}
        | {
            x
            for p in products
            for n in [p.name, p.series, *p.aliases, *(v.name for v in p.variant_list())]
            for x in normalize(n or "").split()
            if len(x) >= 2 and x in text
        },
        key=len,
        reverse=True,
    )
    for w in cut:
        text = text.replace(w, " ")
    out: list[str] = []
    for w in _split_unknown(words(text), lex):
        while len(w) >= 2 and w[0] in _LEADING and re.fullmatch(r"[\u4e00-\u9fff]+", w):
            w = w[1:]  # "能发", "还能退": the modal verb is not the topic
        while len(w) >= 2 and w[-1] in _TRAILING and re.fullmatch(r"[\u4e00-\u9fff]+", w):
            w = w[:-1]  # "发啥", "好用吗": the question particle is not the topic
        if re.fullmatch(r"[\d.%]+|[^\w]+", w) or w in zh_set or w in en:
            continue
        if re.fullmatch(r"[\u4e00-\u9fff]+", w):
            if (
                len(w) < 2
                or (names and w in names)
                or (w in lex.category_words and (not products or lex.category_words[w] in kinds))
            ):
                continue
        elif len(w) < 2 or (names and w in names.split()) or (english and stem(w) in english):
            continue  # "cat litter 豆腐砂多少": the English names the product, it is not the question
        out.append(w)
    return out


def _split_unknown(ws: list[str], lex: CatalogLexicon) -> list[str]:
    """A word the segmenter glued to its neighbour ("泰迪用") is cut where the catalog's own words are."""
    vocab = lex.vocabulary
    out: list[str] = []
    for w in ws:
        if len(w) >= 3 and re.fullmatch(r"[\u4e00-\u9fff]+", w) and w not in vocab:
            if w[:-1] in vocab:  # a catalog word with a verb or particle glued on: 泰迪 + 用
                out += [w[:-1], w[-1]]
                continue
        out.append(w)
    return _join_singles(out, vocab)


def _join_singles(ws: list[str], vocab: set[str]) -> list[str]:
    """Single characters the segmenter left apart ("夜" "爬") are one word when the catalog writes them
    together ("适合夜爬"): the longest run of 2-4 of them found in the catalog's own text."""
    out: list[str] = []
    i = 0
    while i < len(ws):
        n = 0
        for m in (4, 3, 2):
            run = ws[i : i + m]
            if len(run) == m and all(len(x) == 1 and "\u4e00" <= x <= "\u9fff" for x in run) and "".join(run) in vocab:
                n = m
                break
        out.append("".join(ws[i : i + n]) if n else ws[i])
        i += n or 1
    return out


def _strip_names(text: str, products: Sequence[Product], shortest: int = 2, book: AttributeBook | None = None) -> str:
    """Blank out the parts of the text that are the named products' own names ("降噪耳机" in
    "降噪耳机和lite哪个续航长" names the product, it is not the attribute asked about). A name's word
    that an attribute phrase runs across is the question's ("实木椅是什么木头的": 什么木头, though an alias is
    木头椅子)."""
    grams = {g for p in products for n in [p.name, p.series, *p.aliases] for g in _ngrams(normalize(n or ""))}
    t = normalize(text)
    spans = book.phrase_spans(t) if book is not None else []

    def crossed(i: int, j: int) -> bool:
        return any(s < j and e > i and (s < i or e > j) and not (s <= i and e >= j) for s, e in spans)

    keep = [True] * len(t)
    used: set[str] = set()  # a name's word said once names it; said again ("保温壶保温多久") it is the topic
    for n in (4, 3, 2)[: 5 - shortest]:
        for i in range(len(t) - n + 1):
            g = t[i : i + n]
            if g in grams and (n >= 3 or g not in used) and any(keep[i : i + n]) and not crossed(i, i + n):
                keep[i : i + n] = [False] * n
                used |= {g[a:b] for a in range(n) for b in range(a + 2, n + 1)}
    return "".join(ch if k else " " for ch, k in zip(t, keep))


def name_grams_exact(text: str) -> set[str]:
    """The two- to four-character Chinese windows of a name."""
    return _ngrams(text)


def _ngrams(text: str) -> set[str]:
    out: set[str] = set()
    for run in re.findall(r"[\u4e00-\u9fff]+", text):
        for n in (2, 3, 4):
            out.update(run[i : i + n] for i in range(len(run) - n + 1))
    return out


def _build_pinyin_index(book: AttributeBook) -> tuple[dict[tuple[str, ...], str], dict[str, str]]:
    """Attribute names by their syllables (homophone typos: "包油吗" is "包邮吗") and by their initials,
    also with the last syllable spelt out ("byma", "fsmkd"): how danmaku abbreviate."""
    from pypinyin import lazy_pinyin

    full: dict[tuple[str, ...], str] = {}
    initials: dict[str, str] = {}
    for a in book.attributes:
        for n in a.names_zh:
            if len(n) < 3 or not re.fullmatch(r"[\u4e00-\u9fff]+", n):
                continue
            syl = tuple(lazy_pinyin(n))
            full.setdefault(syl, a.id)
            ini = "".join(x[0] for x in syl)
            initials.setdefault(ini, a.id)
            initials.setdefault(ini[:-1] + syl[-1], a.id)
    return full, initials


def pinyin_attributes(text: str, lex: CatalogLexicon) -> list[str]:
    """Attributes a question names only by sound (three syllables or more) or by pinyin initials."""
    from pypinyin import lazy_pinyin

    if lex.pinyin_attributes is None:
        lex.pinyin_attributes = _build_pinyin_index(lex.book)
    full, initials = lex.pinyin_attributes
    out: list[str] = []
    t = normalize(text)
    for run in re.findall(r"[\u4e00-\u9fff]{3,}", t):
        syl = tuple(lazy_pinyin(run))
        for n in range(min(len(syl), 6), 2, -1):
            for i in range(len(syl) - n + 1):
                a = full.get(syl[i : i + n])
                if a is not None and a not in out:
                    out.append(a)
    for word in re.findall(r"(?<![a-z])[a-z]{3,8}(?![a-z])", t):
        if word in initials and initials[word] not in out:
            out.append(initials[word])
    return out


@lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    """Every toneless pinyin syllable (from pypinyin's own dictionary)."""
    from pypinyin import Style
    from pypinyin.constants import PINYIN_DICT
    from pypinyin.style import convert

    return frozenset(
        convert(x, style=Style.NORMAL, strict=False) for v in PINYIN_DICT.values() for x in v.split(",") if x
    )


def is_pinyin(word: str) -> bool:
    """A Latin word that spells two or more pinyin syllables ("chongdianbao"), i.e. Chinese typed
    without the IME, not English."""
    w = word.lower()
    if len(w) < 5 or not w.isalpha():
        return False
    syl = _syllables()
    ok = [0] + [-1] * len(w)  # ok[i]: fewest syllables spelling w[:i], -1 if none
    for i in range(1, len(w) + 1):
        for j in range(max(0, i - 6), i):
            if ok[j] >= 0 and w[j:i] in syl and (ok[i] < 0 or ok[j] + 1 < ok[i]):
                ok[i] = ok[j] + 1
    return ok[len(w)] >= 2


def name_grams(name: str) -> set[str]:
    return _ngrams(normalize(name))


def _hit_scores(hits: list[SearchHit]) -> dict[str, float]:
    """Dense+BM25 retrieval's opinion of which product is meant: 1.0 for the first, decaying."""
    out: dict[str, float] = {}
    for h in hits:
        if h.sku and h.sku not in out:
            out[h.sku] = 0.7 ** len(out)
    return out


DENSE_NAME_MIN = 0.38  # question ↔ product summary cosine that counts as naming it (English over Chinese)
DENSE_NAME_MARGIN = 0.05


def dense_names(snap: LoadedVersion, qvec: np.ndarray | None) -> dict[str, float]:
    """The product a question names by meaning when no word of its name is in it ("the sea salt almond"
    over a Chinese catalog): its summary is clearly the closest."""
    if qvec is None or not snap.catalog.products:
        return {}
    skus = [p.sku for p in snap.catalog.products]
    sims = snap.index.similarity(qvec, [f"{s}:summary" for s in skus])
    ranked = sorted(zip(sims, skus), reverse=True)
    top, sku = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    return {sku: top} if top >= DENSE_NAME_MIN and top - second >= DENSE_NAME_MARGIN else {}


_COMPARING = re.compile(r"比|哪个|哪款|哪一|区别|差多少|差几|不同|\bwhich\b|\bvs\b|versus|better|differ")


@lru_cache(maxsize=1)
def _english_grammar() -> frozenset[str]:
    """English words that say nothing of which product ("how much is the …")."""
    _, en = function_words()
    return frozenset(en | {"how", "what", "which", "much", "many", "one", "ones", "it", "this", "that", "price"})


def _attribute_phrase_words(text: str, book: AttributeBook) -> set[str]:
    """Words of the attribute book's English phrases of two or more words found in the text
    ("battery life", "how long"): what is asked, even where the product's English shares a word."""
    t = f" {normalize(text)} "
    out: set[str] = set()
    for a in book.attributes:
        for n in a.names_en:
            ws = n.lower().split()
            if len(ws) >= 2 and f" {' '.join(ws)}" in t:
                out |= {stem(w) for w in ws}
    return out


ENGLISH_NAME_MIN = 0.5  # share of the question's catalog words a product's English words must cover


def english_names(text: str, lex: CatalogLexicon) -> dict[str, float]:
    """Products an English question names in English over a Chinese catalog ("the small dog leash"),
    through the dictionary's English for their names: those within reach of the best one."""
    t = lex.without_latin_names(text)
    asked = _attribute_phrase_words(t, lex.book)  # "battery life?" asks, it names no product
    words = [w for w in re.findall(r"[a-z]{3,}", normalize(t)) if w not in _english_grammar() and stem(w) not in asked]
    if not words:
        return {}
    got = lex.english_match(words)
    if not got:
        return {}
    top = max(got.values())
    if top < ENGLISH_NAME_MIN:
        return {}
    return {k: v for k, v in got.items() if v >= 0.8 * top}


def score_products(
    text: str,
    snap: LoadedVersion,
    lex: CatalogLexicon,
    hits: list[SearchHit],
    prefer_category: str | None = None,
    dense: dict[str, float] | None = None,
    near: set[str] | None = None,
) -> list[Mention]:
    """Every product the text may refer to, scored from names, codes, quantities, variants, category
    words, pinyin and retrieval. Highest first; only products with some evidence."""
    named = snap.index.matcher.match(text)
    english = english_names(text, lex)
    cats = lex.categories_in(text)
    qties = parse_quantities(text, lex.book)
    retrieved = _hit_scores(hits)
    verbatim = _verbatim_aliases(text, lex)
    out: list[Mention] = []
    for sku, e in lex.entries.items():
        why: list[str] = []
        s = 0.0
        if (v := named.get(sku, 0.0)) > 0:
            s += v
            why.append(f"name:{v:.2f}")
        if sku in verbatim:  # "1段奶粉" is one product's own alias, word for word: it outranks "1段羊奶粉"
            s += 0.7
            why.append("alias")
        said, unsaid = lex.codes_in(sku, text)
        if said:
            s += 0.45 * said
            why.append(f"code:{said}")
        in_name, in_spec = lex.quantity_matches(sku, qties)
        if in_name or in_spec:
            s += 0.6 * in_name + 0.25 * in_spec
            why.append(f"qty:{in_name}/{in_spec}")
        if lex.variant_in(sku, text) is not None:
            s += 0.5
            why.append("variant")
        if e.category and e.category in cats:
            s += 0.5 * cats[e.category]
            why.append("category")
        elif prefer_category and e.category == prefer_category:
            s += 0.3
        if near and s > 0:
            # A follow-up's words fit several siblings: the one sharing most of the focus product's name
            # ("A系列小号" → "那大号呢" is the A series' big size).
            g = name_grams(e.product.name)
            s += 0.5 * len(g & near) / max(1, len(g | near))
        if lex.pinyin_hit(sku, text):
            s += 0.6
            why.append("pinyin")
        if dense and sku in dense:
            s += 0.6
            why.append(f"dense:{dense[sku]:.2f}")
        if (gl := english.get(sku, 0.0)) > 0:
            s += 0.7 * gl
            why.append(f"gloss:{gl:.2f}")
        if s <= 0 and sku not in retrieved:
            continue
        s += 0.35 * retrieved.get(sku, 0.0)
        s -= 0.06 * unsaid  # the plain model over the Pro when the viewer says neither
        if cats and e.category and e.category not in cats:
            s -= 0.3  # the viewer said which kind of product
        out.append(Mention(sku, round(s, 4), why))
    out.sort(key=lambda m: -m.score)
    return out


def _verbatim_aliases(text: str, lex: CatalogLexicon) -> set[str]:
    """Products whose full name or an alias the text says word for word, the longest such only; an
    alias two products share names neither."""
    t = normalize(text)
    said: dict[str, list[str]] = {}
    for sku, e in lex.entries.items():
        for n in {normalize(x) for x in [e.product.name, *e.product.aliases] if x}:
            if len(n) >= 2 and n in t:
                said.setdefault(n, []).append(sku)
    own = {n: skus for n, skus in said.items() if len(skus) == 1}
    if not own:
        return set()
    longest = max(len(n) for n in own)
    return {skus[0] for n, skus in own.items() if len(n) == longest}


def has_evidence(m: Mention) -> bool:
    """Something beyond the kind of product: a name (not one shared character), code, quantity,
    variant, pinyin or a clear meaning match."""
    for w in m.why:
        if w.startswith("name:"):
            if float(w[5:]) >= 0.3:
                return True
        elif not w.startswith("category"):
            return True
    return False


def resolve(
    text: str,
    snap: LoadedVersion,
    lex: CatalogLexicon,
    hits: list[SearchHit],
    intent: str,
    prefer_category: str | None = None,
    dense: dict[str, float] | None = None,
    near: set[str] | None = None,
) -> tuple[list[Product], bool, list[Mention], bool]:
    """(products best first, whether the viewer named one, the scored mentions, whether two sides of a
    comparison each named a product)."""
    ms = score_products(text, snap, lex, hits, prefer_category, dense, near)
    named = bool(ms) and has_evidence(ms[0]) and ms[0].score >= 0.5
    if not named and ms and "category" in ms[0].why:
        # "推车能坐多重的": a kind the catalog has one product of names that product
        cat = lex.entries[ms[0].sku].category
        named = sum(1 for e in lex.entries.values() if e.category == cat) == 1
    if not named and ms and not re.search(r"[\u4e00-\u9fff]", text) and hits and hits[0].sku == ms[0].sku:
        # English over a Chinese catalog: words cannot match, so retrieval's first product is the reading —
        # if the question has a noun of its own ("the sunscreen"), not just "how much is it?".
        attr_words = {w for a in lex.book.attributes for n in a.names_en for w in n.lower().split()}
        nouns = [w for w in residual(text, lex) if w not in attr_words]
        named = bool(nouns) and ms[0].score >= 0.3
    pair = _sides(text, snap, lex, hits, prefer_category, 0.4 if intent == "compare" else 0.6)
    if len(pair) >= 2 and intent in ("compare", "price", "detail", "stock", "suitability", "recommend"):
        return pair, True, ms, True
    if intent == "compare":
        # the other side need not have said an alias word for word ("1段牛奶粉和羊奶粉")
        ref = ms[0].score - (0.7 if ms and "alias" in ms[0].why else 0.0) if ms else 0.0
        strong = [m for m in ms if m.score >= 0.5 and m.score >= 0.45 * ref]
        prods = [p for m in strong if (p := snap.product(m.sku)) is not None]
        return prods[:4], named, ms, False
    prods = [p for m in ms[:4] if m.score >= 0.25 and (p := snap.product(m.sku)) is not None]
    return prods, named, ms, False


def _sides(
    text: str, snap: LoadedVersion, lex: CatalogLexicon, hits: list[SearchHit], prefer: str | None, floor: float
) -> list[Product]:
    """ "A和B…" / "A还是B": the best product of each side, the left side read in the right side's
    category ("一万和两万的充电宝" — the 一万 is a power bank too). Empty unless each side names one."""
    sides = [s for s in _JOIN.split(text) if s and s.strip()]
    if len(sides) < 2:
        return []
    picked: list[Product] = []
    right = score_products(sides[-1], snap, lex, hits, prefer)
    right = [m for m in right if has_evidence(m)]
    cat = lex.entries[right[0].sku].category if right else prefer
    for i, side in enumerate(sides):
        cand = right if i == len(sides) - 1 else score_products(side, snap, lex, hits, cat)
        cand = [m for m in cand if has_evidence(m) and m.score >= floor]
        for m in cand:
            p = snap.product(m.sku)
            if p is not None and p not in picked:
                picked.append(p)
                break
        else:
            return []
    return picked


def parse(
    text: str,
    lang: str,
    intent: str,
    confidence: float,
    snap: LoadedVersion,
    lex: CatalogLexicon,
    hits: list[SearchHit],
    model_direction: Direction | None = None,
    prefer_category: str | None = None,
    qvec: np.ndarray | None = None,
    focus_name: str = "",
) -> Parsed:
    book = lex.book
    quantities = parse_quantities(text, book)
    # "两万毫安的多少钱": a quantity with its unit names the product, it is not what is asked about.
    bare = text
    for qt in sorted((x for x in quantities if x.unit and not _article(x)), key=lambda x: -x.span[0]):
        bare = bare[: qt.span[0]] + " " + bare[qt.span[1] :]
    prods, named, ms, pair = resolve(
        text,
        snap,
        lex,
        hits,
        intent,
        prefer_category,
        dense_names(snap, qvec),
        name_grams(focus_name) if focus_name else None,
    )
    comparing = intent == "compare" and _COMPARING.search(normalize(text))
    which = relative_size(text) if not pair and not comparing else None
    name_spelled = bool(
        ms
        and any(w.startswith("gloss:") for w in ms[0].why)
        or ms
        and any(w.startswith(("code:", "qty:")) or (w.startswith("name:") and float(w[5:]) >= 0.8) for w in ms[0].why)
    )
    if which is not None and not name_spelled:
        # "那大号呢", "大包的多少钱": the biggest / smallest of the kind named or in focus
        cats = lex.categories_in(text)
        anchor = next((p for p in prods if p.category in cats), None) if cats else None
        if anchor is None and focus_name:
            anchor = next((p for p in snap.catalog.products if p.name == focus_name), None)
        if anchor is not None and lex.variant_in(anchor.sku, text) is None:
            pick = by_size(anchor, which, snap, lex)
            if pick is not None:
                prods = [pick] + [p for p in prods if p.sku != pick.sku]
                named = True
    # The names said: the two sides of "A和B", else the one product named ("钛杯保温吗" keeps 保温 though
    # the 保温杯 is the next candidate).
    said = (prods[:2] if pair else prods[:1]) if named else []
    bare = _strip_names(bare, said, book=book)
    if named and prods and re.search(r"[a-z]{3}", normalize(bare)):
        # "the large one", "small dog leash": English words that name the product are not the attribute
        own = lex.english.get(prods[0].sku, set()) - _attribute_phrase_words(bare, book)
        bare = re.sub(r"[a-z]{3,}", lambda m: " " if stem(m.group(0)) in own else m.group(0), normalize(bare))
    attrs = [a for a, _ in book.mentioned(bare)]
    by_sound = not attrs and bool(attrs := pinyin_attributes(bare, lex))
    # Store topics may carry a number ("7天无理由", "满99包邮"): read them on the whole text.
    attrs += [
        a for a, _ in book.mentioned(text) if a not in attrs and (x := book.get(a)) is not None and x.scope == "store"
    ]
    directions = book.direction(bare)
    direction: Direction | None = model_direction
    if directions:
        a, direction = directions[0]
        if a not in attrs:
            attrs.insert(0, a)
    # Spec keys the viewer spelled out ("防水等级", "蓝牙版本") name attributes the book may not know;
    # read on the text without the product's own name ("充电头灯" names a lamp, it asks nothing).
    # Only runs of three or more name characters count as the name here: "裙长" stays in "碎花裙裙长多少".
    t = _strip_names(text, said, shortest=3)
    spelled = spelled_keys(t, lex)
    for k in sorted({k for _, k in spelled if normalize(k) in t}, key=len, reverse=True):
        for e in lex.entries.values():
            for a in lex.attributes_of(e.product.sku, k):
                if a not in attrs:
                    attrs.append(a)
    variants = {p.sku: v for p in prods if (v := lex.variant_in(p.sku, text)) is not None}
    return Parsed(
        text=text,
        lang=lang,
        intent=intent,
        confidence=confidence,
        attributes=attrs,
        direction=direction,
        products=prods,
        variants=variants,
        categories=list(lex.categories_in(text)),
        quantities=quantities,
        named=named,
        pair=pair,
        by_sound=by_sound,
        mentions=ms,
        keys=spelled,
    )


@lru_cache(maxsize=1)
def _relative() -> tuple[dict[str, re.Pattern[str]], dict[str, int]]:
    data = _function_data()["relative_size"]
    pats = {k: re.compile("|".join(data[k]), re.I) for k in ("more", "less", "mid")}
    order = {code: i for i, group in enumerate(data["size_order"]) for code in group.split("|")}
    return pats, order


def relative_size(text: str) -> str | None:
    """ "more" / "less" / "mid" when the text names a sibling by its size ("大号呢", "小包的", "the large one")."""
    pats, _ = _relative()
    t = normalize(text)
    for k in ("more", "less", "mid"):
        if pats[k].search(t):
            return k
    return None


def size_of(p: Product, lex: CatalogLexicon) -> float | None:
    """Where a product stands among its siblings by size: its size code (S < M < L) or the first
    quantity with a unit its name states."""
    _, order = _relative()
    for tok in re.findall(r"(?<![a-z0-9])([a-z0-9]{1,4})(?:号|码)?(?![a-z0-9])", normalize(p.name)):
        if tok in order:
            return float(order[tok])
    e = lex.entries.get(p.sku)
    qs = [q for q in (e.name_qty if e else []) if q.dimension]
    return qs[0].base if qs else None


def by_size(anchor: Product, which: str, snap: LoadedVersion, lex: CatalogLexicon) -> Product | None:
    """The sibling of ``anchor`` (same category, same series where several share it) that is the
    biggest / smallest / middle one by size, when they can be ordered."""
    sibs = [p for p in snap.catalog.products if p.category == anchor.category]
    if anchor.series and sum(1 for p in sibs if p.series == anchor.series) >= 2:
        sibs = [p for p in sibs if p.series == anchor.series]
    sized = [(s, p) for p in sibs if (s := size_of(p, lex)) is not None]
    if len(sized) < 2 or len({s for s, _ in sized}) < 2:
        return None
    sized.sort(key=lambda x: x[0])
    if which == "more":
        return sized[-1][1]
    if which == "less":
        return sized[0][1]
    return sized[len(sized) // 2][1] if len(sized) >= 3 else None


_TWO = re.compile(r"(?:两|2|这两|那两|俩)\s*(?:款|个|种|只|台|根|条|双|件|瓶|盒|袋|把|顶|套)|俩")


def counted_two(text: str) -> bool:
    """ "两款水管", "这两个": the viewer counts two products of a kind."""
    return bool(_TWO.search(normalize(text)))


def comparing(text: str) -> bool:
    """Whether the text sets things against each other ("比", "哪个", "区别", "which", "vs")."""
    return bool(_COMPARING.search(normalize(text)))


def plural(text: str) -> bool:
    return bool(_PLURAL.search(text))
