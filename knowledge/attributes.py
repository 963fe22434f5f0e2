"""Cross-category attribute vocabulary and a quantity parser.

What viewers ask about (续航, 尺码, 包邮, "is it waterproof") and what merchants write in spec sheets
("最大输出: 65W", "净含量: 500g") is the same for every shop, whatever it sells. That knowledge lives in
``knowledge/data/attributes.json`` (units, and ~100 attribute concepts with their Chinese/English
phrasings, spec-key patterns, unit dimensions and comparative words); this module only loads and
applies it, so covering a new category means editing data, not code.

Everything is compared NFKC-folded and lower-cased (ＷＩＦＩ = wifi, ℃ = °c); the longest phrase wins
("续航时间" is battery life, not a stray "时间").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, model_validator

Direction = Literal["more", "less"]
Kind = Literal["name", "key", "more", "less"]

DATA_PATH = Path(__file__).resolve().parent / "data" / "attributes.json"


class Unit(BaseModel):
    dimension: str
    symbol: str
    factor: float  # value × factor = value in the dimension's base unit
    aliases: list[str] = Field(default_factory=list)


class Attribute(BaseModel):
    id: str
    scope: Literal["product", "store"]
    names_zh: list[str] = Field(default_factory=list)
    names_en: list[str] = Field(default_factory=list)
    key_patterns: list[str] = Field(default_factory=list)
    dimensions: list[str] = Field(default_factory=list)
    more_words: list[str] = Field(default_factory=list)
    less_words: list[str] = Field(default_factory=list)
    better: Direction | None = None
    # Whom, when or where a product suits (age, skin type, season, scenario…): a viewer who states one
    # states a need, not a question about one product's facts.
    audience: bool = False


@dataclass(frozen=True, slots=True)
class Quantity:
    value: float  # as written, in `unit` (一米五 → 1.5)
    unit: str  # unit symbol, "" for a bare number
    dimension: str  # "" for a bare number
    base: float  # value in the dimension's base unit (1.5 m → 1500 mm); a bare number's own value
    span: tuple[int, int]  # offsets in the original text
    text: str  # the original text at span


def normalize(text: str) -> str:
    """NFKC + lower-case + single spaces: the form data and questions are compared in."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def _is_word(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _strength(term: str) -> float:
    """How much a phrase alone says: a CJK character carries about as much as three Latin letters."""
    size = sum(1.0 if not ch.isascii() else 1 / 3 for ch in term if not ch.isspace())
    return min(1.0, 0.3 + 0.2 * size)


_KIND_WEIGHT: dict[Kind, float] = {"name": 1.0, "key": 0.9, "more": 0.9, "less": 0.9}
_RANK: dict[Kind, int] = {"key": 0, "name": 1, "more": 2, "less": 2}
# Clause breaks: a comparative only borrows an attribute named in its own clause.
_CLAUSE = re.compile(r"[,.!?;。，！？；、\n]|还是|\bor\b")


def _index(terms: Iterable[str]) -> dict[str, list[str]]:
    by_first: dict[str, list[str]] = {}
    for t in sorted(set(terms), key=len, reverse=True):
        by_first.setdefault(t[0], []).append(t)
    return by_first


