"""Spoken scripts composed from knowledge-base facts with templates: fast, always available,
grounded, compliant — and never the same sentence twice in a show.

Every line goes through ``host.answers.guard`` (``agent.compliance`` with the product's real price,
stock and the ledger's coupons, plus number grounding) and through ``ShowMemory.admit``, which
refuses any sentence already said in this show. Variety comes from rotating facts, templates and
lead-ins per pass over the rundown; when a product's material is used up the host says less (and
answers more), rather than repeating itself. ``Rephraser`` lets the LLM, when there is one, reword
prepared lines ahead of time within a budget — the template line stays if the model is slow, down,
or changes a number.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.claims import numbers
from audience.coupons import describe
from host.answers import guard, short_name
from host.coupons import as_offer
from host.mix import RoomMix
from knowledge.facts import fmt_price
from knowledge.schema import Fact, Product
from knowledge.store import LoadedVersion
from tools.contracts import CouponOffer

log = logging.getLogger("liveroom.host")

_PUNCT = re.compile(r"[\s\W_]+", re.U)


@dataclass
class Line:
    text: str
    kind: str = "script"  # script | coupon | bridge | hook | greeting | thanks | answer | filler
    sku: str | None = None
    facts: list[Fact] = field(default_factory=list)
    source: str = "template"  # template | llm | fastpath | system
    product: Product | None = None


class ShowMemory:
    """Every sentence said in this show (normalized hash): nothing is said twice verbatim."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(_PUNCT.sub("", text.lower()).encode(), digest_size=12).digest()

    def seen(self, text: str) -> bool:
        return self._key(text) in self._seen

    def admit(self, text: str) -> bool:
        k = self._key(text)
        if k in self._seen:
            return False
        self._seen.add(k)
        return True

    def forget(self, text: str) -> None:
        self._seen.discard(self._key(text))

    def __len__(self) -> int:
        return len(self._seen)


# Lead-ins that make a second pass over the same fact a different sentence (tried after templates).
LEAD_INS = [
    "",
    "再跟大家说一下，",
    "刚进来的朋友听一下，",
    "给新朋友再讲讲，",
    "再强调一下，",
    "没听清的朋友注意，",
    "还是这款，",
    "重点回顾一下，",
    "简单说一下，",
    "给大家总结一下，",
    "补充一句，",
    "想了解的朋友听好，",
]

T_INTRO = [
    "{hook}接下来给大家介绍{short}。",
    "{hook}下面这款是{short}。",
    "{hook}我们来看{short}。",
    "{hook}现在给大家上的是{name}。",
    "{hook}这一段讲{short}。",
    "{hook}大家看一下{short}。",
]
T_SP = [
    "{short}的亮点之一：{sp}。",
    "给大家讲讲{short}，{sp}。",
    "大家看，{sp}。",
    "重点说一下，{sp}。",
    "关于{short}，{sp}。",
    "{sp}，这是{short}的特点。",
]
T_SPEC = ["{short}的{k}是{v}。", "给大家报一下{k}：{v}。", "{k}方面，{v}。", "说一下{k}，{v}。"]
T_FAQ = ["很多朋友问{q}{a}", "经常有人问：{q}{a}", "有朋友关心{q}统一回答一下：{a}", "{q}我来说一下：{a}"]
T_SUIT = ["{short}适合{v}的朋友。", "{v}的朋友可以重点看看{short}。", "如果你是{v}，{short}很合适。"]
# Said in the fact's own words ("不适合：…"): no usage verb (吃/穿/涂) guessed from the category.
T_NOT = ["提醒一下，{short}不适合{v}。", "要说明一下，{short}不太适合{v}。", "{short}不适合{v}，大家按需选择。"]
T_PRICE = [
    "{short}今天直播价{price}元，日常价{list}元。",
    "价格给大家说清楚：直播价{price}元，日常价{list}元。",
    "今天直播间拍{short}，直播价{price}元。",
    "{short}日常价{list}元，今天直播价{price}元。",
]
T_PRICE_NOLIST = ["{short}今天直播价{price}元。", "价格说清楚：{short}直播价{price}元。"]
T_AFTER_COUPON = ["再用「{title}」，到手价{after}元。", "领了「{title}」，{short}到手价{after}元。"]
T_COUPON_MENTION = [
    "今天还可以领「{title}」，{desc}，结算时可以用。",
    "别忘了领「{title}」，{desc}。",
    "想更划算的朋友，记得领「{title}」，{desc}。",
]
T_STOCK_LOW = ["{short}库存不多了，现在现货{stock}件。", "提醒一下，{short}库存不多了。"]
T_STOCK = ["{short}现在有现货，拍下就安排。", "{short}现货在库，喜欢的朋友可以下单。"]
T_SOLDOUT = ["{short}目前已经售罄，补货了会在直播间通知大家。", "抱歉，{short}暂时没货了，大家可以先看看其他款。"]
T_INTERACT = [
    "想要{short}的朋友在公屏扣1。",
    "对{short}有什么问题，直接打在公屏上。",
    "还在犹豫的朋友，把你关心的问题打在公屏上，我帮你看看适不适合。",
    "喜欢的朋友点点关注，后面还有福利。",
    "觉得{short}不错的朋友，公屏扣个想要。",
    "有用过{short}的朋友，可以在公屏说说感受。",
    "点击小黄车就能看到{short}的详情。",
]
T_CLOSE_SEG = [
    "喜欢{short}的朋友点小黄车就能下单。",
    "{short}就先讲到这里，有问题随时打在公屏上。",
    "{short}的链接在小黄车里，需要的朋友自己看一下。",
]
T_BRIDGE = [
    "好，我们接着说{short}。",
    "回到{short}。",
    "继续看{short}。",
    "说回{short}。",
    "我们继续讲{short}。",
    "接着刚才的{short}说。",
    "好，继续给大家介绍{short}。",
    "回到刚才的{short}。",
]
HOOK_INTEREST = ["喜欢{tag}的朋友注意了，", "平时关注{tag}的朋友看过来，"]
HOOK_PRICE = ["想买得划算的朋友看过来，", "追求性价比的朋友注意，"]
HOOK_FANS = ["老朋友们都在，", "欢迎老粉们，"]
HOOK_NEW = ["刚进来的朋友，先了解一下，", "新来的朋友，"]


