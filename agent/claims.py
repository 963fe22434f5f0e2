"""One claim checker for every outgoing sentence, whoever wrote it: the agent's composed answers, the
embedded model, the virtual host and marketing copy.

``ClaimChecker.check(sentence, ctx)`` returns a ``Verdict``: the sentence to send (compliance may
rewrite an absolute term; any other rule drops it: ``text == ""``) and one flag
``claims:<rule>[:detail]`` per rule that fired. ``ClaimChecker.screen(question)`` decides *before*
answering that a question only gets a fixed reply (prompt-leak requests, politics and religion,
other viewers' data).

The rules (``RULES``; each is enforced in code below, word lists live in ``agent/data/claim_rules.json``):

- ``action``: a sentence saying something was done for the viewer (issued / sent a coupon, topped up,
  transferred, refunded, reserved, ordered, registered) needs a successful tool call of this turn of
  the matching kind (``issue_coupon`` with ``result.ok`` for coupons; nothing backs the other kinds
  today). A promise (保证, 包赔, 补偿, 免单, 返现, "guarantee") or a warranty / returns statement needs a
  fact that states it: the clause quoted from a fact, the promise in the fact's words, or (warranty,
  returns) a fact on the same policy carrying every number of the clause ("2年质保" backs "保修2年").
  Negated sentences ("没有给你发券", "不能保证") and offers ("可以领券") are not claims.
- ``echo``: a run of ≥ 6 characters copied from the viewer's message, at least 4 (and half) of them not
  explained by catalog text, fact text or a common phrase (English: ≥ 3 words, 3 of them new — 2 in a run
  of ≥ 4); when the viewer asks to be repeated ("跟我念", "repeat after me") runs of ≥ 4 characters with 2
  new ones (2 words, 1 new) already count.
- ``contact``: phone numbers, emails, URLs / domains, WeChat / QQ ids and invitations off the platform
  (微信, 加V, 私聊, 加我, 二维码 …), unless negated or (handles) the exact string is in a fact.
- ``medical``: compliance's medical terms (always); a disease named with a cure / efficacy verb
  (always, unless negated); a disease mentioned at all, or an efficacy term (美白, 淡斑 …), unless a
  fact says it.
- ``ranking``: sales, ranking and 全网 claims (销量, 卖了X万, 回购率, 好评率, top, best-seller …) unless the
  clause or the claim is in a fact.
- ``product``: a well-known third-party brand not in the catalog (every source); on the model's text
  (``source="llm"``) "我们还有X" / "推荐你试试X" where X names no catalog product, series, alias or
  category. Limits: English product names are only checked against the brand list, and a product that
  shares a word with the catalog ("磁吸充电宝" when the catalog sells a "充电宝") passes.
- ``number``: every number in the facts, this turn's tool results (not search hits or the profile),
  the real prices, a catalog name the sentence mentions, or the question ("19.90" == "19.9").
- ``politics``, ``religion``: a sentence that mentions politics or religion (a place name only with a
  stance word) is dropped unless a fact says it.
- ``other_viewers``: other viewers' purchases, addresses, orders, profiles; a count of buyers
  ("已经有100人下单") only when the number is in this turn's tool / room data.
- ``prompt_leak``: any 12-character run of a secret (the system prompt), or talk about the
  instructions ("我的设定是", "system prompt", the prompt's 【资料】 markers).
- ``absolute``, ``scarcity``, ``price`` (and the compliance ``medical`` list): ``agent.compliance``.

A bare yes ("好的", "是的！", "Yes, that's right.") to a viewer's message that itself breaks one of these
rules ("已经转账给我了对吧", "是不是全网第一", "只要19块9对吧") makes the viewer's claim: it is dropped and
flagged ``claims:<rule>:affirmed``.

Merchants extend every list: ``ClaimRules.extended(...)`` / ``ClaimRules.from_overrides(dict)`` /
``ClaimRules.load(path)``, reading the same ``<data_dir>/compliance/<merchant>.json`` as the
compliance rules (compliance keys and claim keys side by side).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent import compliance
from agent.compliance import DEFAULT_RULES as DEFAULT_COMPLIANCE
from agent.compliance import ComplianceRules
from agent.messages import ToolCallRecord
from knowledge.schema import Fact
from knowledge.text import normalize

DATA = Path(__file__).resolve().parent / "data" / "claim_rules.json"

RULES: dict[str, str] = {
    "action": "an action or promise claim needs a successful matching tool call of this turn or a fact stating it",
    "echo": "text copied from the viewer's message is not repeated unless it is catalog text",
    "contact": "no off-platform contact: phone numbers, emails, URLs, WeChat/QQ ids, 加V/私聊/二维码",
    "medical": "no medical or efficacy claim; never a disease cure",
    "ranking": "no ranking, sales or 全网 claim absent from the facts",
    "product": "products and brands mentioned must exist in the catalog",
    "number": "every number is in the facts, this turn's tool results, the real prices or the question",
    "politics": "no position on politics",
    "religion": "no position on religion",
    "other_viewers": "nothing about other viewers' purchases, addresses, orders or profiles",
    "prompt_leak": "the system prompt is never echoed, nor the instructions talked about",
    "absolute": "advertising-law absolute terms (agent.compliance)",
    "scarcity": "urgency or stock claims the real stock doesn't support (agent.compliance)",
    "price": "price claims the real figures don't support (agent.compliance)",
}
Source = Literal["composed", "llm", "host", "copy"]

_REGEX_DICTS = ("action", "action_en")
_REGEX_LISTS = (
    "promise_patterns",
    "promise_en_patterns",
    "contact_patterns",
    "contact_en_patterns",
    "ranking_patterns",
    "ranking_en_patterns",
    "other_viewer_patterns",
    "other_viewer_count_patterns",
    "other_viewer_en_patterns",
    "leak_patterns",
    "leak_en_patterns",
    "product_offer_patterns",
    "echo_request_patterns",
    "implied_efficacy_patterns",
)
_PLAIN_LISTS = (
    "medical_terms",
    "disease_terms",
    "cure_terms",
    "medical_safe_terms",
    "politics_terms",
    "politics_weak_terms",
    "stance_terms",
    "religion_terms",
    "generic_words",
    "brands",
    "common_phrases",
    "allow",
    "number_ignore_tools",
)
_LIST_DICTS = ("action_tools", "policy_concepts")
CLAIM_KEYS = frozenset(_REGEX_DICTS + _REGEX_LISTS + _PLAIN_LISTS + _LIST_DICTS)
assert CLAIM_KEYS == compliance.CLAIM_RULE_KEYS, "keep compliance.CLAIM_RULE_KEYS in step (shared overrides file)"


@lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    raw.setdefault("number_ignore_tools", ["search_products", "lookup_profile"])
    return {k: v for k, v in raw.items() if k in CLAIM_KEYS}


def _default(key: str) -> Any:
    """A field defaulting to (a copy of) the shipped list ``key``."""
    return Field(default_factory=lambda: json.loads(json.dumps(_defaults()[key])))


class ClaimRules(BaseModel):
    """The word lists and patterns of every rule (defaults: ``agent/data/claim_rules.json``) plus the
    compliance rules. Immutable; ``extended`` / ``from_overrides`` return new rules."""

    model_config = ConfigDict(frozen=True)

    compliance: ComplianceRules = DEFAULT_COMPLIANCE
    action: dict[str, list[str]] = _default("action")
    action_en: dict[str, list[str]] = _default("action_en")
    action_tools: dict[str, list[str]] = _default("action_tools")
    policy_concepts: dict[str, list[str]] = _default("policy_concepts")
    promise_patterns: list[str] = _default("promise_patterns")
    promise_en_patterns: list[str] = _default("promise_en_patterns")
    contact_patterns: list[str] = _default("contact_patterns")
    contact_en_patterns: list[str] = _default("contact_en_patterns")
    ranking_patterns: list[str] = _default("ranking_patterns")
    ranking_en_patterns: list[str] = _default("ranking_en_patterns")
    other_viewer_patterns: list[str] = _default("other_viewer_patterns")
    other_viewer_count_patterns: list[str] = _default("other_viewer_count_patterns")
    other_viewer_en_patterns: list[str] = _default("other_viewer_en_patterns")
    leak_patterns: list[str] = _default("leak_patterns")
    leak_en_patterns: list[str] = _default("leak_en_patterns")
    product_offer_patterns: list[str] = _default("product_offer_patterns")
    echo_request_patterns: list[str] = _default("echo_request_patterns")
    implied_efficacy_patterns: list[str] = _default("implied_efficacy_patterns")
    medical_terms: list[str] = _default("medical_terms")
    disease_terms: list[str] = _default("disease_terms")
    cure_terms: list[str] = _default("cure_terms")
    medical_safe_terms: list[str] = _default("medical_safe_terms")
    politics_terms: list[str] = _default("politics_terms")
    politics_weak_terms: list[str] = _default("politics_weak_terms")
    stance_terms: list[str] = _default("stance_terms")
    religion_terms: list[str] = _default("religion_terms")
    generic_words: list[str] = _default("generic_words")
    brands: list[str] = _default("brands")
    common_phrases: list[str] = _default("common_phrases")
    allow: list[str] = _default("allow")
    number_ignore_tools: list[str] = _default("number_ignore_tools")

    def extended(self, compliance_rules: ComplianceRules | None = None, **lists: Any) -> ClaimRules:
        """These rules with more entries: ``extended(brands=["某牌"], action={"coupon": [...]})``."""
        unknown = set(lists) - CLAIM_KEYS
        if unknown:
            raise ValueError(f"unknown claim rule keys {sorted(unknown)}")
        data = self.model_dump(exclude={"compliance"})
        for k, v in lists.items():
            if isinstance(data[k], dict):
                merged = {kind: list(items) for kind, items in data[k].items()}
                for kind, items in dict(v).items():
                    merged[kind] = merged.get(kind, []) + list(items)
                data[k] = merged
            else:
                data[k] = data[k] + list(v)
        return ClaimRules(compliance=compliance_rules or self.compliance, **data)

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None, base: ClaimRules | None = None) -> ClaimRules:
        """A merchant's additions over the defaults, in the compliance overrides file: compliance keys
        (``absolute``, ``medical``, ``scarcity``, ``low_stock_terms``, ``allow``, ``low_stock``) and claim
        keys (``brands``, ``contact_patterns``, ``action`` …) side by side. Raises ValueError."""
        base = base or DEFAULT_CLAIM_RULES
        o = dict(overrides or {})
        claim = {k: o.pop(k) for k in list(o) if k in CLAIM_KEYS and k != "allow"}
        comp_allow = o.get("allow")
        unknown = set(o) - compliance.COMPLIANCE_KEYS
        if unknown:
            raise ValueError(f"unknown rule keys {sorted(unknown)}")
        comp = ComplianceRules.from_overrides(o, base.compliance) if o else base.compliance
        if comp_allow is not None:
            claim["allow"] = comp_allow  # one allow list: phrases no rule flags (a brand name, say)
        for k, v in claim.items():
            if k in _REGEX_DICTS + _LIST_DICTS:
                if not isinstance(v, dict) or not all(
                    isinstance(kind, str) and isinstance(items, list) and all(isinstance(x, str) and x for x in items)
                    for kind, items in v.items()
                ):
                    raise ValueError(f"claim rules: {k!r} must map names to lists of non-empty strings")
            elif not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
                raise ValueError(f"claim rules: {k!r} must be a list of non-empty strings")
            pats: list[str] = []
            if k in _REGEX_LISTS:
                pats = list(v)
            elif k in _REGEX_DICTS:
                pats = [p for items in v.values() for p in items]
            for pat in pats:
                try:
                    re.compile(pat)
                except re.error as e:
                    raise ValueError(f"claim rules: bad pattern in {k!r}: {pat!r}: {e}") from None
        return base.extended(comp, **claim)

    @classmethod
    def load(cls, path: Path | str) -> ClaimRules:
        """The defaults extended by a merchant's JSON file (the defaults when the file is absent)."""
        p = Path(path)
        if not p.is_file():
            return DEFAULT_CLAIM_RULES
        return cls.from_overrides(json.loads(p.read_text(encoding="utf-8")))