def _scan(text: str, by_first: dict[str, list[str]]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, term) hits, longest first. Latin terms need word boundaries and
    also match their plural ("port" → "ports")."""
    found: list[tuple[int, int, str]] = []
    n = len(text)
    for i, ch in enumerate(text):
        for term in by_first.get(ch, ()):
            if not text.startswith(term, i) or (_is_word(term[0]) and i > 0 and _is_word(text[i - 1])):
                continue
            end = i + len(term)
            if _is_word(term[-1]):
                for suffix in ("es", "s") if _is_letter(term[-1]) else ():
                    stop = end + len(suffix)
                    if text.startswith(suffix, end) and not (stop < n and _is_word(text[stop])):
                        end = stop
                        break
                if end < n and _is_word(text[end]):
                    continue
            found.append((i, end, term))
    found.sort(key=lambda h: (h[0] - h[1], h[0]))
    taken = bytearray(n)
    chosen: list[tuple[int, int, str]] = []
    for start, end, term in found:
        if not any(taken[start:end]):
            taken[start:end] = b"\x01" * (end - start)
            chosen.append((start, end, term))
    return sorted(chosen)


def _ranked(scores: dict[str, tuple[float, int]]) -> list[tuple[str, float]]:
    """(id, strength) best first; ties keep text order."""
    return [(a, round(p, 3)) for a, (p, _) in sorted(scores.items(), key=lambda kv: (-kv[1][0], kv[1][1]))]


class AttributeBook(BaseModel):
    units: list[Unit]
    attributes: list[Attribute]
    # "哪个轻", "哪款便宜": a bare adjective after a which-frame compares like its "更" form does.
    comparison_frames: list[str] = Field(default_factory=list)

    _by_id: dict[str, Attribute] = PrivateAttr(default_factory=dict)
    _order: dict[str, int] = PrivateAttr(default_factory=dict)
    _owners: dict[str, dict[str, Kind]] = PrivateAttr(default_factory=dict)  # term → {attr id: kind}
    _terms: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    _key_owners: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    _keys: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    _aliases: dict[str, list[tuple[str, Unit]]] = PrivateAttr(default_factory=dict)
    _parser: Any = PrivateAttr(default=None)  # the _Parser for these units, built on first use
    _asks: Any = PrivateAttr(default=None)  # interrogative → dimensions (agent.fact_ranker), on first use

    @model_validator(mode="after")
    def _consistent(self) -> AttributeBook:
        ids = [a.id for a in self.attributes]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate attribute ids: {sorted({i for i in ids if ids.count(i) > 1})}")
        dims = {u.dimension for u in self.units}
        for a in self.attributes:
            if unknown := set(a.dimensions) - dims:
                raise ValueError(f"{a.id}: unknown dimensions {sorted(unknown)}")
        seen: dict[str, Unit] = {}
        for u in self.units:
            for alias in {normalize(x) for x in [u.symbol, *u.aliases]}:
                if seen.setdefault(alias, u) is not u:
                    raise ValueError(f"unit alias {alias!r} is both {seen[alias].symbol} and {u.symbol}")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._by_id = {a.id: a for a in self.attributes}
        self._order = {a.id: i for i, a in enumerate(self.attributes)}
        owners: dict[str, dict[str, Kind]] = {}

        def own(term: str, attr: str, kind: Kind) -> None:
            mine = owners.setdefault(normalize(term), {})
            # A phrase listed twice for one attribute keeps its most telling kind: a comparative > name > key.
            if attr not in mine or _RANK[kind] > _RANK[mine[attr]]:
                mine[attr] = kind

        for a in self.attributes:
            for word in [*a.more_words, *a.less_words]:
                kind: Kind = "more" if word in a.more_words else "less"
                own(word, a.id, kind)
                if word.startswith("更"):  # 更轻 → also 最轻 (the superlative picks the same way), 哪个轻
                    own("最" + word[1:], a.id, kind)
                    for frame in self.comparison_frames:
                        own(frame + word[1:], a.id, kind)
                        own(frame + "比较" + word[1:], a.id, kind)
            for word in [*a.names_zh, *a.names_en]:
                own(word, a.id, "name")
            for word in a.names_zh:
                # "今天能发吗" is also said inside a longer question without its particle ("几点前拍今天能发")
                bare = word[:-1] if word.endswith(("吗", "呢")) else word
                if bare != word and len(bare) >= 3 and not bare.endswith("的"):  # "充电的" names nothing
                    own(bare, a.id, "name")
            for word in a.key_patterns:
                own(word, a.id, "key")
        self._owners = owners
        self._terms = _index(owners)
        key_owners: dict[str, list[str]] = {}
        for a in self.attributes:
            for word in a.key_patterns:
                ids = key_owners.setdefault(normalize(word), [])
                if a.id not in ids:
                    ids.append(a.id)
        self._key_owners = key_owners
        self._keys = _index(key_owners)
        aliases: dict[str, list[tuple[str, Unit]]] = {}
        for u in self.units:
            for alias in {normalize(x) for x in [u.symbol, *u.aliases]}:
                aliases.setdefault(alias[0], []).append((alias, u))
        for group in aliases.values():
            group.sort(key=lambda au: len(au[0]), reverse=True)
        self._aliases = aliases

    # --- attributes ------------------------------------------------------------------------------
    def get(self, id: str) -> Attribute | None:
        return self._by_id.get(id)

    def mentioned(self, text: str) -> list[tuple[str, float]]:
        """Attribute ids the text asks about, strength in (0, 1], best first."""
        scores: dict[str, tuple[float, int]] = {}
        for pos, attr, s, _ in self._resolve(text):
            p, first = scores.get(attr, (0.0, pos))
            scores[attr] = (1 - (1 - p) * (1 - s), min(first, pos))
        return _ranked(scores)

    def phrase_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) in ``normalize(text)`` of every attribute phrase found (names, comparatives)."""
        return [(start, end) for start, end, _ in _scan(normalize(text), self._terms)]

    def direction(self, text: str) -> list[tuple[str, Direction]]:
        """Comparatives in the text as (attribute id, "more" | "less"), in text order."""
        out: list[tuple[str, Direction]] = []
        for _, attr, _, d in self._resolve(text):
            if d is not None and (attr, d) not in out:
                out.append((attr, d))
        return out

    def for_spec(self, key: str, value: str) -> list[str]:
        """Attribute ids a merchant's spec (key, value) is about, best first.

        The key decides ("面料: 棉95%" is material whatever the 95% is); when the key names several
        ("容量"), the unit of the value picks among them (10000mAh → battery, 50ml → volume); when the
        key names none, the unit alone decides (198g → weight first).
        """
        k = normalize(key)
        scores: dict[str, tuple[float, int]] = {}
        for start, _, term in _scan(k, self._keys):
            ids = self._key_owners[term]
            for a in ids:
                p, first = scores.get(a, (0.0, start))
                scores[a] = (1 - (1 - p) * (1 - _strength(term) / len(ids)), min(first, start))
        if not scores:  # a key nobody listed may still be phrased like a question ("多重")
            for a, s in self.mentioned(key):
                scores[a] = (s, 0)
        by_key = [a for a, _ in _ranked(scores)]
        # A rate ("5000g/m²/24h", "2L/min") is not a quantity of its first unit's dimension.
        dims = list(
            dict.fromkeys(
                q.dimension
                for q in parse_quantities(value, self)
                if q.dimension and value[q.span[1] : q.span[1] + 1] not in ("/", "每")
            )
        )
        confirmed = [a for a in by_key if set(self._by_id[a].dimensions) & set(dims)]
        if confirmed or by_key:
            return confirmed or by_key
        by_dim: list[str] = []
        for d in dims:
            # by its unit alone a spec is a product attribute: "搭建时间: 15分钟" is no returns window
            claim = [a for a in self.attributes if d in a.dimensions and a.id not in by_dim and a.scope == "product"]
            claim.sort(key=lambda a: (a.dimensions.index(d), self._order[a.id]))
            by_dim.extend(a.id for a in claim)
        return by_dim

    def _numeric(self, attr: str) -> bool:
        a = self._by_id[attr]
        return bool(a.dimensions) or a.better is not None

    def _resolve(self, text: str) -> list[tuple[int, str, float, Direction | None]]:
        """(position, attribute, strength, direction) for every phrase found.

        A comparative owned by an attribute the clause does not name is about the nearest numeric
        attribute the clause does name: "电池更大" is a bigger battery, "价格更低" a lower price.
        """
        s = normalize(text)
        hits = _scan(s, self._terms)
        breaks = [m.start() for m in _CLAUSE.finditer(s)]

        def clause(pos: int) -> int:
            return sum(b < pos for b in breaks)

        out: list[tuple[int, str, float, Direction | None]] = []
        named: list[tuple[int, int, list[str]]] = []  # (hit index, position, attribute ids)
        for h, (start, _, term) in enumerate(hits):
            ids = [a for a, kind in self._owners[term].items() if kind in ("name", "key")]
            for a in ids:
                out.append((start, a, _strength(term) * _KIND_WEIGHT[self._owners[term][a]] / len(ids), None))
            if ids:
                named.append((h, start, ids))
        for h, (start, _, term) in enumerate(hits):
            comps = [(a, kind) for a, kind in self._owners[term].items() if kind in ("more", "less")]
            if not comps:
                continue
            near = [(pos, ids) for i, pos, ids in named if i != h and clause(pos) == clause(start)]
            said = {a for _, ids in near for a in ids}
            resolved: list[tuple[str, Direction]] = [
                (a, "more" if d == "more" else "less") for a, d in comps if a in said
            ]
            if not resolved:
                numeric = [(pos, [a for a in ids if self._numeric(a)]) for pos, ids in near]
                numeric = [(pos, ids) for pos, ids in numeric if ids]
                if numeric:
                    _, target = min(numeric, key=lambda pi: abs(pi[0] - start))
                    direction: Direction = "more" if comps[0][1] == "more" else "less"
                    resolved = [(a, direction) for a in target]
                else:
                    resolved = [(a, "more" if d == "more" else "less") for a, d in comps]
            for a, d in resolved:
                out.append((start, a, _strength(term) * _KIND_WEIGHT["more"] / len(resolved), d))
        return out

    def asked_units(self, text: str) -> set[str]:
        """Unit symbols a question asks a number in: "一天能喂几顿" → {餐}, "多少毫安" → {mAh}."""
        t = normalize(text)
        out: set[str] = set()
        for m in re.finditer(r"几|多少", t):
            hit = self._unit_at(t, m.end())
            if hit is not None:
                out.add(hit[0].symbol)
        return out

    # --- units -----------------------------------------------------------------------------------
    def _unit_at(self, s: str, i: int) -> tuple[Unit, str, int] | None:
        """The longest unit alias at s[i:] (a Latin alias must end at a word boundary)."""
        if i >= len(s):
            return None
        for alias, unit in self._aliases.get(s[i], []):
            end = i + len(alias)
            if s.startswith(alias, i) and not (_is_letter(alias[-1]) and end < len(s) and _is_letter(s[end])):
                return unit, alias, end
        return None