def _offer(o: Any) -> CouponOffer:
    return o if isinstance(o, CouponOffer) else as_offer(o)


def _q(text: str) -> str:
    return text.rstrip("?？ ") + "？"


def _strip_end(text: str) -> str:
    return text.rstrip("。！!；; ")


class ScriptWriter:
    def __init__(self, memory: ShowMemory, shop: str = "", rng: random.Random | None = None):
        self.memory = memory
        self.shop = shop or "我们"
        self.rng = rng or random.Random(7)
        self.turn = 0  # rotates template choice between passes
        self._k = 0  # … and between lines of one pass

    # --- the one gate every line passes -----------------------------------------------------------
    def line(
        self,
        candidates: Sequence[str],
        *,
        kind: str = "script",
        p: Product | None = None,
        facts: Sequence[Fact] = (),
        offers: Sequence[Any] = (),
        extra: Sequence[str] = (),
        lead_ins: bool = True,
        source: str = "template",
    ) -> Line | None:
        """The first candidate that passes compliance and was never said in this show; lead-ins are
        tried after the plain templates. None when every variant was used (or is non-compliant)."""
        if not candidates:
            return None
        self._k += 1
        start = (self.turn + self._k) % len(candidates)
        ordered = list(candidates[start:]) + list(candidates[:start])
        heads = LEAD_INS if lead_ins else [""]
        for head in heads:
            for c in ordered:
                text = head + c if head else c
                if self.memory.seen(text):
                    continue
                ok = guard(text, p, facts, [_offer(o) for o in offers], extra)
                if ok and self.memory.admit(ok):
                    return Line(ok, kind, p.sku if p else None, list(facts), source, p)
        return None

    # --- segments ---------------------------------------------------------------------------------
    def hook(self, p: Product, mix: RoomMix | None) -> str:
        if mix is None:
            return ""
        angles = mix.angles()
        tag = mix.interest_in(p.name, p.category, p.series)
        if tag:
            return self.rng.choice(HOOK_INTEREST).format(tag=tag)
        if "price" in angles:
            return self.rng.choice(HOOK_PRICE)
        if "fans" in angles:
            return self.rng.choice(HOOK_FANS)
        if "newcomers" in angles:
            return self.rng.choice(HOOK_NEW)
        return ""

    def product(
        self,
        snap: LoadedVersion,
        p: Product,
        mix: RoomMix | None,
        offers: Sequence[Any] = (),
        emphasis: Sequence[str] = (),
        pass_no: int = 0,
    ) -> tuple[list[Line], Iterator[Line]]:
        """(main script for this segment, a generator of spare lines to fill time)."""
        self.turn = pass_no
        facts = [f for f in snap.index.facts if f.sku == p.sku]
        by = {
            k: [f for f in facts if f.kind == k]
            for k in ("price", "stock", "spec", "selling_point", "faq", "suitable", "not_suitable")
        }
        short = short_name(p)
        fmt = {"short": short, "name": p.name}
        rot = pass_no  # rotate which facts lead on each pass

        def rotated(xs: list) -> list:
            return xs[rot % len(xs) :] + xs[: rot % len(xs)] if xs else xs

        blocks: dict[str, list[Line | None]] = {}
        hook = self.hook(p, mix)
        intro = [self.line([t.format(hook=hook, **fmt) for t in T_INTRO], p=p, facts=facts)]
        if p.stock == 0:
            main = [x for x in intro + [self.line([t.format(**fmt) for t in T_SOLDOUT], p=p, facts=facts)] if x]
            return main, iter(())
        blocks["price"] = [self._price(p, by["price"], offers, fmt)] + self._coupon_lines(p, offers, fmt, facts)
        blocks["selling_points"] = [
            self.line([t.format(sp=_strip_end(f.value or ""), **fmt) for t in T_SP], p=p, facts=[f])
            for f in rotated(by["selling_point"])
        ]
        specs = rotated(by["spec"])
        blocks["specs"] = [
            self.line([t.format(k=f.key, v=_strip_end(f.value or ""), **fmt) for t in T_SPEC], p=p, facts=[f])
            for f in specs[:3]
        ]
        suit = [self.line([t.format(v=f.value, **fmt) for t in T_SUIT], p=p, facts=[f]) for f in by["suitable"]]
        suit += [self.line([t.format(v=f.value, **fmt) for t in T_NOT], p=p, facts=[f]) for f in by["not_suitable"]]
        blocks["suitability"] = suit
        faqs = rotated(by["faq"])
        blocks["faq"] = [
            self.line([t.format(q=_q(f.key or ""), a=f.value or "", **fmt) for t in T_FAQ], p=p, facts=[f])
            for f in faqs[:2]
        ]
        stock = self._stock(p, by["stock"], fmt, facts)
        order = list(
            dict.fromkeys(
                [
                    *emphasis,
                    *(["price"] if mix and "price" in mix.angles() else []),
                    "selling_points",
                    "suitability",
                    "specs",
                    "faq",
                    "price",
                ]
            )
        )
        main: list[Line | None] = intro
        for name in order:
            main += blocks.get(name, [])
        main += [
            stock,
            self.line([t.format(**fmt) for t in T_INTERACT], p=p, facts=facts),
            self.line([t.format(**fmt) for t in T_CLOSE_SEG], p=p, facts=facts),
        ]
        spare_facts = specs[3:] + faqs[2:]
        return [x for x in main if x], self._spare(p, spare_facts, fmt, facts)

    def _spare(self, p: Product, extra_facts: list[Fact], fmt: dict, facts: list[Fact]) -> Iterator[Line]:
        for f in extra_facts:
            if f.kind == "spec":
                ln = self.line([t.format(k=f.key, v=_strip_end(f.value or ""), **fmt) for t in T_SPEC], p=p, facts=[f])
            else:
                ln = self.line([t.format(q=_q(f.key or ""), a=f.value or "", **fmt) for t in T_FAQ], p=p, facts=[f])
            if ln:
                yield ln
        for f in facts:  # second pass with lead-ins, selling points first
            if f.kind != "selling_point":
                continue
            ln = self.line([t.format(sp=_strip_end(f.value or ""), **fmt) for t in T_SP], p=p, facts=[f])
            if ln:
                yield ln

    def _price(self, p: Product, price_facts: list[Fact], offers: Sequence[Any], fmt: dict) -> Line | None:
        vals = {"price": fmt_price(p.price), "list": fmt_price(p.list_price or 0)}
        ts = T_PRICE if p.list_price and p.list_price > p.price else T_PRICE_NOLIST
        return self.line([t.format(**vals, **fmt) for t in ts], p=p, facts=price_facts)

    def _coupon_lines(self, p: Product, offers: Sequence[Any], fmt: dict, facts: list[Fact]) -> list[Line | None]:
        out: list[Line | None] = []
        for c in list(offers)[:1]:
            o = _offer(c)
            out.append(
                self.line(
                    [t.format(title=o.title, desc=describe(o), **fmt) for t in T_COUPON_MENTION],
                    kind="coupon",
                    p=p,
                    facts=facts,
                    offers=[o],
                )
            )
            if o.kind == "amount" and o.amount and p.price >= (o.threshold or 0) and p.price > o.amount:
                after = fmt_price(round(p.price - o.amount, 2))
                out.append(
                    self.line(
                        [t.format(title=o.title, after=after, **fmt) for t in T_AFTER_COUPON],
                        kind="coupon",
                        p=p,
                        facts=facts,
                        offers=[o],
                    )
                )
        return out

    def _stock(self, p: Product, stock_facts: list[Fact], fmt: dict, facts: list[Fact]) -> Line | None:
        if p.stock is None:
            return None
        if 0 < p.stock <= 20:
            return self.line([t.format(stock=p.stock, **fmt) for t in T_STOCK_LOW], p=p, facts=stock_facts)
        return self.line([t.format(**fmt) for t in T_STOCK], p=p, facts=facts)

    def bridge(self, p: Product | None) -> Line | None:
        if p is None:
            return None
        return self.line([t.format(short=short_name(p)) for t in T_BRIDGE], kind="bridge", p=p, lead_ins=False)

    def interaction(self, p: Product | None) -> Line | None:
        if p is None:
            return self.line(
                [
                    "有什么想了解的，打在公屏上。",
                    "大家有问题随时打在公屏上，我一个个回答。",
                    "喜欢的朋友点点关注，后面还有福利。",
                    "想看哪款，打在公屏上告诉我。",
                    "刚进来的朋友，有问题直接在公屏问。",
                ],
                kind="filler",
            )
        return self.line([t.format(short=short_name(p), name=p.name) for t in T_INTERACT], kind="filler", p=p)

    def opening(
        self, shop: str, title: str, names: list[str], offers: Sequence[Any], facts: Sequence[Fact] = ()
    ) -> list[Line]:
        out = [
            self.line(
                [f"欢迎来到{shop}的直播间！", f"大家好，欢迎来到{shop}直播间！", f"欢迎各位来到{shop}直播间。"],
                kind="script",
                lead_ins=False,
            ),
            self.line(
                [
                    f"今天是{title}，给大家准备了{'、'.join(names[:3])}等好物。",
                    f"今天的主题是{title}，有{'、'.join(names[:3])}。",
                ],
                kind="script",
                lead_ins=False,
            ),
        ]
        for c in list(offers)[:1]:
            o = _offer(c)
            out.append(
                self.line(
                    [
                        f"今天直播间有「{o.title}」，{describe(o)}，记得领。",
                        f"福利先说：「{o.title}」，{describe(o)}。",
                    ],
                    kind="coupon",
                    offers=[o],
                )
            )
        out.append(
            self.line(
                ["喜欢的朋友点个关注，有问题随时打在公屏上。", "有任何问题都可以打在公屏上，我一个个回答。"],
                kind="script",
                lead_ins=False,
            )
        )
        return [x for x in out if x]

    def coupon(self, campaign: Any, p: Product | None, facts: Sequence[Fact] = ()) -> list[Line]:
        o = as_offer(campaign)
        desc = describe(o)
        out = [
            self.line(["福利时间到！", "给大家上福利啦！", "福利来了！", "注意，福利时间！"], kind="coupon"),
            self.line(
                [f"「{o.title}」现在开放领取，{desc}。", f"现在可以领「{o.title}」，{desc}。"],
                kind="coupon",
                p=p,
                facts=facts,
                offers=[o],
            ),
            self.line(
                [
                    "想要的朋友在公屏打“领券”，我马上帮你发。",
                    "在公屏打“领券”两个字，券直接发到你的卡包。",
                    "公屏扣“领券”，系统自动发给你。",
                ],
                kind="coupon",
            ),
        ]
        if p is not None:
            out.append(
                self.line(
                    [f"这张券用在{short_name(p)}上也可以。", f"拍{short_name(p)}的时候就能用上。"],
                    kind="coupon",
                    p=p,
                    facts=facts,
                    offers=[o],
                )
                if (not o.skus or p.sku in o.skus)
                else None
            )
        remaining = getattr(campaign, "remaining", None)
        if remaining:
            out.append(
                self.line(
                    [f"这一轮还有{remaining}张。", f"目前还剩{remaining}张券。"],
                    kind="coupon",
                    extra=[str(remaining)],
                    offers=[o],
                )
            )
        return [x for x in out if x]

    def qa_intro(self) -> Line | None:
        return self.line(
            [
                "现在是答疑时间，大家有什么问题打在公屏上。",
                "答疑时间到，有问题的朋友打在公屏上。",
                "我们来集中回答一下大家的问题。",
                "接下来专门回答大家的问题。",
            ],
            kind="script",
        )

    def closing(self, shop: str) -> list[Line]:
        out = [
            self.line(["今天的直播接近尾声了，感谢大家的陪伴。", "直播快结束了，谢谢大家一直在。"], kind="script"),
            self.line(["还没下单的朋友，可以再看看小黄车。", "喜欢的款式记得在小黄车下单。"], kind="script"),
            self.line([f"感谢大家来{shop}直播间，我们下次见！", "谢谢大家，我们下次直播再见！"], kind="script"),
        ]
        return [x for x in out if x]

    def answer_line(
        self, label: str, text: str, p: Product | None, facts: Sequence[Fact], heat: int, source: str = "fastpath"
    ) -> Line | None:
        heads = (
            [
                f"好几位朋友在问{label}，",
                f"很多朋友关心{label}，",
                f"有{heat}位朋友问到{label}，",
                f"统一回答一下{label}，",
                f"关于{label}，",
            ]
            if label
            else ["有朋友问到，"]
        )
        return self.line([h + text for h in heads], kind="answer", p=p, facts=facts, extra=[str(heat)], source=source)