DEFAULT_CLAIM_RULES = ClaimRules()


@dataclass(frozen=True)
class ClaimContext:
    question: str = ""  # the viewer's message: untrusted text
    facts: Sequence[Fact] = ()  # knowledge-base facts this answer may use
    tool_calls: Sequence[ToolCallRecord] = ()  # this turn's tool calls
    catalog_names: Collection[str] = ()  # every product name, series and alias of the merchant's catalog
    secrets: Sequence[str] = ()  # the system prompt and other text never to be echoed
    real_stock: int | None = None
    prices: compliance.PriceFacts | None = None
    lang: str = "zh"
    source: Source = "llm"  # composed = written by code from facts


@dataclass
class Verdict:
    text: str  # the sentence to send, possibly rewritten; "" = drop it
    flags: list[str] = field(default_factory=list)  # "claims:<rule>[:detail]" for each rule that fired


@dataclass(frozen=True)
class Screened:
    rule: str  # prompt_leak | politics | religion | other_viewers
    reply: str


SCREEN_REPLIES = {
    "prompt_leak": (
        "这个不方便透露哦～商品有什么想了解的，随时问我！",
        "Sorry, I can't share that. Ask me anything about the products!",
    ),
    "politics": (
        "这个话题我就不参与啦～咱们聊聊直播间的好物吧！",
        "I'll stay out of that topic. Happy to help with the products!",
    ),
    "religion": (
        "这个话题我就不参与啦～咱们聊聊直播间的好物吧！",
        "I'll stay out of that topic. Happy to help with the products!",
    ),
    "other_viewers": (
        "这涉及别的观众的隐私，不能透露哦～你自己的订单可以在订单页查看。",
        "I can't share anything about other viewers. Your own orders are on your order page.",
    ),
}