@lru_cache(maxsize=8)
def load_attributes(path: Path | None = None) -> AttributeBook:
    """The attribute book from ``path`` (default: the packaged knowledge/data/attributes.json)."""
    return AttributeBook.model_validate_json((path or DATA_PATH).read_text(encoding="utf-8"))


# --- quantities --------------------------------------------------------------------------------------
_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_MAG = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "亿": 100_000_000}
_ARABIC = re.compile(r"[0-9]+(?:,[0-9]{3})+(?![0-9])(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?")
_RANGE = ("-", "~", "〜", "—", "–", "至", "到")
_TIMES = ("×", "*", "✕", "✖", "乘", "x")
# 一米五 = 1.5 m, 2尺2 = 2.2 尺, 9块9 = 9.9 元: digits right after these spoken units are the decimals
# (not after 元: "99元3件" is 99 元 for 3 items).
_DECIMAL_TAIL = {"米", "尺", "块"}
# 两年半, 三岁半, 两斤半: a trailing 半 adds a half of these dimensions.
_HALF_TAIL = {"time", "age", "mass", "length", "currency"}


def _number(s: str, i: int) -> tuple[float, int] | None:
    """A numeral at s[i:] → (value, end). Arabic, Chinese or mixed: 10000, 1.5万, 两万, 一万五, 十五, 三点五."""
    n, j = len(s), i
    total = section = 0.0
    num: float | None = None
    last_mag, single, zero = 0, False, False
    while j < n:
        ch = s[j]
        if "0" <= ch <= "9":
            if num is not None or (j > i and not last_mag):
                break
            m = _ARABIC.match(s, j)
            assert m is not None
            num, single, j = float(m.group().replace(",", "")), m.end() - j == 1, m.end()
        elif ch in _CN_DIGIT:
            # 两 inside a numeral only before a magnitude (两千); 三两 is 3 两 (a unit of 50 g)
            if num is not None or (ch == "两" and j > i and not (j + 1 < n and s[j + 1] in _CN_MAG)):
                break
            num, single, zero, j = float(_CN_DIGIT[ch]), True, zero or _CN_DIGIT[ch] == 0, j + 1
        elif ch == "点" and num is not None and j + 1 < n and s[j + 1] in _CN_DIGIT and s[j + 1] != "两":
            k = j + 1
            while k < n and s[k] in _CN_DIGIT and s[k] != "两":
                k += 1
            num, single, j = num + float("0." + "".join(str(_CN_DIGIT[c]) for c in s[j + 1 : k])), False, k
        elif ch in _CN_MAG:
            mag = _CN_MAG[ch]
            if num is None and ch == "十" and (j == i or last_mag):  # 十五, 一百一十
                num = 1.0
            if num is None and not (mag >= 10_000 and section):  # 千万 / 万一 are words, not numbers
                break
            if mag == 100_000_000:
                total, section = (total + section + (num or 0.0)) * mag, 0.0
            elif mag == 10_000:
                total, section = total + (section + (num or 0.0)) * mag, 0.0
            else:
                section += (num or 0.0) * mag
            num, last_mag, j = None, mag, j + 1
        else:
            break
    if j == i or (num is None and not last_mag):
        return None
    if num is not None and single and last_mag >= 100 and not zero:
        num *= last_mag / 10  # 一万五 = 15000, 两千五 = 2500: a lone digit after a magnitude is the next place
    return total + section + (num or 0.0), j