class Rephraser:
    """Reword prepared template lines with the LLM, ahead of time, never on the show's critical path.

    A rewording is kept only if it arrives within ``budget_s``, keeps exactly the same numbers, passes
    compliance and was never said before; otherwise the template line stays. After ``max_failures``
    consecutive errors the rephraser stops trying for ``cooldown_s`` (the model is down)."""

    PROMPT = "把下面这句直播口播改写得更自然、口语化，不改变任何数字和事实，不加新信息，不用“最”“第一”等绝对化用语，不超过50字。只输出改写后的句子。"

    def __init__(
        self,
        llm: Any,
        memory: ShowMemory,
        budget_s: float = 8.0,
        max_failures: int = 3,
        cooldown_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.llm, self.memory, self.budget_s = llm, memory, budget_s
        self.max_failures, self.cooldown_s, self.clock = max_failures, cooldown_s, clock
        self.failures = 0
        self.down_until = 0.0
        self.stats = {"tried": 0, "kept": 0, "rejected": 0, "failed": 0}

    @property
    def available(self) -> bool:
        return self.llm is not None and self.clock() >= self.down_until

    async def improve(self, lines: list[Line], limit: int = 4) -> None:
        """Rephrase up to ``limit`` script lines in place."""
        for ln in [x for x in lines if x.kind == "script" and x.source == "template"][:limit]:
            if not self.available:
                return
            await self._one(ln)

    async def _one(self, ln: Line) -> None:
        self.stats["tried"] += 1
        msgs = [{"role": "system", "content": self.PROMPT}, {"role": "user", "content": ln.text}]
        try:
            text = await asyncio.wait_for(self.llm.complete(msgs, max_tokens=80, temperature=0.7), self.budget_s)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # timeout, LLMUnavailable, connection errors
            self.stats["failed"] += 1
            self.failures += 1
            if self.failures >= self.max_failures:
                self.down_until = self.clock() + self.cooldown_s
                log.warning("LLM rephrasing paused for %.0fs after %d failures (%s)", self.cooldown_s, self.failures, e)
            return
        self.failures = 0
        text = (text or "").strip().strip('"“”「」').split("\n")[0]
        if not text or len(text) > 80 or numbers(text) != numbers(ln.text):
            self.stats["rejected"] += 1
            return
        ok = guard(text, ln.product, ln.facts)
        if not ok or ok != text or not self.memory.admit(ok):
            self.stats["rejected"] += 1
            return
        self.memory.forget(ln.text)  # the template line was reserved but will not be said
        ln.text, ln.source = ok, "llm"
        self.stats["kept"] += 1
