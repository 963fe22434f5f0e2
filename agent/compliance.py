"""Advertising-law and claims compliance for every piece of text the agent emits.

Rules (each violation names its rule so a merchant sees why a line was changed):
- ``absolute``: 《广告法》第九条 absolute terms (最, 第一, 顶级, 国家级, 100% …);
- ``medical``: medical / efficacy claims for cosmetics and food (治疗, 根治, 消炎 …);
- ``scarcity``: urgency or stock claims (仅剩N件, 马上抢光, 最后N分钟) the real stock doesn't support.
Merchants extend the word lists through ``ComplianceRules``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel

ABSOLUTE_TERMS = [
    "全网最低", "史上最低", "最低价", "最便宜", "最好", "最佳", "最强", "最优", "最新", "最先进", "最高级", "最受欢迎",
    "最热销", "最正宗", "最具", "第一品牌", "销量第一", "排名第一", "全国第一", "第一", "NO.1", "No.1", "no.1", "TOP1",
    "顶级", "顶尖", "极品", "国家级", "世界级", "全球级", "宇宙级", "最高", "100%", "百分百", "百分之百", "绝对", "万能",
    "唯一", "独一无二", "史无前例", "前无古人", "无敌", "永久", "王牌", "领袖品牌", "领导品牌", "冠军", "极致", "完美",
    "国货之光", "特供", "专供", "填补国内空白",
]
MEDICAL_TERMS = [
    "治疗", "治愈", "根治", "疗效", "药效", "处方", "医治", "消炎", "抗炎", "杀菌", "抑菌", "抗菌", "抗癌", "防癌",
    "降血压", "降血糖", "降血脂", "减肥", "瘦身", "燃脂", "排毒", "祛痘", "祛斑", "除皱", "生发", "防脱", "治脱发",
    "增强免疫", "提高免疫力", "改善睡眠", "包治", "医用", "药用", "修复受损", "再生",
]
SCARCITY_PATTERNS = [
    r"(仅|只)(剩|有)(最后)?\s*(\d+)\s*(件|单|份|个|瓶|盒)",
    r"最后\s*(\d+)\s*(件|单|份|个|分钟|秒)",
    r"(马上|即将|快要?)(抢光|售罄|卖完|断货|涨价)",
    r"(手慢无|错过再等一年|过了今晚(就)?没有了|倒计时)",
]

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


@dataclass
class ComplianceRules:
    absolute: list[str] = field(default_factory=lambda: list(ABSOLUTE_TERMS))
    medical: list[str] = field(default_factory=lambda: list(MEDICAL_TERMS))
    scarcity: list[str] = field(default_factory=lambda: list(SCARCITY_PATTERNS))

    def extended(self, absolute: list[str] = (), medical: list[str] = (), scarcity: list[str] = ()) -> "ComplianceRules":
        return ComplianceRules(self.absolute + list(absolute), self.medical + list(medical),
                               self.scarcity + list(scarcity))


DEFAULT_RULES = ComplianceRules()
_SENTENCE_RE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;\n]*")


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_RE.findall(text) if s.strip()]


def check(text: str, rules: ComplianceRules = DEFAULT_RULES, real_stock: int | None = None,
          negated_ok: bool = True) -> list[Violation]:
    """Every violation in ``text``. ``real_stock`` lets a true stock statement through."""
    out: list[Violation] = []
    for s in sentences(text):
        for term in rules.absolute:
            if term in s and not (term == "第一" and re.search(r"第一(次|步|件事|天|期|批)", s)):
                if term == "最新" and "最新款" not in s:
                    continue
                out.append(Violation(rule="absolute", term=term, sentence=s))
                break
        for term in rules.medical:
            if term in s and not (negated_ok and re.search(rf"(不能|无法|不可|不具备|没有|并非|不是)[^，。]*{term}", s)):
                out.append(Violation(rule="medical", term=term, sentence=s))
                break
        for pat in rules.scarcity:
            m = re.search(pat, s)
            if m:
                nums = [int(x) for x in re.findall(r"\d+", m.group())]
                if real_stock is not None and nums and nums[0] == real_stock and "件" in m.group():
                    continue  # a true stock figure is information, not fake scarcity
                out.append(Violation(rule="scarcity", term=m.group(), sentence=s))
                break
    return out


def enforce(text: str, rules: ComplianceRules = DEFAULT_RULES, real_stock: int | None = None) -> tuple[str, list[Violation]]:
    """Rewrite what can be rewritten safely, drop sentences that still violate; return (text, violations)."""
    violations = check(text, rules, real_stock)
    if not violations:
        return text, []
    kept: list[str] = []
    for s in sentences(text):
        if not check(s, rules, real_stock):
            kept.append(s)
            continue
        fixed = s
        for pat, repl in _REWRITES:
            fixed = pat.sub(repl, fixed)
        if fixed.strip() and not check(fixed, rules, real_stock):
            kept.append(fixed)
    return "".join(kept).strip(), violations
