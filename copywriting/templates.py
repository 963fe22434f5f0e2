"""Safe template copy: the fallback when the model's drafts fail a check, and the lead every copy opens
with. Built only from the gathered material, so every word is a fact or a neutral phrase; candidates
go from rich to minimal and the first that passes every check is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from copywriting.channels import spec
from copywriting.facts import Material, coupon_citation, show_citation
from copywriting.schema import Citation
from knowledge.schema import Fact

MATERIAL_KEYS = {"面料", "主要成分", "配料", "填充物", "材质", "蜡材", "姆米", "内含"}
INTERJECTIONS = ("家人们", "宝子们", "姐妹们", "宝宝们", "亲爱的", "亲", "朋友们")


@dataclass
class Part:
    text: str
    facts: list[Fact] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    short: Part | None = None  # a shorter way to say it, for tight channels


def _price_part(m: Material, with_list: bool = True) -> Part:
    pf = [m.price_fact] if m.price_fact else []
    t = f"直播价{m.price}元"
    if with_list and m.list_price:
        return Part(t + f"（日常价{m.list_price}元）", pf, short=Part(t, pf))
    return Part(t, pf)


def _coupon_part(m: Material, verb: str = "可用") -> Part | None:
    if not m.coupon:
        return None
    return Part(
        f"{verb}{m.coupon_phrase()}券" if "券" not in m.coupon_phrase() else f"{verb}{m.coupon_phrase()}",
        citations=[coupon_citation(m.coupon)],
    )


def _show_part(m: Material, phase: str, channel: str, recall: str | None) -> Part | None:
    cit = [show_citation(m.show, m.product.sku, m.tz)] if m.show else []
    if phase == "pre":
        t = m.show_time()
        if t:
            seg = m.show.segment_for(m.product.sku) if m.show else None
            return Part(f"{t}{'上架讲解' if seg else '开播'}，记得来看", citations=cit)
        return Part("开播提醒你来看")
    if phase == "live":
        if channel == "host":
            return Part("想要的家人们点下方链接看看")
        if channel == "popup":
            return Part("点击查看")
        return Part("正在直播讲解，点进来看看")
    return Part(
        {
            "cart_unpaid": "购物车里还给你留着",
            "watched_no_buy": "还在考虑的话可以再看看",
            "left_early": "刚才没看完，给你补上重点",
            "missed_show": "错过了直播？给你补上重点",
        }.get(recall or "watched_no_buy", "还在考虑的话可以再看看")
    )


def lead(m: Material, angle: str, max_len: int = 20) -> Part:
    """The opening every copy of this angle starts with (the push title)."""
    return lead_options(m, angle, max_len)[0]


def lead_options(m: Material, angle: str, max_len: int = 20) -> list[Part]:
    """Openings for this angle that fit ``max_len``, fullest first (all name the product where they can)."""
    name = m.name
    options: list[Part] = []
    if angle == "price":
        pf = [m.price_fact] if m.price_fact else []
        options = [Part(f"{name}直播价{m.price}元", pf), Part(f"{name}{m.price}元", pf), Part(f"直播价{m.price}元", pf)]
    elif angle == "quality" and m.quality:
        k, v, f = m.quality[0]
        if k in MATERIAL_KEYS:
            options = [Part(f"{name}：{v}", [f]), Part(f"{k}：{v}", [f]), Part(v, [f])]
        else:
            options = [Part(f"{name}{k}{v}", [f]), Part(f"{k}{v}", [f])]
    elif angle == "quality" and m.warranty:
        options = [Part(f"{name}{m.warranty[0]}", [m.warranty[1]]), Part(m.warranty[0], [m.warranty[1]])]
    elif angle == "member" and m.member_benefit:
        options = [Part(m.member_benefit[0], [m.member_benefit[1]])]
    elif angle == "focus":
        options = [Part(f"你关注的{name}"), Part(name)]
    else:
        options = [Part(name)]
    fits = [o for o in options if len(o.text) <= max_len]
    return fits or [Part(name[:max_len])]


def body_parts(m: Material, angle: str, phase: str, channel: str, recall: str | None) -> list[Part]:
    """What follows the lead, most important first (the tail is dropped first when space runs out)."""
    parts: list[Part | None] = []
    sp = m.selling_points[0] if m.selling_points else None
    if angle == "price":
        if m.list_price:
            parts.append(Part(f"日常价{m.list_price}元", [m.price_fact] if m.price_fact else []))
        parts.append(_coupon_part(m))
    elif angle == "quality":
        if m.quality and len(m.quality) > 1:
            k, v, f = m.quality[1]
            parts.append(Part(f"{k}{v}", [f]))
        if m.warranty:
            parts.append(Part(m.warranty[0], [m.warranty[1]]))
    elif angle == "focus":
        parts.append(_price_part(m, with_list=True))
        parts.append(_coupon_part(m))
    elif angle == "member":
        parts.append(
            Part(
                f"{m.name}{_price_part(m, with_list=False).text}",
                [m.price_fact] if m.price_fact else [],
                short=Part(m.name),
            )
        )
    else:
        if sp:
            parts.append(Part(sp[0], [sp[1]]))
        parts.append(_price_part(m, with_list=False))
    parts.append(_show_part(m, phase, channel, recall))
    return [p for p in parts if p is not None]


def _join(parts: list[Part], end: str = "。") -> str:
    return "，".join(p.text for p in parts) + end if parts else ""


@dataclass
class Draft:
    title: str | None
    body: str
    facts: list[Fact]
    citations: list[Citation]


def _variants(parts: list[Part]) -> list[tuple[list[Part], int]]:
    """Subsets of the body parts to try, each with how much was shortened: every prefix, the first part
    with the phase line, and each of those with the parts' short forms."""
    seqs: list[list[Part]] = []
    for k in range(len(parts), -1, -1):
        seqs.append(parts[:k])
        if k > 1:
            seqs.append(parts[:1] + parts[-1:])
    if len(parts) > 1:
        seqs.append(parts[-1:])
    out: list[tuple[list[Part], int]] = []
    for seq in seqs:
        out.append((seq, 0))
        if any(p.short for p in seq):
            out.append(([p.short or p for p in seq], 1))
    return out


