"""Every check a copy passes before it is used, whoever wrote it (model or template):
length per channel, compliance (absolute / medical / scarcity / price), every number backed by a fact,
the product named, the chosen angle in the lead, and the one claim checker every outgoing sentence
passes (``agent.claims``: action and promise claims, contact, medical, ranking, brands, politics,
other viewers, prompt leaks), sentence by sentence with ``source="copy"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent import compliance
from agent.claims import ClaimChecker, ClaimContext, ClaimRules, numbers
from agent.compliance import ComplianceRules, Violation
from agent.messages import ToolCallRecord
from copywriting.channels import SMS_OPT_OUT, assemble, length_issues, sms_signature
from copywriting.facts import Material
from copywriting.schema import Citation
from copywriting.templates import INTERJECTIONS
from knowledge.schema import Fact

# Claims a small model likes to invent; each must be backed by this product's own facts.
CLAIM_WORDS = [
    "专利",
    "认证",
    "进口",
    "有机",
    "获奖",
    "同款",
    "临床",
    "实验",
    "检测",
    "孕妇",
    "孕期",
    "婴儿",
    "儿童",
    "宝宝",
    "防腐剂",
    "香精",
    "酒精",
    "激素",
    "敏感肌",
    "过敏",
    "保修",
    "质保",
    "包邮",
    "正品",
    "原装",
    "官方",
    "天然",
    "纯天然",
    "手工",
    "现做",
    "当天发货",
    "顺丰",
]
_NEGATED_CLAIM = re.compile(r"(无添加|零添加|0添加|不添加|不含|无)([\u4e00-\u9fff]{2})")
_SUITS_CLAIM = re.compile(r"适合([\u4e00-\u9fff]{1,4}?)(肌|皮|人群|宝宝|孕妇|老人|儿童)")
INTERNAL_WORDS = ["预热", "召回", "素材", "文案", "角度", "下决心", "观众", "发给"]  # the brief's words, not copy
LEAD_CHARS = 22  # "leads with": within the push title, or the first 22 characters of the text


@dataclass
class Verdict:
    issues: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)  # the material facts the text uses
    citations: list[Citation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues and not self.violations


def lead_segment(title: str | None, body: str) -> str:
    """Where the angle must show: the push title, else the opening (after any 家人们) up to ~16 chars."""
    if title:
        return title
    text = body
    for w in INTERJECTIONS:
        if text.startswith(w):
            text = text[len(w) :].lstrip("，,！! ")
            break
    return text[:LEAD_CHARS]


def names(m: Material) -> list[str]:
    return [n for n in [m.name, m.product.name, *m.product.aliases] if n]


def leads_with(angle: str, m: Material, title: str | None, body: str) -> bool:
    seg = lead_segment(title, body)
    if angle == "price":
        return m.price in numbers(seg) or bool(m.coupon and m.coupon_phrase() in seg)
    if angle == "focus":
        return any(n in seg for n in names(m))
    if angle == "member":
        return any(w in seg for w in ("铁粉", "会员", "粉丝"))
    if angle == "quality":
        marks = [v[:4] for _, v, _ in m.quality] + [k for k, _, _ in m.quality]
        if m.warranty:
            marks += [m.warranty[0], "退换", "质保", "售后"]
        return any(x and x in seg for x in marks)
    # general: the product or its selling point
    return any(n in seg for n in names(m)) or any(sp[:6] in seg for sp, _ in m.selling_points)


def unsupported_claims(text: str, m: Material) -> list[str]:
    """Claim words in ``text`` that none of the product's facts mention (无添加防腐剂, 适合敏感肌, 进口 …)."""
    known = m.known_text
    flat = "".join(text.split())
    out = [w for w in CLAIM_WORDS if w in flat and w not in known]
    for mt in _NEGATED_CLAIM.finditer(flat):
        if mt.group(1) != "无" or mt.group(2) in ("添加", "香精", "酒精", "防腐", "色素", "糖分", "蔗糖"):
            if mt.group(2) not in known and mt.group(0) not in out:
                out.append(mt.group(0))
    for mt in _SUITS_CLAIM.finditer(flat):
        if mt.group(1) + mt.group(2) not in known and mt.group(1) not in known:
            out.append(mt.group(0))
    return out


def material_facts(m: Material) -> list[Fact]:
    out = [m.price_fact] if m.price_fact else []
    out += [f for _, _, f in m.quality] + [f for _, f in m.selling_points]
    for x in (m.warranty, m.member_benefit):
        if x:
            out.append(x[1])
    return out


def used_facts(text: str, m: Material) -> list[Fact]:
    """The material facts a text uses: its value, a distinctive figure, or most of its wording appears."""
    flat = "".join(text.split())
    nums = numbers(flat)
    out: list[Fact] = []
    if m.price_fact and (m.price in nums or (m.list_price and m.list_price in nums)):
        out.append(m.price_fact)
    unnamed = flat
    for n in (m.product.name, m.name):  # a value inside the product's own name isn't a use of the fact
        unnamed = unnamed.replace("".join(n.split()), "")
    for k, v, f in m.quality:
        if v and v in unnamed:
            out.append(f)
    for sp, f in m.selling_points:
        grams = {sp[i : i + 2] for i in range(len(sp) - 1)}
        if grams and len([g for g in grams if g in flat]) / len(grams) >= 0.5:
            out.append(f)
    for x in (m.warranty, m.member_benefit):
        if x and (x[0] in flat or (numbers(x[0]) and numbers(x[0]) <= nums)):
            out.append(x[1])
    seen, uniq = set(), []
    for f in out:
        if f.id not in seen:
            seen.add(f.id)
            uniq.append(f)
    return uniq