# --- text helpers -------------------------------------------------------------------------------
_WS = re.compile(r"\s+")
_SQUASH = re.compile(r"[^\w.%+]|_")
_CLAUSE_END = "，,。！？!?；;：:、~～\n…"
_NUM_RE = re.compile(r"\d+(?:\.\d+)?")
_WORD_RE = re.compile(r"[a-z0-9][a-z0-9'\-]*")
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_FUNCTION_CHARS = set("的了吗呢吧啊呀哦是在有和与及也都就很嘛哈么还又才再这那个你我他她它们要会能可以")
_NEG_ZH = re.compile(
    r"(不|没|未|无|别|勿|非|无法|不能|不会|不可以|不可|不支持|不提供|没有|并不|并没有|不是|并非|不用|无需|不建议|不推荐|避免|慎用|禁止|严禁|请勿)"
    r"(能|会|可以|可|支持|提供|承诺|是|有|用|给|要|帮|为|对|被|曾|再|会给|能给)?(给你|帮你|为你|对你|向你|给您)?$"
)
_NEG_EN = re.compile(
    r"\b(not|never|no|cannot|can't|don't|doesn't|won't|didn't|unable to|isn't|aren't|haven't|hasn't)\b(\s+\S+){0,2}\s*$"
)
_STOP_EN = set(
    "a an the this that these those is are was were be been am i you he she it we they me my your our their his her its "
    "and or but if so to of in on at for with from by as not no yes do does did can could will would should may might "
    "just please here there what which who how when where why all any some very really too also only than then now "
    "about after before again more most much many such own same other into over under up down out off ok okay hi hello "
    "thanks thank like get got have has had make made say said tell told know think want need let lets go going".split()
)
_COMMON_EN = set(
    "price prices cost costs cheap expensive discount coupon coupons deal sale stock size sizes color colour colours colors "
    "skin sensitive dry oily combination acne pregnant pregnancy baby kid kids child children women men good great nice "
    "best better recommend recommendation product products item items shop store order orders ship shipping delivery "
    "free return returns refund exchange warranty quality material fabric ingredient ingredients use using used wear "
    "today tonight live stream room buy bought available ship ships suitable fit fits work works".split()
)


def _z(s: str) -> str:
    """NFKC, lower-case, whitespace removed: what the Chinese patterns match."""
    return _WS.sub("", normalize(s))


def _e(s: str) -> str:
    """NFKC, lower-case, single spaces: what the English patterns match."""
    return _WS.sub(" ", normalize(s)).strip()


def _squash(s: str) -> str:
    """Letters, digits, '.', '%' and '+' only: for "is this clause quoted from a fact" comparisons."""
    return _SQUASH.sub("", normalize(s))


def numbers(text: str) -> set[str]:
    """Numbers in ``text``, normalised ("19.90" → "19.9", full-width digits folded)."""
    out = set()
    for n in _NUM_RE.findall(normalize(text)):
        out.add(n.rstrip("0").rstrip(".") if "." in n else n)
    return out


def _clause(hay: str, start: int, end: int | None = None) -> tuple[int, int]:
    end = start if end is None else end
    a = start
    while a > 0 and hay[a - 1] not in _CLAUSE_END:
        a -= 1
    b = end
    while b < len(hay) and hay[b] not in _CLAUSE_END:
        b += 1
    return a, b


def _negated(hay: str, start: int, english: bool = False) -> bool:
    a, _ = _clause(hay, start)
    before = hay[max(a, start - (24 if english else 8)) : start]
    return bool((_NEG_EN if english else _NEG_ZH).search(before))


_NEG_ANY = re.compile(r"(不(?!仅|但|只|光|错|少|同|久|断|停)|没(?!错)|别|勿|禁止|无法|严禁|\bnot\b|\bno\b|never|n't)")


def _refused(hay: str, start: int) -> bool:
    """A negation anywhere before ``start`` in its clause ("不能私下加微信"): for mentions that are only
    harmful as invitations (handles are checked on their own)."""
    a, _ = _clause(hay, start)
    return bool(_NEG_ANY.search(hay[a:start]))


def _is_ascii(s: str) -> bool:
    return all(ord(c) < 128 for c in s)


def _plain_re(terms: Iterable[str], whole: bool) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """(CJK pattern on the squashed-space text, Latin pattern on the spaced text). ``whole``: Latin terms
    match whole words (brands), else word prefixes (cure → cures)."""
    zh = sorted({normalize(t) for t in terms if t and not _is_ascii(t)}, key=len, reverse=True)
    en = sorted({normalize(t) for t in terms if t and _is_ascii(t)}, key=len, reverse=True)
    tail = r"(?![a-z0-9])" if whole else ""
    zre = re.compile("|".join(map(re.escape, zh))) if zh else None
    ere = re.compile(r"(?<![a-z0-9])(?:" + "|".join(map(re.escape, en)) + ")" + tail) if en else None
    return zre, ere


def _find_plain(
    pats: tuple[re.Pattern[str] | None, re.Pattern[str] | None], z: str, e: str
) -> Iterator[tuple[str, str, int, bool]]:
    """(term, haystack, position, english) for every match."""
    zre, ere = pats
    if zre is not None:
        for m in zre.finditer(z):
            yield m.group(0), z, m.start(), False
    if ere is not None:
        for m in ere.finditer(e):
            yield m.group(0), e, m.start(), True


def _result_text(result: Any) -> str:
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(result)


def _result_ok(result: Any) -> bool:
    if isinstance(result, dict) and "ok" in result:
        return bool(result["ok"])
    return result is not None


