"""Advertising-law and claims compliance for every piece of text the agent emits.

Rules (each violation names its rule so a merchant sees why a line was changed):
- ``absolute``: 《广告法》第九条 absolute terms (最, 第一, 顶级, 国家级, 100% …);
- ``medical``: medical / efficacy claims for cosmetics and food (治疗, 根治, 消炎 …);
- ``scarcity``: urgency or stock claims (仅剩N件, 马上抢光, 最后N分钟, 库存紧张) the real stock doesn't
  support;
- ``price``: price claims the data doesn't support (《价格法》/《明码标价和禁止价格欺诈规定》): a 原价 /
  日常价 that is not the list price, a live or 到手 price that is not the real one, a discount (X折,
  省X元, 满X减Y) that is wrong. Checked only when the caller passes the real figures (``prices``).
Merchants extend the word lists through ``ComplianceRules`` (``extended`` or ``from_overrides``).
These rules are part of the one claim checker, ``agent.claims.ClaimChecker``, which every outgoing
sentence passes; its own keys share the merchant's overrides file and are ignored here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ABSOLUTE_TERMS = [
    "全网最低",
    "史上最低",
    "最低价",
    "最便宜",
    "最好",
    "最佳",
    "最强",
    "最优",
    "最新",
    "最先进",
    "最高级",
    "最受欢迎",
    "最热销",
    "最正宗",
    "最具",
    "第一品牌",
    "销量第一",
    "排名第一",
    "全国第一",
    "第一",
    "NO.1",
    "No.1",
    "no.1",
    "TOP1",
    "顶级",
    "顶尖",
    "极品",
    "国家级",
    "世界级",
    "全球级",
    "宇宙级",
    "最高",
    "100%",
    "百分百",
    "百分之百",
    "绝对",
    "万能",
    "唯一",
    "独一无二",
    "史无前例",
    "前无古人",
    "无敌",
    "永久",
    "王牌",
    "领袖品牌",
    "领导品牌",
    "冠军",
    "极致",
    "完美",
    "国货之光",
    "特供",
    "专供",
    "填补国内空白",
    "独家",
    "首选",
    "首家",
    "首个",
    "至尊",
    "巅峰",
    "绝无仅有",
    "遥遥领先",
    "驰名商标",
    "免检",
    "全球首发",
]
MEDICAL_TERMS = [
    "治疗",
    "治愈",
    "根治",
    "疗效",
    "药效",
    "处方",
    "医治",
    "消炎",
    "抗炎",
    "杀菌",
    "抑菌",
    "抗菌",
    "抗癌",
    "防癌",
    "降血压",
    "降血糖",
    "降血脂",
    "减肥",
    "瘦身",
    "燃脂",
    "排毒",
    "祛痘",
    "祛斑",
    "除皱",
    "生发",
    "防脱",
    "治脱发",
    "增强免疫",
    "提高免疫力",
    "改善睡眠",
    "包治",
    "医用",
    "药用",
    "修复受损",
    "再生",
    "药妆",
    "速效",
    "特效",
    "神效",
    "立竿见影",
    "无副作用",
    "抗过敏",
    "抗衰老",
    "降三高",
    "保健功效",
    "治病",
    "安神",
    "助眠",
    "护肝",
    "养胃",
    "补肾",
    "壮阳",
    "丰胸",
    "增高",
    "医美级",
]
SCARCITY_PATTERNS = [
    r"(仅|只)(剩|有)(最后)?\s*(\d+)\s*(件|单|份|个|瓶|盒)",
    r"最后\s*(\d+)\s*(件|单|份|个|分钟|秒)",
    r"(马上|即将|快要?)(抢光|售罄|卖完|断货|涨价)",
    r"(手慢无|错过再等一年|过了今晚(就)?没有了|倒计时)",
    r"(抢光|秒光|一抢而空|被抢空|抢疯了)",
]
# Low-stock claims: true (and allowed) only when the real stock is known and at or below ``low_stock``.
LOW_STOCK_TERMS = [
    "库存紧张",
    "库存不多",
    "所剩无几",
    "所剩不多",
    "快没货",
    "货不多了",
    "最后一批",
    "少量现货",
    "抢完就没",
    "卖完就没",
    "随时断货",
    "库存告急",
]

_MEASURED_BOUND = re.compile(
    r"最(高|大|长|低|小|多|少|快)[\u4e00-\u9fff]{0,4}?(可达|约|为|是)?\s*[\d.]+\s*[a-zA-Z%\u4e00-\u9fff]{0,3}"
)

# Safe rewrites for the common absolute phrasings; anything else with a banned term is dropped.
_REWRITES = [
    (re.compile(r"(全网|史上)?最低(价)?"), "优惠价"),
    (re.compile(r"最(适合|合适)"), r"很\1"),
    (re.compile(r"最(受欢迎|热销|好卖)"), r"很\1"),
    (re.compile(r"最(好|佳|优|强)"), "很好"),
    (re.compile(r"(100%|百分百|百分之百)"), ""),
    (re.compile(r"(绝对|万能|顶级|顶尖|极致|完美)"), ""),
]


class Violation(BaseModel):
    rule: str
    term: str
    sentence: str
    detail: str = ""  # why, when the term alone doesn't say it (e.g. "原价应为199元")


@dataclass
class ComplianceRules:
    absolute: list[str] = field(default_factory=lambda: list(ABSOLUTE_TERMS))
    medical: list[str] = field(default_factory=lambda: list(MEDICAL_TERMS))
    scarcity: list[str] = field(default_factory=lambda: list(SCARCITY_PATTERNS))
    low_stock_terms: list[str] = field(default_factory=lambda: list(LOW_STOCK_TERMS))
    allow: list[str] = field(default_factory=list)  # phrases never flagged (a merchant's brand name, say)
    low_stock: int = 20  # "库存不多" is true at or below this many units

    def extended(
        self,
        absolute: Iterable[str] = (),
        medical: Iterable[str] = (),
        scarcity: Iterable[str] = (),
        low_stock_terms: Iterable[str] = (),
        allow: Iterable[str] = (),
        low_stock: int | None = None,
    ) -> ComplianceRules:
        return ComplianceRules(
            self.absolute + list(absolute),
            self.medical + list(medical),
            self.scarcity + list(scarcity),
            self.low_stock_terms + list(low_stock_terms),
            self.allow + list(allow),
            self.low_stock if low_stock is None else low_stock,
        )

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None, base: ComplianceRules | None = None) -> ComplianceRules:
        """A merchant's additions over the defaults: ``{"absolute": [...], "medical": [...], "scarcity":
        [regex, ...], "low_stock_terms": [...], "allow": [...], "low_stock": 10}``. Raises ValueError."""
        base = base or DEFAULT_RULES
        # the same file carries the claim checker's lists (agent/claims.py): not ours to read
        o = {k: v for k, v in (overrides or {}).items() if k not in CLAIM_RULE_KEYS or k == "allow"}
        unknown = set(o) - COMPLIANCE_KEYS
        if unknown:
            raise ValueError(f"unknown compliance rule keys {sorted(unknown)}")
        lists = {}
        for k in ("absolute", "medical", "scarcity", "low_stock_terms", "allow"):
            v = o.get(k, [])
            if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
                raise ValueError(f"compliance rules: {k!r} must be a list of non-empty strings")
            lists[k] = [x.strip() for x in v]
        for pat in lists["scarcity"]:
            try:
                re.compile(pat)
            except re.error as e:
                raise ValueError(f"compliance rules: bad scarcity pattern {pat!r}: {e}") from None
        low = o.get("low_stock")
        if low is not None and (not isinstance(low, int) or isinstance(low, bool) or low < 0):
            raise ValueError("compliance rules: 'low_stock' must be a non-negative integer")
        return base.extended(**lists, low_stock=low)

    @classmethod
    def load(cls, path: Path | str) -> ComplianceRules:
        """The defaults extended by a merchant's JSON file (the defaults when the file is absent)."""
        p = Path(path)
        if not p.is_file():
            return DEFAULT_RULES
        return cls.from_overrides(json.loads(p.read_text(encoding="utf-8")))