@dataclass
class _Atom:
    start: int
    end: int
    value: float
    unit: Unit | None
    bare_cjk: bool  # a single Chinese numeral character ("一下", "十分"): only a number with a unit
    code: bool = False  # digits glued to letters ("4k", "15pro"): part of a name, not a quantity


_GRAMMAR = frozenset(
    "the a an and or of for is are to that this with about than vs like any each only just over under about".split()
)


def _word_before(s: str, end: int) -> str:
    j = end
    while j > 0 and _is_letter(s[j - 1]):
        j -= 1
    return s[j:end]


def _skip_code(s: str, i: int) -> int:
    while i < len(s) and (_is_word(s[i]) or s[i] in "-_."):
        i += 1
    return i


class _Parser:
    def __init__(self, book: AttributeBook):
        self.book = book
        self.prefix = {
            a: u
            for u in book.units
            if u.dimension.startswith("currency")
            for a in u.aliases
            if len(a) == 1 and not a.isalnum()
        }  # ¥ and $ may also stand before the number
        self.percent = next((u for u in book.units if u.dimension == "percent"), None)

    def atom(self, s: str, i: int, chained: bool = False) -> _Atom | None:
        n, start, sign = len(s), i, 1.0
        prefix: Unit | None = None
        percent = s.startswith("百分之", i)
        if percent:
            i += 3
        elif s.startswith("零下", i):
            sign, i = -1.0, i + 2
        if i < n and s[i] in self.prefix:  # ¥19.9, $5
            prefix, i = self.prefix[s[i]], i + 1 + (s[i + 1 : i + 2] == " ")
        if i < n and s[i] == "-" and not chained and (i == 0 or s[i - 1] in " :(,") and _digit(s[i + 1 : i + 2] or " "):
            sign, i = -1.0, i + 1
        if i < n and s[i] == "半":  # 半小时, 半斤
            value, j = 0.5, i + 1
        else:
            got = _number(s, i)
            if got is None:
                return None
            value, j = got
        bare_cjk = j - i == 1 and not _digit(s[i])
        if s.startswith("个半", j) and self.book._unit_at(s, j + 2):  # 一个半小时
            value, j = value + 0.5, j + 2
        found = self.book._unit_at(s, j + (s[j : j + 1] == " "))
        if found and bare_cjk and found[1] == "分":  # 三分 / 十分 is a score or "very", not minutes
            found = None
        if found is None and s[i] == "半":
            return None
        unit, end = (found[0], found[2]) if found else (self.percent if percent else prefix, j)
        if found is None and j < n and _is_letter(s[j]) and not (s[j] == "x" and _digit(s[j + 1 : j + 2] or " ")):
            return _Atom(start, _skip_code(s, j), value, None, bare_cjk, code=True)
        if found and found[1] in _DECIMAL_TAIL and end < n:
            k = end
            while k < n and k - end < 2 and (_digit(s[k]) or (s[k] in _CN_DIGIT and s[k] != "两")):
                k += 1
            after = self.book._unit_at(s, k)
            if k > end and not (k < n and (_digit(s[k]) or s[k] in _CN_MAG)):
                if not (after and after[0].dimension == found[0].dimension):  # 3块5毛 is 3 元 and 5 角
                    digits = "".join(c if _digit(c) else str(_CN_DIGIT[c]) for c in s[end:k])
                    value, end = value + float(digits) / 10 ** len(digits), k
        if found and s[end : end + 1] == "半" and found[0].dimension in _HALF_TAIL and s[end + 1 : end + 2] != "价":
            value, end = value + 0.5, end + 1
        return _Atom(start, end, sign * value, unit, bare_cjk)

    def group(self, s: str, i: int) -> tuple[list[_Atom], int] | None:
        """An atom and whatever it is chained to: 3-6个月, 两三天, 10.4×6.8×1.7cm."""
        pair = self.pair(s, i)
        if pair:
            return pair, pair[-1].end
        first = self.atom(s, i)
        if first is None:
            return None
        if first.code:
            return [first], first.end
        atoms, kinds = [first], []
        while True:
            j = atoms[-1].end
            j += s[j : j + 1] == " "
            sep = s[j : j + 1]
            if sep in _RANGE:
                kind = "range"
            elif sep in _TIMES:
                kind = "times"
            else:
                break
            k = j + 1 + (s[j + 1 : j + 2] == " ")
            nxt = self.atom(s, k, chained=True) if k < len(s) else None
            if nxt is None or nxt.code:
                break
            atoms.append(nxt)
            kinds.append(kind)
        with_unit = [a for a in atoms if a.unit]
        if len(atoms) > 1 and with_unit:
            src = with_unit[-1].unit
            assert src is not None
            # a range shares its unit (3-6个月); a product of sizes only shares a length (30×20×10cm, not 2×500g)
            if all(k == "range" for k in kinds) or src.dimension == "length":
                for a in atoms:
                    if a.unit is None:
                        a.unit, a.bare_cjk = src, False
        return atoms, atoms[-1].end

    def pair(self, s: str, i: int) -> list[_Atom] | None:
        """两三天, 一两个: two consecutive digits before a unit are a range."""
        a, b = s[i : i + 1], s[i + 1 : i + 2]
        if not (a in _CN_DIGIT and b in _CN_DIGIT and _CN_DIGIT[b] == _CN_DIGIT[a] + 1 and _CN_DIGIT[a] > 0):
            return None
        if s[i + 2 : i + 3] in _CN_MAG or s[i + 2 : i + 3] in _CN_DIGIT:
            return None
        found = self.book._unit_at(s, i + 2)
        if found is None:
            return None
        unit, _, end = found
        return [_Atom(i, i + 1, float(_CN_DIGIT[a]), unit, False), _Atom(i + 1, end, float(_CN_DIGIT[b]), unit, False)]

    def parse(self, text: str) -> list[Quantity]:
        chars: list[str] = []
        origin: list[int] = []  # normalised index → original index (℃ becomes two characters)
        for k, ch in enumerate(text):
            for c in unicodedata.normalize("NFKC", ch).lower():
                chars.append(c)
                origin.append(k)
        s, n, i = "".join(chars), len(chars), 0
        out: list[Quantity] = []
        while i < n:
            ch = s[i]
            if not (_digit(ch) or ch in _CN_DIGIT or ch in "十半-百" or ch in self.prefix):
                i += 1
                continue
            if _digit(ch) and i > 0 and (_is_letter(s[i - 1]) or (s[i - 1] in "-_" and i > 1 and _is_word(s[i - 2]))):
                i = _skip_code(s, i)  # K84, SK-001: digits glued to letters are a model code
                continue
            got = self.group(s, i)
            if got is None:
                i += 1
                continue
            atoms, end = got
            # "iPhone 15", "Mate 60": a bare number right after a Latin word names a model —
            # unless that word is grammar ("the 10000 one", "for 2 people")
            after_word = i > 1 and s[i - 1] == " " and _is_letter(s[i - 2]) and _word_before(s, i - 1) not in _GRAMMAR
            for a in atoms:
                if a.code or (a.unit is None and (a.bare_cjk or after_word)):
                    continue
                lo, hi = origin[a.start], origin[a.end - 1] + 1
                u = a.unit
                out.append(
                    Quantity(
                        value=a.value,
                        unit=u.symbol if u else "",
                        dimension=u.dimension if u else "",
                        base=a.value * u.factor if u else a.value,
                        span=(lo, hi),
                        text=text[lo:hi],
                    )
                )
            i = max(end, i + 1)
        return out