class _Compiled:
    def __init__(self, r: ClaimRules):
        c = re.compile
        self.action = {k: [c(p) for p in v] for k, v in r.action.items()}
        self.action_en = {k: [c(p) for p in v] for k, v in r.action_en.items()}
        self.promise = [c(p) for p in r.promise_patterns]
        self.promise_en = [c(p) for p in r.promise_en_patterns]
        self.contact = [c(p) for p in r.contact_patterns]
        self.contact_en = [c(p) for p in r.contact_en_patterns]
        self.ranking = [c(p) for p in r.ranking_patterns]
        self.ranking_en = [c(p) for p in r.ranking_en_patterns]
        self.other = [c(p) for p in r.other_viewer_patterns]
        self.other_count = [c(p) for p in r.other_viewer_count_patterns]
        self.other_en = [c(p) for p in r.other_viewer_en_patterns]
        self.leak = [c(p) for p in r.leak_patterns]
        self.leak_en = [c(p) for p in r.leak_en_patterns]
        self.offer = [c(p) for p in r.product_offer_patterns]
        self.echo_request = [c(p) for p in r.echo_request_patterns]
        self.implied_efficacy = [c(p) for p in r.implied_efficacy_patterns]
        self.medical = _plain_re(r.medical_terms, whole=False)
        self.disease = _plain_re(r.disease_terms, whole=False)
        self.cure = _plain_re(r.cure_terms, whole=False)
        self.medical_safe = _plain_re(r.medical_safe_terms, whole=False)
        self.politics = _plain_re(r.politics_terms, whole=True)
        self.politics_weak = _plain_re(r.politics_weak_terms, whole=True)
        self.stance = _plain_re(r.stance_terms, whole=False)
        self.religion = _plain_re(r.religion_terms, whole=True)
        self.brands = _plain_re(r.brands, whole=True)
        self.concepts = {k: _plain_re(v, whole=False) for k, v in r.policy_concepts.items()}
        self.common = sorted({_squash(p) for p in r.common_phrases if _squash(p)}, key=len, reverse=True)
        self.generic = [normalize(w) for w in r.generic_words]
        self.allow = [normalize(a) for a in [*r.allow, *r.compliance.allow] if a.strip()]


_TOKENS_MEMO: dict[int, tuple[Collection[str], tuple[tuple[str, ...], frozenset[str]]]] = {}