DEFAULT_RULES = ComplianceRules()
COMPLIANCE_KEYS = frozenset({"absolute", "medical", "scarcity", "low_stock_terms", "allow", "low_stock"})
# Keys of agent/claims.py's ClaimRules, which share a merchant's overrides file with these rules.
CLAIM_RULE_KEYS = frozenset(
    {
        "action",
        "action_en",
        "action_tools",
        "policy_concepts",
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
    }
)
_SENTENCE_RE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;\n]*")


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_RE.findall(text) if s.strip()]


# --- price claims -------------------------------------------------------------------------------
@dataclass
class CouponTerms:
    kind: str = "amount"  # amount | discount
    amount: float | None = None
    discount: float | None = None  # 0.9 = 10% off
    threshold: float = 0.0


@dataclass
class PriceFacts:
    """The real figures a price claim may state: live price, list price, variant prices, the coupons on
    offer, and the texts of any facts the copy cites (a policy's 满199减20 is supported by citing it)."""

    price: float | None = None
    list_price: float | None = None
    variant_prices: list[float] = field(default_factory=list)
    coupons: list[CouponTerms] = field(default_factory=list)
    fact_texts: list[str] = field(default_factory=list)

    @classmethod
    def from_product(cls, product: Any, offers: Iterable[Any] = (), fact_texts: Iterable[str] = ()) -> PriceFacts:
        """From a ``knowledge.schema.Product`` and ``tools.contracts.CouponOffer``s (duck-typed)."""
        variants = []
        for v in (getattr(product, "model_extra", None) or {}).get("variants") or []:
            if isinstance(v, dict) and isinstance(v.get("price"), (int, float)):
                variants.append(float(v["price"]))
        coupons = [
            CouponTerms(kind=o.kind, amount=o.amount, discount=o.discount, threshold=o.threshold or 0.0) for o in offers
        ]
        return cls(
            price=product.price,
            list_price=product.list_price,
            variant_prices=variants,
            coupons=coupons,
            fact_texts=list(fact_texts),
        )

    # what each kind of claim may say ------------------------------------------------------------
    def live_amounts(self) -> set[float]:
        out = {x for x in [self.price, *self.variant_prices] if x is not None}
        return out | self.after_coupon_amounts()

    def after_coupon_amounts(self) -> set[float]:
        out: set[float] = set()
        for base in [x for x in [self.price, *self.variant_prices] if x is not None]:
            for c in self.coupons:
                if base + 1e-9 < (c.threshold or 0):
                    continue
                if c.kind == "amount" and c.amount:
                    out.add(round(base - c.amount, 2))
                elif c.kind == "discount" and c.discount:
                    out.add(round(base * c.discount, 2))
        return out

    def saving_amounts(self) -> set[float]:
        out = {c.amount for c in self.coupons if c.kind == "amount" and c.amount}
        if self.price is not None and self.list_price and self.list_price > self.price:
            out.add(round(self.list_price - self.price, 2))
            for a in self.after_coupon_amounts():
                out.add(round(self.list_price - a, 2))
        if self.price is not None:
            out |= {round(self.price - a, 2) for a in self.after_coupon_amounts() if a < self.price}
        return out

    def discount_ratios(self) -> set[float]:
        out = {c.discount for c in self.coupons if c.kind == "discount" and c.discount}
        if self.price is not None and self.list_price:
            out.add(self.price / self.list_price)
            out |= {a / self.list_price for a in self.after_coupon_amounts()}
        return out

    def coupon_pairs(self) -> set[tuple[float, float]]:
        return {(c.threshold or 0.0, c.amount) for c in self.coupons if c.kind == "amount" and c.amount}

    def cited_numbers(self) -> set[float]:
        """Money amounts the cited facts state (X元, ¥X, 满X减Y, 减X …): "30ml" in a product name does
        not make "省30元" true."""
        out: set[float] = set()
        for t in self.fact_texts:
            for m in _CITED_MONEY.finditer(t):
                out |= {float(x) for x in m.groups() if x}
        return out

    def any_amounts(self) -> set[float]:
        out = {x for x in [self.price, self.list_price] if x is not None}
        out |= self.live_amounts() | self.saving_amounts()
        for c in self.coupons:
            out |= {x for x in (c.amount, c.threshold) if x}
        return out | self.cited_numbers()