def allowed_numbers(m: Material, facts: list[Fact]) -> set[str]:
    allowed: set[str] = set()
    for f in facts:
        allowed |= numbers(f.text)
    pf = m.price_facts(facts)
    for x in pf.any_amounts():
        allowed |= numbers(f"{x:g}")
    for r in pf.discount_ratios():
        allowed |= {f"{r * 10:.1f}".rstrip("0").rstrip("."), f"{round(r * 10)}", f"{round(r * 100)}"}
    if m.coupon:
        allowed |= numbers(m.coupon_phrase())
    t = m.show_time()
    if t:
        h, mi = t.split(":")
        allowed |= {h, mi, str(int(h)), str(int(mi)), str(int(h) - 12) if int(h) > 12 else h}
    allowed |= numbers(m.name) | numbers(m.product.name)
    return allowed


_CHECKERS: dict[int, tuple[object, ClaimChecker]] = {}
_COMPLIANCE_RULES = ("absolute", "medical", "scarcity", "price")


def claim_checker(rules: ComplianceRules | ClaimRules) -> ClaimChecker:
    """The claim checker for these rules (a merchant's compliance rules extend its compliance part)."""
    hit = _CHECKERS.get(id(rules))
    if hit is None or hit[0] is not rules:
        claim_rules = rules if isinstance(rules, ClaimRules) else ClaimRules(compliance=rules)
        if len(_CHECKERS) > 64:
            _CHECKERS.clear()
        hit = (rules, ClaimChecker(claim_rules))
        _CHECKERS[id(rules)] = hit
    return hit[1]


def claim_issues(content: str, m: Material, cited: list[Fact], allowed: set[str], checker: ClaimChecker) -> list[str]:
    """What the claim checker drops in the copy, sentence by sentence (compliance and numbers are reported
    by their own checks above, so only the other rules are listed here)."""
    known = [Fact(id="copy:known", kind="doc", text=m.known_text)] if m.known_text else []
    ctx = ClaimContext(
        facts=tuple(cited + known),
        tool_calls=(ToolCallRecord(name="copy_data", arguments={}, result=" ".join(sorted(allowed))),),
        catalog_names=names(m) + [n for n in (m.product.series, m.product.category, m.shop) if n],
        real_stock=m.stock,
        prices=m.price_facts(cited),
        source="copy",
    )
    out: list[str] = []
    for s in compliance.sentences(content):
        for f in checker.check(s, ctx).flags:
            rule = f.split(":")[1]
            if rule not in _COMPLIANCE_RULES and rule != "number":
                out.append(f)
    return list(dict.fromkeys(out))


def check(
    m: Material,
    angle: str,
    channel: str,
    title: str | None,
    body: str,
    rules: ComplianceRules | ClaimRules,
    *,
    extra_citations: list[Citation] = (),
    recall: str | None = None,
) -> Verdict:
    """``rules``: the merchant's compliance rules, or its claim rules (which carry them)."""
    comp = rules.compliance if isinstance(rules, ClaimRules) else rules
    v = Verdict()
    v.issues += length_issues(channel, m.shop, title, body)
    full = assemble(channel, m.shop, title, body)
    content = f"{title or ''}。{body}"
    v.facts = used_facts(content, m)
    cited = material_facts(m)  # the model saw these; any of them backs a number or a price claim
    v.violations = compliance.check(content, comp, real_stock=m.stock, prices=m.price_facts(cited))
    allowed = allowed_numbers(m, cited)
    bad_nums = numbers(content) - allowed
    if bad_nums:
        v.issues.append(f"numbers not in the facts: {sorted(bad_nums)}")
    dropped = claim_issues(content, m, cited, allowed, claim_checker(rules))
    if dropped:
        v.issues.append(f"claim checker: {dropped}")
    if not any(n in full for n in names(m)):
        v.issues.append("the product is not named")
    if "购物车" in content and recall != "cart_unpaid":
        v.issues.append("mentions a cart this viewer doesn't have")
    inner = [w for w in INTERNAL_WORDS if w in content]
    if inner:
        v.issues.append(f"internal wording: {inner}")
    claims = unsupported_claims(content, m)
    if claims:
        v.issues.append(f"claims not in the facts: {claims}")
    for a, b in ("（", "）"), ("(", ")"), ("“", "”"), ("「", "」"), ("【", "】"):
        if content.count(a) != content.count(b):
            v.issues.append(f"unbalanced {a}{b}: cut off?")
            break
    if not leads_with(angle, m, title, body):
        v.issues.append(f"does not lead with the {angle} angle")
    if title and len(title) >= 6 and title in body:
        v.issues.append("the body repeats the title")
    if channel == "sms" and (SMS_OPT_OUT in body or sms_signature(m.shop) in body):
        v.issues.append("signature / opt-out belong to the code, not the text")
    v.citations = _citations(m, v.facts, content, extra_citations)
    if not v.citations:
        v.issues.append("uses none of the facts")
    return v


def _citations(m: Material, facts: list[Fact], text: str, extra: list[Citation]) -> list[Citation]:
    from copywriting.facts import cite, coupon_citation, show_citation

    out = [cite(f) for f in facts]
    if m.coupon and m.coupon_phrase() in "".join(text.split()):
        out.append(coupon_citation(m.coupon))
    t = m.show_time()
    if m.show and t and t in text:
        out.append(show_citation(m.show, m.product.sku, m.tz))
    seen = {c.id for c in out}
    for c in extra:
        if c.id not in seen:
            out.append(c)
            seen.add(c.id)
    return out