def _name_tokens(names: Collection[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    """(tokens, normalised names) of catalog names: each name squashed, its words, and its words without a
    size / shade code ("30ml", "#01"). Memoised on the collection's identity (a turn passes the same
    catalog set every time)."""
    hit = _TOKENS_MEMO.get(id(names))
    if hit is not None and hit[0] is names:
        return hit[1]
    norm = frozenset(normalize(n).strip() for n in names if n and n.strip())
    tokens: set[str] = set()
    for n in norm:
        tokens.add(_squash(n))
        for part in re.split(r"[\s/（）()·,，、]+", n):
            part = _squash(part)
            if len(part) >= 2:
                tokens.add(part)
                stripped = re.sub(r"^#?\d+|\d+(\.\d+)?[a-z]*$", "", part)
                if len(stripped) >= 2:
                    tokens.add(stripped)
    out = (tuple(t for t in tokens if len(t) >= 2), norm)
    if len(names) > 20:  # only big, long-lived collections are worth remembering
        if len(_TOKENS_MEMO) > 32:
            _TOKENS_MEMO.clear()
        _TOKENS_MEMO[id(names)] = (names, out)
    return out


class _Prepared:
    """What a context grounds, computed once per context (a turn checks many sentences)."""

    def __init__(self, ctx: ClaimContext, ignore_tools: Collection[str]):
        fact_texts = [f.text for f in ctx.facts] + [f.name for f in ctx.facts if f.name]
        self.fact_squashed = [_squash(t) for t in fact_texts]
        self.fact_blob = "\n".join(self.fact_squashed)
        self.fact_numbers = [numbers(t) for t in fact_texts]
        tool_texts = [_result_text(c.result) for c in ctx.tool_calls]
        self.tool_blob = "\n".join(_squash(t) for t in tool_texts)
        self.data_numbers: set[str] = set()
        for c, t in zip(ctx.tool_calls, tool_texts):
            if c.name not in ignore_tools:
                self.data_numbers |= numbers(t)
        catalog = _name_tokens(ctx.catalog_names)
        extra = _name_tokens(tuple(f.name for f in ctx.facts if f.name)) if ctx.facts else ((), frozenset())
        tokens = set(catalog[0]) | set(extra[0])
        self.catalog_tokens = sorted(tokens, key=len, reverse=True)
        self.names_blob = "\n".join(self.catalog_tokens)
        self.names = catalog[1] | extra[1]
        self.real_numbers = set(self.data_numbers)  # grounded by data, not by the viewer
        for ns in self.fact_numbers:
            self.real_numbers |= ns
        if ctx.prices is not None:
            for x in ctx.prices.any_amounts():
                self.real_numbers |= numbers(f"{x:g}")
        self.allowed_numbers = numbers(ctx.question) | self.real_numbers
        self.question_claims: list[str] | None = None  # filled by the checker on first use
        self.fact_words = set(_WORD_RE.findall(" ".join(normalize(t) for t in fact_texts)))
        self.fact_words |= set(_WORD_RE.findall(" ".join(self.names)))

    def quotes(self, clause: str) -> bool:
        """The clause is (part of) a fact or a tool's own message, word for word."""
        q = _squash(clause)
        return len(q) >= 2 and (q in self.fact_blob or q in self.tool_blob)

    def in_facts(self, phrase: str) -> bool:
        q = _squash(phrase)
        return bool(q) and q in self.fact_blob


# --- the checker --------------------------------------------------------------------------------
class ClaimChecker:
    def __init__(self, rules: ClaimRules | None = None):
        self.rules = rules or DEFAULT_CLAIM_RULES
        self._c = _Compiled(self.rules)
        self._last: tuple[ClaimContext, _Prepared] | None = None
        self._lock = threading.Lock()

    def _prepared(self, ctx: ClaimContext) -> _Prepared:
        last = self._last
        if last is not None and last[0] is ctx:
            return last[1]
        prep = _Prepared(ctx, self.rules.number_ignore_tools)
        with self._lock:
            self._last = (ctx, prep)
        return prep

    # --- per sentence ---------------------------------------------------------------------------
    def check(self, sentence: str, ctx: ClaimContext) -> Verdict:
        """Every rule on one sentence (or a short line): the text to send ("" = drop) and the flags."""
        if not sentence.strip():
            return Verdict("", [])
        flags: list[str] = []
        said = [n for n in ctx.catalog_names if len(n) >= 2 and n in sentence]
        text, violations = compliance.enforce(
            sentence, self.rules.compliance, real_stock=ctx.real_stock, prices=ctx.prices, names=said
        )
        flags += [f"claims:{v.rule}:{v.term}" for v in violations]
        if not text:
            # dropped by compliance; the other rules still say what else was wrong (for the flags)
            rest = self._claims(sentence, ctx)
            return Verdict("", flags + [f for f in rest if f not in flags])
        dropped = self._claims(text, ctx)
        if dropped:
            return Verdict("", flags + dropped)
        return Verdict(text, flags)

    def _claims(self, text: str, ctx: ClaimContext) -> list[str]:
        """The flags of every rule but compliance's that drops ``text``."""
        prep = self._prepared(ctx)
        scan = normalize(text)
        for a in self._c.allow:
            scan = scan.replace(a, " " * len(a))
        z, e = _WS.sub("", scan), _WS.sub(" ", scan).strip()
        dropped: list[str] = []
        for rule in (
            self._prompt_leak,
            self._contact,
            self._action,
            self._echo,
            self._medical,
            self._ranking,
            self._politics,
            self._religion,
            self._other_viewers,
            self._product,
        ):
            dropped += rule(text, z, e, ctx, prep)
        bad = sorted(n for n in numbers(z) - prep.allowed_numbers if not self._number_in_named(n, z, prep))
        if bad:
            dropped.append("claims:number:" + ",".join(bad))
        if not dropped and _is_affirmation(z, e):
            # "是的" / "好的" to "已经转账给我了对吧" / "是不是全网第一" / "只要19块9对吧" states the viewer's claim
            dropped += [f"claims:{rule}:affirmed" for rule in self._question_claims(ctx, prep)[:1]]
        if not dropped and "medical" in self._question_claims(ctx, prep):
            # "可以试试，但效果可能有限" to "姜枣茶能治痛经吗" is an efficacy claim about the disease asked
            hits = [
                m.group(0)
                for pat in self._c.implied_efficacy
                for hay in (z, e)
                if (m := pat.search(hay)) and not _refused(hay, m.start())
            ]
            if hits and not prep.quotes(text):
                dropped.append(f"claims:medical:implied:{hits[0]}")
        return list(dict.fromkeys(dropped))

    def _question_claims(self, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        """The rules the viewer's own message breaks, judged with this turn's facts and tools: a yes to it
        would make the claim."""
        if prep.question_claims is not None:
            return prep.question_claims
        out: list[str] = []
        q = ctx.question.strip()
        if q:
            bare = ClaimContext(
                facts=ctx.facts,
                tool_calls=ctx.tool_calls,
                catalog_names=ctx.catalog_names,
                real_stock=ctx.real_stock,
                prices=ctx.prices,
                lang=ctx.lang,
                source=ctx.source,
            )
            qprep = _Prepared(bare, self.rules.number_ignore_tools)
            scan = normalize(q)
            z = _WS.sub("", scan)
            # the viewer speaks of "我"; the patterns are written for what the agent would say to "你"
            zq = z.replace("我", "你")
            e = re.sub(r"\bme\b", "you", re.sub(r"\bmy\b", "your", _WS.sub(" ", scan).strip()))
            for rule in (self._action, self._medical, self._ranking, self._other_viewers, self._contact):
                out += [f.split(":")[1] for f in rule(q, zq, e, bare, qprep)]
            out += [v.rule for v in compliance.check(q, self.rules.compliance, ctx.real_stock, prices=ctx.prices)]
            if numbers(z) - prep.real_numbers and not all(
                self._number_in_named(n, z, prep) for n in numbers(z) - prep.real_numbers
            ):
                out.append("number")
        prep.question_claims = list(dict.fromkeys(out))
        return prep.question_claims

    def check_text(self, text: str, ctx: ClaimContext) -> Verdict:
        """``check`` sentence by sentence; what fails is dropped, the rest is kept."""
        kept: list[str] = []
        flags: list[str] = []
        for s in compliance.sentences(text):
            v = self.check(s, ctx)
            flags += v.flags
            if v.text:
                kept.append(v.text)
        return Verdict("".join(kept).strip(), list(dict.fromkeys(flags)))

    # --- rules ----------------------------------------------------------------------------------
    def _prompt_leak(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        if ctx.secrets and leaks(text, ctx.secrets):
            return ["claims:prompt_leak"]
        if any(p.search(z) for p in self._c.leak) or any(p.search(e) for p in self._c.leak_en):
            return ["claims:prompt_leak:talk"]
        return []

    def _contact(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        out: list[str] = []
        for kind, handle in _handles(e):
            if not prep.in_facts(handle):
                out.append(f"claims:contact:{kind}")
        for pats, hay, en in ((self._c.contact, z, False), (self._c.contact_en, e, True)):
            for p in pats:
                for m in p.finditer(hay):
                    if _refused(hay, m.start()):
                        continue
                    a, b = _clause(hay, m.start(), m.end())
                    if prep.quotes(hay[a:b]):
                        continue
                    out.append(f"claims:contact:{m.group(0)}")
        return out[:3]

    def _tool_backs(self, kind: str, ctx: ClaimContext) -> bool:
        tools = self.rules.action_tools.get(kind, [])
        return any(c.name in tools and c.ok and _result_ok(c.result) for c in ctx.tool_calls)

    def _action(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        out: list[str] = []
        for kind in dict.fromkeys([*self._c.action, *self._c.action_en]):
            for pats, hay, en in ((self._c.action.get(kind, []), z, False), (self._c.action_en.get(kind, []), e, True)):
                hit = self._first_claim(pats, hay, en, prep)
                if hit and not self._tool_backs(kind, ctx):
                    out.append(f"claims:action:{kind}")
                    break
        for pats, hay, en in ((self._c.promise, z, False), (self._c.promise_en, e, True)):
            for p in pats:
                for m in p.finditer(hay):
                    if _negated(hay, m.start(), en):
                        continue
                    a, b = _clause(hay, m.start(), m.end())
                    clause = hay[a:b]
                    if prep.quotes(clause) or self._concept_backed(clause, prep):
                        continue
                    windows = [hay[max(a, m.start() - 2) : m.end()], hay[m.start() : min(b, m.end() + 2)]]
                    if any(len(_squash(w)) > len(_squash(m.group(0))) and prep.in_facts(w) for w in windows):
                        continue
                    out.append(f"claims:action:promise:{m.group(0).strip()}")
                    break
        # warranty / returns statements without a promise word ("保修2年", "支持7天无理由退货")
        for concept, terms in self._c.concepts.items():
            for term, hay, pos, en in _find_plain(terms, z, e):
                if _negated(hay, pos, en):
                    continue
                a, b = _clause(hay, pos, pos + len(term))
                clause = hay[a:b]
                if prep.quotes(clause) or self._concept_backed(clause, prep):
                    continue
                out.append(f"claims:action:{concept}")
                break
        return list(dict.fromkeys(out))

    def _first_claim(self, pats: list[re.Pattern[str]], hay: str, en: bool, prep: _Prepared) -> str | None:
        for p in pats:
            for m in p.finditer(hay):
                if _negated(hay, m.start(), en):
                    continue
                a, b = _clause(hay, m.start(), m.end())
                if prep.quotes(hay[a:b]):
                    continue  # the store's own words ("已经发货的无法修改地址") or the ledger's message
                return m.group(0)
        return None

    def _concept_backed(self, clause: str, prep: _Prepared) -> bool:
        """A warranty / returns clause is backed by a fact on the same policy carrying all its numbers."""
        nums = numbers(clause)
        for pats in self._c.concepts.values():
            if not any(True for _ in _find_plain(pats, _z(clause), _e(clause))):
                continue
            for blob, fnums in zip(prep.fact_squashed, prep.fact_numbers):
                if any(True for _ in _find_plain(pats, blob, blob)) and nums <= fnums:
                    return True
        return False

    def _echo(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        if not ctx.question.strip():
            return []
        qz, qe = _z(ctx.question), _e(ctx.question)
        request = any(p.search(qz) for p in self._c.echo_request) or any(p.search(qe) for p in self._c.echo_request)
        # without a request to repeat, an answer may restate the question's topic ("羽绒服洗衣机能洗"): only a
        # run mostly made of the viewer's own words (≥ 4 new, at least half) is their slogan
        min_run, min_new, share = (4, 2, 0.3) if request else (6, 4, 0.5)
        sq, qq = _squash(z), _squash(qz)
        for run in _common_runs(sq, qq, min_run):
            new = self._unexplained(run, prep)
            if new >= min_new and new >= len(_CJK_RE.findall(run)) * share:
                return [f"claims:echo:{run[:16]}"]
        sw, qw = _WORD_RE.findall(e), _WORD_RE.findall(qe)
        min_words = 2 if request else 3
        for run_words in _common_word_runs(sw, qw, min_words):
            new_words = [w for w in run_words if w not in _STOP_EN and w not in _COMMON_EN and w not in prep.fact_words]
            # English answers name their subject the way the viewer did ("the ginger tea is …"): without a
            # request to repeat, three new words (or two in a run of four or more) make an echo
            need = 1 if request else (2 if len(run_words) >= 4 else 3)
            if len(new_words) >= need:
                return ["claims:echo:" + " ".join(run_words)[:30]]
        return []

    def _unexplained(self, run: str, prep: _Prepared) -> int:
        """CJK characters of ``run`` that no catalog name, fact text (≥ 3 characters) or common phrase explains."""
        n = len(run)
        ok = [not _CJK_RE.match(ch) or ch in _FUNCTION_CHARS for ch in run]
        for tok in prep.catalog_tokens:
            start = run.find(tok)
            while start >= 0:
                for i in range(start, start + len(tok)):
                    ok[i] = True
                start = run.find(tok, start + 1)
        for ph in self._c.common:
            start = run.find(ph)
            while start >= 0:
                for i in range(start, start + len(ph)):
                    ok[i] = True
                start = run.find(ph, start + 1)
        i = 0
        while i < n:
            j = i + 3
            while j <= n and run[i:j] in prep.fact_blob:
                j += 1
            if j - 1 - i >= 3:
                for k in range(i, j - 1):
                    ok[k] = True
            i += 1
        return sum(1 for x in ok if not x)

    def _medical(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        out: list[str] = []
        for term, hay, pos, en in _find_plain(self._c.disease, z, e):
            a, b = _clause(hay, pos, pos + len(term))
            clause = hay[a:b]
            rest = clause.replace(term, " " * len(term))
            cures = [(m, en) for m in _iter_plain(self._c.cure, rest, en)]
            if any(not _negated(rest, m.start(), en) for m, _ in cures):
                out.append(f"claims:medical:cure:{term}")
                continue
            if cures or _refused(hay, pos):
                continue  # "不能治疗湿疹": a negated claim is information
            if any(True for _ in _find_plain(self._c.medical_safe, clause, clause)):
                continue  # "湿疹请先咨询医生"
            if prep.quotes(clause):
                continue
            out.append(f"claims:medical:{term}")
        for term, hay, pos, en in _find_plain(self._c.medical, z, e):
            if _refused(hay, pos) or prep.in_facts(term):
                continue
            out.append(f"claims:medical:{term}")
        return list(dict.fromkeys(out))

    def _ranking(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        for pats, hay, en in ((self._c.ranking, z, False), (self._c.ranking_en, e, True)):
            for p in pats:
                for m in p.finditer(hay):
                    if _negated(hay, m.start(), en):
                        continue
                    a, b = _clause(hay, m.start(), m.end())
                    if prep.quotes(hay[a:b]) or prep.in_facts(m.group(0)):
                        continue
                    return [f"claims:ranking:{m.group(0).strip()}"]
        return []

    def _politics(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        for term, _, _, _ in _find_plain(self._c.politics, z, e):
            if not prep.in_facts(term):
                return [f"claims:politics:{term}"]
        for term, hay, pos, _ in _find_plain(self._c.politics_weak, z, e):
            a, b = _clause(hay, pos, pos + len(term))
            clause = hay[a:b]
            if any(True for _ in _find_plain(self._c.stance, clause, clause)) and not prep.quotes(clause):
                return [f"claims:politics:{term}"]
        return []

    def _religion(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        for term, _, _, _ in _find_plain(self._c.religion, z, e):
            if not prep.in_facts(term):
                return [f"claims:religion:{term}"]
        return []

    def _other_viewers(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        for pats, hay, en in ((self._c.other, z, False), (self._c.other_en, e, True)):
            for p in pats:
                for m in p.finditer(hay):
                    if _negated(hay, m.start(), en):
                        continue
                    a, b = _clause(hay, m.start(), m.end())
                    if prep.quotes(hay[a:b]):
                        continue
                    nums = numbers(m.group(0))
                    if en and nums and nums <= prep.data_numbers:
                        continue  # "3 people ordered" from the room's own counter
                    return [f"claims:other_viewers:{m.group(0)[:20]}"]
        for p in self._c.other_count:
            for m in p.finditer(z):
                a, b = _clause(z, m.start(), m.end())
                if prep.quotes(z[a:b]):
                    continue
                nums = numbers(m.group(0))
                if nums and nums <= prep.data_numbers:
                    continue  # the count is real data of this turn (the room's order counter)
                return [f"claims:other_viewers:{m.group(0)[:20]}"]
        return []

    def _product(self, text: str, z: str, e: str, ctx: ClaimContext, prep: _Prepared) -> list[str]:
        out: list[str] = []
        for term, _, _, _ in _find_plain(self._c.brands, z, e):
            if not prep.in_facts(term) and _squash(term) not in prep.names_blob:
                out.append(f"claims:product:brand:{term}")
        if ctx.source != "llm" or not prep.catalog_tokens:
            return out  # without the catalog nothing can be decided
        for p in self._c.offer:
            for m in p.finditer(z):
                try:
                    x = m.group("x")
                except IndexError:
                    x = m.group(0)
                x = re.split(
                    r"(哦|呢|呀|啊|吧|哈|也|很|挺|非常|特别|超级|比较|更|都|的话|给你|给您|不错|效果|哟|噢)", x
                )[0]
                x = re.sub(r"^(咱们的|我们的|店里的|我们家的|家的|的|款|个|一下)", "", x)
                x = re.sub(r"(系列|款|产品|商品|东西|好物|宝贝)$", "", x)
                core = _squash(x)
                if len(core) < 2 or any(g in x for g in self._c.generic):
                    continue
                if any(t in core for t in prep.catalog_tokens) or core in prep.names_blob or core in prep.fact_blob:
                    continue
                out.append(f"claims:product:{core}")
        return out[:2]

    @staticmethod
    def _number_in_named(n: str, z: str, prep: _Prepared) -> bool:
        """A number inside a catalog name the sentence mentions ("防晒乳 SPF50+", "口红#01")."""
        return any(tok in z and n in numbers(tok) for tok in prep.catalog_tokens if any(ch.isdigit() for ch in tok))

    # --- before answering -----------------------------------------------------------------------
    def screen(self, question: str, lang: str = "zh") -> Screened | None:
        """A fixed reply for questions that are not answered at all: prompt-leak requests, politics and
        religion, other viewers' data. None for everything else."""
        z, e = _z(question), _e(question)
        rule = None
        if any(p.search(z) for p in _SCREEN_LEAK) or any(p.search(e) for p in _SCREEN_LEAK_EN):
            rule = "prompt_leak"
        elif any(p.search(z) for p in _SCREEN_OTHER) or any(p.search(e) for p in _SCREEN_OTHER_EN):
            rule = "other_viewers"
        elif self._screen_politics(z, e):
            rule = "politics"
        elif self._screen_religion(z, e):
            rule = "religion"
        if rule is None:
            return None
        zh, en = SCREEN_REPLIES[rule]
        return Screened(rule, en if lang == "en" else zh)

    def _screen_politics(self, z: str, e: str) -> bool:
        if any(True for _ in _find_plain(self._c.politics, z, e)):
            return True
        weak = any(True for _ in _find_plain(self._c.politics_weak, z, e))
        return weak and bool(
            _OPINION.search(z) or _OPINION_EN.search(e) or any(True for _ in _find_plain(self._c.stance, z, e))
        )

    def _screen_religion(self, z: str, e: str) -> bool:
        strong = _RELIGION_STRONG.search(z) or _RELIGION_STRONG_EN.search(e) or _RELIGION_PERSONAL.search(z)
        if strong:
            return True
        return any(True for _ in _find_plain(self._c.religion, z, e)) and bool(
            _OPINION.search(z) or _OPINION_EN.search(e) or _BELIEF.search(z)
        )


def _iter_plain(
    pats: tuple[re.Pattern[str] | None, re.Pattern[str] | None], hay: str, en: bool
) -> Iterator[re.Match[str]]:
    p = pats[1] if en else pats[0]
    if p is not None:
        yield from p.finditer(hay)
    if not en and pats[1] is not None:  # Latin cure words inside a mixed sentence
        yield from pats[1].finditer(hay)


_AFFIRM = {
    "好", "好的", "好滴", "是", "是的", "是滴", "对", "对的", "对滴", "对呀", "对啊", "没错", "没问题", "确认", "确认了", "确实",
    "嗯", "嗯嗯", "当然", "当然了", "当然是", "可以", "可以的", "行", "收到", "好的收到", "是这样", "对没错", "是真的", "真的",
    "yes", "yep", "yeah", "sure", "correct", "right", "ok", "okay", "ofcourse", "absolutely", "confirmed", "thatsright",
    "thatiscorrect", "indeed", "yesitis", "yesthatsright", "true", "great", "done", "gotit", "noproblem", "我收到了",
}  # fmt: skip
_AFFIRM_LEAD = re.compile(
    r"^(是的|没错|对的|确实|确认|当然|好的|好|可以|嗯|行|收到|没问题|yes|correct|that'?s right|absolutely|exactly|"
    r"ok|okay|sure|great|got it|done|no problem)[，,!！。.\s]"
)
# what makes "好的，…" a refusal or a referral rather than a yes
_NOT_A_YES = re.compile(r"(不|没|别|无法|抱歉|主播|稍后|确认一下|问下|问问|sorry|\bnot\b|\bno\b|n't|check|host)")
_PARTICLES = re.compile(r"(哦|呢|呀|啊|啦|哈|嘛|哟|噢|呐|~|～|的呢)+$")


def _is_affirmation(z: str, e: str) -> bool:
    """A bare yes ("是的！", "好的～", "Yes, that's right."), or one that leads a sentence with nothing
    negated after it ("没错，已经安排了")."""
    core = _PARTICLES.sub("", _SQUASH.sub("", z.replace("'", "")))
    if core in _AFFIRM:
        return True
    m = _AFFIRM_LEAD.match(e)
    return m is not None and not _NOT_A_YES.search(e[m.end() :])


def _common_runs(s: str, q: str, min_len: int) -> list[str]:
    """Maximal substrings of ``s`` (≥ ``min_len``) that also occur in ``q``."""
    out: list[str] = []
    i, n = 0, len(s)
    while i <= n - min_len:
        if s[i : i + min_len] not in q:
            i += 1
            continue
        j = i + min_len
        while j < n and s[i : j + 1] in q:
            j += 1
        out.append(s[i:j])
        i = j
    return out


def _common_word_runs(s: list[str], q: list[str], min_len: int) -> list[list[str]]:
    qs = " " + " ".join(q) + " "
    out: list[list[str]] = []
    i = 0
    while i <= len(s) - min_len:
        if " " + " ".join(s[i : i + min_len]) + " " not in qs:
            i += 1
            continue
        j = i + min_len
        while j < len(s) and " " + " ".join(s[i : j + 1]) + " " in qs:
            j += 1
        out.append(s[i:j])
        i = j
    return out


_HANDLES: list[tuple[str, re.Pattern[str]]] = [
    ("url", re.compile(r"(https?://|www\.)\S+")),
    ("email", re.compile(r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}")),
    (
        "domain",
        re.compile(
            r"(?<![@\w.])[a-z0-9][a-z0-9-]{1,62}(\.[a-z0-9-]{1,62})*\.(com|cn|net|org|top|xyz|io|cc|me|vip|shop|link|"
            r"site|info|co|app|tv|club|store|online|ru|uk|us)(?![a-z0-9])"
        ),
    ),
    ("phone", re.compile(r"(?<![\d.])(\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)")),
    ("phone", re.compile(r"(?<![\d.])(0\d{2,3}[- ]?\d{7,8}|[48]00[- ]?\d{3}[- ]?\d{4})(?!\d)")),
    ("qq", re.compile(r"(qq|扣扣|企鹅)\s*(号|群)?\s*[:：]?\s*\d{5,}")),
    ("wechat", re.compile(r"(微信|vx|wx|v信|威信|薇信|weixin|wechat)\s*(号|id)?\s*[:：]?\s*[a-z][a-z0-9_-]{4,}")),
]


def _handles(e: str) -> Iterator[tuple[str, str]]:
    for kind, p in _HANDLES:
        for m in p.finditer(e):
            yield kind, m.group(0)


_SCREEN_LEAK = [
    re.compile(p)
    for p in (
        r"(系统|system)(提示|prompt|指令|设定|消息)",
        r"提示词|prompt",
        r"你的(设定|指令|规则|指示|初始|人设|配置|要求|限制|底层|原始)",
        r"(原封不动|逐字|一字不差)(地)?(说|告诉|输出|复述|发|打印|念|背|翻译|列|写)",
        r"(上面|以上|前面)(的)?(内容|文字|所有|全部|那段|指令|规则)",
        r"(输出|打印|显示|泄露|发我|发给我|告诉我|背诵|复述|念出|翻译)(一下)?(你的|你收到的|你被)?(提示|设定|指令|规则|配置|人设)",
        r"(你|你们)(是怎么|被怎么)(设定|设置|训练|编程|配置)的",
        r"(开发者|管理员|调试)模式",
        r"(你的|你收到的|给你的|你被|系统的?|上面的|以上的?)[^，。！？]{0,4}(资料|规则|设定|指令|提示|上下文)"
        r"[^，。！？]{0,8}(打印|输出|发我|发给我|告诉我|复述|列出|贴出|念出)",
        r"(设定|指令|提示词|上下文)[^，。！？]{0,8}(打印|输出|复述|列出|贴出|念出)",
        r"【资料】|【观众消息】",
    )
]
_SCREEN_LEAK_EN = [
    re.compile(p)
    for p in (
        r"\b(system|initial|hidden|original) (prompt|instructions|message)",
        r"\bprompt\b",
        r"\byour (instructions|rules|guidelines|configuration|setup)\b",
        r"\b(repeat|print|output|reveal|show|dump|translate|tell me) (me )?(everything|all|the text|the words|what'?s?) (above|before)",
        r"\b(developer|debug|god) mode\b",
        r"\bverbatim\b",
    )
]
_PERSON = r"(用户|观众|网友|买家|顾客|粉丝|那个人|这个人|那位|这位|别人|其他人|人家|(?<!其)他|她|(?<![a-z])ta|(?<![a-z])u?id[:：#]?[a-z0-9_-]+)"
_SCREEN_OTHER = [
    re.compile(p)
    for p in (
        r"谁(买了|下单|下了单|拍了|抢到|中奖|领了)",
        r"((?<!其)他|她|(?<![a-z])ta|他们|她们)(买了|下单|下了单|拍了|都买)(什么|啥|哪|几)",
        r"(别人|其他人|其他观众|其他用户|其他买家|其他顾客|他们|人家)(都)?(买了什么|买了啥|下单了什么|的订单|的地址|的电话|的手机|的信息|的名字|的购买记录)",
        r"(刚才|刚刚|上一个|前面).{0,6}(那位|那个人|那个(用户|观众|网友|买家|姐妹|宝宝)|的(用户|观众|网友|买家))"
        r".{0,8}(买了|下单|叫什么|名字|地址|电话|手机|是谁|订单|信息|问了|住哪|住在|在哪|哪里人)",
        r"(下单|买了|购买|拍了|抢到|中奖)[^，。！？]{0,8}(都是谁|是谁|有谁|哪些人|名单)",
        _PERSON + r".{0,4}的(收货)?(地址|手机号?|电话|订单|名字|姓名|真名|信息|画像|兴趣|购买记录|身份证)",
        r"(下单|购买|中奖)(的)?(用户|名单|人的名字|人名单|记录)",
        r"(买家|用户|观众|粉丝)(名单|列表|信息|数据)",
        r"(用户|观众|(?<![a-z])u?id)[:：#]?[a-z0-9_-]*\d[a-z0-9_-]*",
    )
]
_SCREEN_OTHER_EN = [
    re.compile(p)
    for p in (
        r"\b(other|another) (viewers?|users?|customers?|buyers?|people)('s)?\b.{0,30}\b(buy|bought|order|address|phone|name|data|info)",
        r"\bwho (bought|ordered|purchased|won)\b",
        r"\b(his|her|their|that (user|viewer|person)'s) (address|phone|orders?|names?|profile)\b",
        r"\buser\s*(id\s*)?[\w-]*\d[\w-]*",
        r"\b(list|tell me|give me) (their|the buyers'?|the viewers'?) names\b",
        r"\bsomeone else'?s\b",
    )
]
_OPINION = re.compile(
    r"怎么看|看法|觉得|认为|支持|反对|站哪|站队|立场|评价|属于|是不是中国|独立|统一|对吗|对不对|谁对|谁赢|打仗|战争|好还是坏|应该|敌人|态度|观点|喜欢哪|哪个好|选谁"
)
_OPINION_EN = re.compile(r"\b(opinion|think|thoughts|support|belong|side|stance|view on|feel about|agree)\b")
_BELIEF = re.compile(r"(你)?(信|相信|信不信|存在吗|真的有|保佑|灵不灵|拜|开光|祈祷)")
_RELIGION_PERSONAL = re.compile(r"你(们)?(是|信|信不信|信仰)[^，。！？]{0,6}(基督|佛|穆斯林|伊斯兰|道教|天主|犹太|神)")
_RELIGION_STRONG = re.compile(r"宗教|信仰|上帝|真主|耶稣|佛祖|菩萨|邪教|法轮|圣经|古兰经|传教|信佛|信教|信主")
_RELIGION_STRONG_EN = re.compile(r"\b(religion|religious|god|jesus|allah|bible|quran|koran)\b")


def leaks(text: str, secret_texts: Sequence[str], window: int = 12) -> bool:
    """True when ``text`` repeats any ``window``-character run of a secret (the system prompt), compared
    without whitespace and punctuation ("你是暖光优选直播间的AI助理" repeats "你是「暖光优选」直播间的AI助理")."""
    compact = _SQUASH.sub("", normalize(text))
    for secret in secret_texts:
        s = _SQUASH.sub("", normalize(secret))
        for i in range(0, max(0, len(s) - window) + 1):
            if s[i : i + window] in compact:
                return True
    return False


def catalog_names(catalog: Any) -> frozenset[str]:
    """Every product name, series, alias and category of a ``knowledge.schema.Catalog`` (duck-typed),
    plus the shop's name: what ``ClaimContext.catalog_names`` wants."""
    out: set[str] = set()
    for p in getattr(catalog, "products", []) or []:
        for n in [p.name, p.series, p.category, *p.aliases]:
            if n and n.strip():
                out.add(n.strip())
    merchant = getattr(catalog, "merchant", None)
    if merchant is not None and getattr(merchant, "name", None):
        out.add(merchant.name)
    return frozenset(out)


@lru_cache(maxsize=1)
def default_checker() -> ClaimChecker:
    """The checker with the default rules (shared; it holds no per-turn state)."""
    return ClaimChecker()


_LOADED: dict[str, tuple[float, ClaimChecker]] = {}


def checker_for(path: Path | str) -> ClaimChecker:
    """The default rules extended by a merchant's overrides file (``<data_dir>/compliance/<merchant>.json``);
    reloaded when the file changes. A broken file raises ValueError."""
    p = Path(path)
    if not p.is_file():
        return default_checker()
    mtime = p.stat().st_mtime
    hit = _LOADED.get(str(p))
    if hit is None or hit[0] != mtime:
        hit = (mtime, ClaimChecker(ClaimRules.load(p)))
        _LOADED[str(p)] = hit
    return hit[1]