_CITED_MONEY = re.compile(
    r"[¥￥]\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:元|块)|满\s*(\d+(?:\.\d+)?)\s*减\s*(\d+(?:\.\d+)?)|"
    r"减\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*积分"
)
_N = r"[¥￥]?\s*(\d+(?:\.\d+)?)\s*(?:元|块钱|块)?"
_LIST_RE = re.compile(
    r"(原价|划线价|日常价|专柜价|吊牌价|门店价|市场价|官方价|零售价|平时价|平常价|平时要|平时卖|平时)"
    r"\s*(?:是|为|要|卖|：|:)?\s*" + _N
)
_LIVE_RE = re.compile(
    r"(直播价|到手价|券后价|现价|活动价|秒杀价|折后价|专享价|福利价|直播间价|今晚价|现在只要|只要|仅需|"
    r"仅要|仅售|只需|低至|才要|才卖|到手只要|到手)\s*(?:是|为|：|:)?\s*" + _N
)
_COUPON_RE = re.compile(r"满\s*(\d+(?:\.\d+)?)\s*元?\s*减\s*(\d+(?:\.\d+)?)\s*(?:元|块)?")
_COUPON_DISC_RE = re.compile(r"满\s*(\d+(?:\.\d+)?)\s*元?\s*打\s*(\d{1,2}(?:\.\d)?)\s*折")
_NOTHRESH_RE = re.compile(
    r"(?:无门槛\s*(?:减)?\s*(\d+(?:\.\d+)?)\s*元?(?:券)?|(\d+(?:\.\d+)?)\s*元\s*(?:无门槛|优惠)?券)"
)
_DISC_RE = re.compile(r"(?<![\d.])(\d{1,2}(?:\.\d)?)\s*折(?!叠|痕|现|扣)|(半价)")
_SAVE_RE = re.compile(r"(立省|省下|省了|省|立减|直降|便宜了|便宜|优惠了|少花)\s*" + _N)
_MONEY_RE = re.compile(r"[¥￥]\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:元|块钱|块(?=[，。！？!?,、\s]|$))")