def candidates(m: Material, angle: str, phase: str, channel: str, recall: str | None) -> list[Draft]:
    """Template drafts, most informative first: the caller keeps the first that passes every check."""
    s = spec(channel, m.shop)
    parts = body_parts(m, angle, phase, channel, recall)
    scored: list[tuple[tuple, Draft]] = []
    end = "！" if channel == "host" else "。"
    prefix = "家人们，" if channel == "host" else ""

    def draft(title: Part | None, body: list[Part]) -> Draft:
        used = ([title] if title else []) + body
        facts = [f for p in used for f in p.facts]
        cits = [c for p in used for c in p.citations]
        return Draft(title.text if title else None, prefix + _join(body, end), facts, cits)

    if channel == "push":
        for li, ld in enumerate(lead_options(m, angle, s.title_max)):
            named = m.name in ld.text or angle == "member"
            for seq, shortened in _variants(parts):
                if seq:
                    d = draft(ld, seq if named else [Part(m.name)] + seq)
                    scored.append(((-len(seq), shortened, li), d))
        scored.sort(key=lambda x: x[0])
        return [d for _, d in scored] + [draft(Part(m.name[: s.title_max]), [_price_part(m, with_list=False)])]
    for li, ld in enumerate(lead_options(m, angle, s.body_max - 2)):
        if m.name not in ld.text and angle != "member":
            ld = Part(f"{m.name}，{ld.text}", ld.facts, ld.citations)
        for seq, shortened in _variants(parts):
            d = draft(None, [ld] + seq)
            if len(d.body) <= s.body_max:
                scored.append(((-len(seq), shortened, li), d))
    scored.sort(key=lambda x: x[0])
    tail = [draft(None, [Part(m.name), _price_part(m, with_list=False)]), draft(None, [Part(m.name[:12])])]
    return [d for _, d in scored] + tail