def parse_quantities(text: str, book: AttributeBook | None = None) -> list[Quantity]:
    """Numbers in the text with their units, in text order. Bare numbers come back with unit "" (so
    "5000的充电宝" can still meet "5000mAh"); digits that are part of a model code do not come back."""
    b = book or load_attributes()
    if not isinstance(b._parser, _Parser):
        b._parser = _Parser(b)
    return b._parser.parse(text)


_ABOVE = re.compile(r"^\s*(?:及|或)?(?:以上|起|\+|往上|或更大|或更多)")
_BELOW = re.compile(r"^\s*(?:及|或)?(?:以下|以内|之内|内|或更小|或更少)")
_BELOW_BEFORE = re.compile(r"(?:≤|<|不超过|最多|最高|最大|至多|上限)\s*$")
_ABOVE_BEFORE = re.compile(r"(?:≥|>|不低于|不少于|至少|最少|最低)\s*$")
_JOIN = re.compile(r"^\s*(?:-|~|～|—|到|至)\s*$")


def value_ranges(text: str, book: AttributeBook | None = None) -> list[tuple[float, float, str]]:
    """The ranges a value states, in base units: "15-30kg" → (15000, 30000, mass), "7岁以上" →
    (7, inf, age), "≤10kg" / "10kg以内" → (0, 10000, mass); a single number is a one-point range."""
    qs = [q for q in parse_quantities(text, book) if q.dimension]
    out: list[tuple[float, float, str]] = []
    i = 0
    while i < len(qs):
        q = qs[i]
        nxt = qs[i + 1] if i + 1 < len(qs) else None
        if nxt is not None and nxt.dimension == q.dimension and _JOIN.match(text[q.span[1] : nxt.span[0]]):
            out.append((min(q.base, nxt.base), max(q.base, nxt.base), q.dimension))
            i += 2
            continue
        after, before = text[q.span[1] : q.span[1] + 4], text[max(0, q.span[0] - 4) : q.span[0]]
        if _ABOVE.match(after) or _ABOVE_BEFORE.search(before):
            out.append((q.base, float("inf"), q.dimension))
        elif _BELOW.match(after) or _BELOW_BEFORE.search(before):
            out.append((0.0, q.base, q.dimension))
        else:
            out.append((q.base, q.base, q.dimension))
        i += 1
    return out