def _in(x: float, allowed: Iterable[float], tol: float = 0.011) -> bool:
    for a in allowed:
        if a is None:
            continue
        if abs(x - a) <= tol or abs(x - round(a)) <= tol or abs(x - round(a, 1)) <= tol:
            return True
    return False


def _zhe(raw: str) -> float:
    v = float(raw)
    return v / 100 if v >= 10 else v / 10  # "95折" = 0.95, "6.5折" = 0.65


def price_violations(sentence: str, prices: PriceFacts, scan: str | None = None) -> list[Violation]:
    """Price claims in one sentence that ``prices`` doesn't support (``scan``: the sentence with allowed
    phrases masked, same length)."""
    out: list[Violation] = []
    text = sentence if scan is None else scan
    taken: list[tuple[int, int]] = []
    cited = prices.cited_numbers()

    def bad(m: re.Match[str], detail: str) -> None:
        out.append(Violation(rule="price", term=m.group(0).strip(), sentence=sentence, detail=detail))

    def take(m: re.Match[str]) -> bool:
        s, e = m.span()
        if any(s < te and ts < e for ts, te in taken):
            return False
        taken.append((s, e))
        return True

    cited_blob = "".join("".join(t.split()) for t in prices.fact_texts)
    for m in _COUPON_RE.finditer(text):
        if not take(m):
            continue
        thr, amt = float(m.group(1)), float(m.group(2))
        if (
            not any(abs(thr - a) < 0.01 and abs(amt - b) < 0.01 for a, b in prices.coupon_pairs())
            and f"满{m.group(1)}减{m.group(2)}" not in cited_blob
        ):
            bad(m, "no coupon on offer with these terms")
    for m in _COUPON_DISC_RE.finditer(text):
        if not take(m):
            continue
        d = _zhe(m.group(2))
        if not any(c.kind == "discount" and c.discount and abs(c.discount - d) < 0.006 for c in prices.coupons):
            bad(m, "no discount coupon on offer with these terms")
    for m in _NOTHRESH_RE.finditer(text):
        if not take(m):
            continue
        amt = float(m.group(1) or m.group(2))
        if not _in(amt, [c.amount for c in prices.coupons if c.kind == "amount" and c.amount is not None]) and not _in(
            amt, cited
        ):
            bad(m, "no coupon of this amount on offer")
    for m in _LIST_RE.finditer(text):
        if not take(m):
            continue
        v = float(m.group(2))
        if prices.list_price is None:
            bad(m, "the product has no list price")
        elif not _in(v, [prices.list_price]):
            bad(m, f"list price is {prices.list_price:g}元")
    for m in _LIVE_RE.finditer(text):
        if not take(m):
            continue
        v = float(m.group(2))
        if not _in(v, prices.live_amounts()):
            want = f"{prices.price:g}元" if prices.price is not None else "unknown"
            bad(m, f"live price is {want}")
    for m in _SAVE_RE.finditer(text):
        if not take(m):
            continue
        v = float(m.group(2))
        if not _in(v, prices.saving_amounts()) and not _in(v, cited):
            bad(m, "saving not supported by list price, live price or coupons")
    for m in _DISC_RE.finditer(text):
        if not take(m):
            continue
        ratio = 0.5 if m.group(2) else _zhe(m.group(1))
        ratios = prices.discount_ratios()
        # rounding the real ratio up (6.48折 → "6.5折") is fine; claiming a deeper discount is not
        ok = any(r - 0.006 <= ratio <= r + 0.051 for r in ratios) or (m.group(1) and f"{m.group(1)}折" in cited_blob)
        if not ok:
            real = (
                f"{prices.price / prices.list_price * 10:.1f}折"
                if prices.price is not None and prices.list_price
                else "no list price"
            )
            bad(m, f"discount not supported (live/list = {real})")
    for m in _MONEY_RE.finditer(text):
        if not take(m):
            continue
        v = float(m.group(1) or m.group(2))
        if not _in(v, prices.any_amounts()):
            bad(m, "amount matches no real price, coupon or cited fact")
    return out


def check(
    text: str,
    rules: ComplianceRules = DEFAULT_RULES,
    real_stock: int | None = None,
    negated_ok: bool = True,
    *,
    prices: PriceFacts | None = None,
    names: Iterable[str] = (),
) -> list[Violation]:
    """Every violation in ``text``. ``real_stock`` lets a true stock statement through; ``prices`` (the real
    figures) turns on the price-claim rule; ``names`` (the catalog's product names said) are the merchant's
    names, not claims ("儿童增高垫" claims no 增高)."""
    out: list[Violation] = []
    keep = [*rules.allow, *sorted(names, key=len, reverse=True)]
    for s in sentences(text):
        sc = s
        for a in keep:
            sc = sc.replace(a, " " * len(a))
        # A superlative that bounds a measurement ("最高15cm", "最大输出65W", "最长续航30小时") states a
        # spec, not a ranking: blank it before looking for absolute terms.
        sc = _MEASURED_BOUND.sub(lambda m: " " * len(m.group(0)), sc)
        for term in rules.absolute:
            if term in sc and not (term == "第一" and re.search(r"第一(次|步|件事|天|期|批|时间|眼|印象)", sc)):
                if term == "最新" and "最新款" not in sc:
                    continue
                out.append(Violation(rule="absolute", term=term, sentence=s))
                break
        for term in rules.medical:
            if term in sc and not (
                negated_ok and re.search(rf"(不能|无法|不可|不具备|没有|并非|不是)[^，。]*{term}", sc)
            ):
                out.append(Violation(rule="medical", term=term, sentence=s))
                break
        flagged = False
        for pat in rules.scarcity:
            m = re.search(pat, sc)
            if m:
                nums = [int(x) for x in re.findall(r"\d+", m.group())]
                if real_stock is not None and nums and nums[0] == real_stock and "件" in m.group():
                    continue  # a true stock figure is information, not fake scarcity
                out.append(Violation(rule="scarcity", term=m.group(), sentence=s))
                flagged = True
                break
        if not flagged:
            for term in rules.low_stock_terms:
                if term in sc:
                    if real_stock is not None and 0 < real_stock <= rules.low_stock:
                        continue  # true: the stock really is low
                    detail = "stock unknown" if real_stock is None else f"real stock is {real_stock}"
                    out.append(Violation(rule="scarcity", term=term, sentence=s, detail=detail))
                    break
        if prices is not None:
            out.extend(price_violations(s, prices, sc))
    return out


def enforce(
    text: str,
    rules: ComplianceRules = DEFAULT_RULES,
    real_stock: int | None = None,
    *,
    prices: PriceFacts | None = None,
    names: Iterable[str] = (),
) -> tuple[str, list[Violation]]:
    """Rewrite what can be rewritten safely, drop sentences that still violate; return (text, violations)."""
    names = list(names)
    violations = check(text, rules, real_stock, prices=prices, names=names)
    if not violations:
        return text, []
    kept: list[str] = []
    for s in sentences(text):
        if not check(s, rules, real_stock, prices=prices, names=names):
            kept.append(s)
            continue
        fixed = s
        for pat, repl in _REWRITES:
            fixed = pat.sub(repl, fixed)
        if fixed.strip() and not check(fixed, rules, real_stock, prices=prices, names=names):
            kept.append(fixed)
    return "".join(kept).strip(), violations
