"""The facts a copy may use: product facts from the knowledge base, live price / coupon / stock from real
data, and the show time from the rundown. Everything the copy says must come from here, and every
piece cites what it used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from agent.compliance import PriceFacts
from copywriting.schema import Citation, Show
from knowledge.facts import catalog_facts, fmt_price
from knowledge.schema import Catalog, Fact, Product
from tools.contracts import CouponOffer

# Spec keys that say what a product is made of / how well it is made, best first (quality angle).
QUALITY_KEYS = [
    "面料",
    "主要成分",
    "配料",
    "填充物",
    "充绒量",
    "工艺",
    "姆米",
    "材质",
    "蜡材",
    "内含",
    "防晒指数",
    "持妆",
    "遮瑕力",
    "质地",
]
_SIZE_TOKEN = re.compile(r"^(\d+(\.\d+)?(ml|g|kg|片|片装|枚|支装|件套)|#\d+|SPF\d+\+?|PA\+*|\d+)$", re.I)


class CatalogView(Protocol):
    merchant: str
    shop: str
    version: str

    def product(self, sku: str) -> Product | None: ...

    def facts(self) -> list[Fact]: ...


@dataclass
class StaticCatalog:
    """A catalog in memory (evals, tests, previews): facts computed from it, no index needed."""

    catalog: Catalog
    merchant: str = "demo"
    version: str = "static"
    _facts: list[Fact] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._facts = catalog_facts(self.catalog)
        self._products = {p.sku: p for p in self.catalog.products}

    @property
    def shop(self) -> str:
        return self.catalog.merchant.name or self.merchant

    def product(self, sku: str) -> Product | None:
        return self._products.get(sku)

    def facts(self) -> list[Fact]:
        return self._facts


@dataclass
class KBCatalog:
    """The active KB version of a merchant (``KnowledgeBase.snapshot``)."""

    snap: object  # knowledge.store.LoadedVersion

    @property
    def merchant(self) -> str:
        return self.snap.merchant

    @property
    def version(self) -> str:
        return self.snap.version

    @property
    def shop(self) -> str:
        return self.snap.catalog.merchant.name or self.snap.merchant

    def product(self, sku: str) -> Product | None:
        return self.snap.product(sku)

    def facts(self) -> list[Fact]:
        return self.snap.index.facts


def short_name(p: Product) -> str:
    """The product's name as a viewer would say it: no brand prefix, sizes or shade numbers."""
    tokens = p.name.split()
    if len(tokens) > 1 and len(tokens[0]) <= 4:  # "暖光 玻尿酸保湿精华液 30ml": the brand goes
        tokens = tokens[1:]
    kept = [t for t in tokens if not _SIZE_TOKEN.match(t)]
    name = "".join(kept) or p.name
    name = re.sub(r"（[^）]*）|\([^)]*\)", "", name)
    if len(name) > 12:
        name = kept[0] if kept and len(kept[0]) <= 12 else (p.aliases[0] if p.aliases else name[:12])
    return name


def short_value(v: str, limit: int = 14) -> str:
    """The first item of a spec value ("三重分子玻尿酸（透明质酸钠）、泛醇" → "三重分子玻尿酸")."""
    v = re.sub(r"（[^）]*）|\([^)]*\)", "", v.strip())
    first = re.split(r"[、，,；;。（(+]|\s+", v)[0].strip()
    first = first.split("：")[-1].split(":")[-1]  # "围巾：羊毛50%" → "羊毛50%"
    first = first.replace("100%", "纯")
    return first[:limit]


@dataclass
class Material:
    """What one copy may say, each item with the fact it comes from."""

    product: Product
    name: str  # short name
    shop: str
    price_fact: Fact | None
    stock: int | None
    coupon: CouponOffer | None
    quality: list[tuple[str, str, Fact]]  # (key, short value, fact)
    selling_points: list[tuple[str, Fact]]  # (short text, fact)
    warranty: tuple[str, Fact] | None
    member_benefit: tuple[str, Fact] | None
    show: Show | None = None
    tz: str = "Asia/Shanghai"
    known_text: str = ""  # every fact about this product (and the policies used): what a claim may rest on

    # --- derived ------------------------------------------------------------------------------
    @property
    def price(self) -> str:
        return fmt_price(self.product.price)

    @property
    def list_price(self) -> str | None:
        lp = self.product.list_price
        return fmt_price(lp) if lp and lp > self.product.price else None

    def coupon_phrase(self) -> str | None:
        return coupon_phrase(self.coupon) if self.coupon else None

    def show_time(self) -> str | None:
        """ "20:00" of the show (or of this product's segment) in the merchant's timezone."""
        if not self.show:
            return None
        seg = self.show.segment_for(self.product.sku)
        t = seg.start if seg else self.show.start
        return local(t, self.tz).strftime("%H:%M")

    def price_facts(self, cited: Iterable[Fact] = ()) -> PriceFacts:
        return PriceFacts.from_product(self.product, [self.coupon] if self.coupon else [], [f.text for f in cited])


def local(t: datetime, tz: str) -> datetime:
    from core.timeutil import zone

    return t.astimezone(zone(tz))


def coupon_phrase(o: CouponOffer) -> str:
    def f(x: float | None) -> str:
        return fmt_price(x or 0)

    if o.kind == "amount":
        return f"满{f(o.threshold)}减{f(o.amount)}" if o.threshold else f"无门槛减{f(o.amount)}元"
    zhe = f(round((o.discount or 1) * 10, 2))
    return f"满{f(o.threshold)}打{zhe}折" if o.threshold else f"{zhe}折券"


def coupon_citation(o: CouponOffer) -> Citation:
    return Citation(id=f"coupon:{o.campaign_id}", kind="coupon", text=f"{o.title}（{coupon_phrase(o)}）")


def show_citation(show: Show, sku: str, tz: str) -> Citation:
    seg = show.segment_for(sku)
    t = local(seg.start if seg else show.start, tz)
    what = "讲解" if seg else "开播"
    return Citation(id=f"show:{show.show_id}", kind="show", text=f"{t:%m-%d %H:%M}{what}")


def cite(f: Fact) -> Citation:
    return Citation(id=f.id, kind=f.kind, text=f.text)


_WARRANTY_HEADINGS = {"女装": ["服装瑕疵", "质量问题"], "零食": ["质量问题"], "礼盒": ["质量问题"]}


def _warranty(category: str, facts: list[Fact]) -> tuple[str, Fact] | None:
    heads = _WARRANTY_HEADINGS.get(category, ["质量问题"])
    docs = [f for f in facts if f.kind == "doc" and f.id.startswith("doc:warranty")]
    for h in heads:
        for f in docs:
            if h in (f.key or ""):
                m = re.search(r"签收后(\d+)天内", f.value or f.text)
                if m and "退" in (f.value or f.text):
                    return (f"{'瑕疵' if h == '服装瑕疵' else '质量问题'}{m.group(1)}天内可退换", f)
    return None


def _member_benefit(tier: str, member: bool, facts: list[Fact]) -> tuple[str, Fact] | None:
    """A fan's or member's benefit, from the store's membership document."""
    docs = [f for f in facts if f.kind == "doc" and f.id.startswith("doc:membership")]
    if tier == "铁粉":
        for f in docs:
            m = re.search(r"铁粉[^。\n]*?专属券（(满\d+减\d+)）", f.value or "")
            if m:
                return (f"铁粉专属券{m.group(1)}", f)
    if member or tier == "铁粉":
        for f in docs:
            m = re.search(r"(\d+)积分可以抵扣(\d+)元", f.value or "")
            if m:
                return (f"会员福利：{m.group(1)}积分抵{m.group(2)}元", f)
    return None


def gather(
    catalog: CatalogView,
    sku: str,
    *,
    coupon: CouponOffer | None,
    tier: str = "路过",
    member: bool = False,
    show: Show | None = None,
    tz: str = "Asia/Shanghai",
    facts: list[Fact] | None = None,
) -> Material:
    p = catalog.product(sku)
    if p is None:
        raise KeyError(f"unknown product {sku!r} for merchant {catalog.merchant!r}")
    facts = facts if facts is not None else catalog.facts()
    mine = [f for f in facts if f.sku == sku]
    by_id = {f.id: f for f in mine}
    quality = []
    for k in QUALITY_KEYS:
        f = by_id.get(f"{sku}:spec:{k}")
        if f and f.value:
            quality.append((k, short_value(f.value), f))
    sps = [(sp_short(f.value or ""), f) for f in mine if f.kind == "selling_point" and f.value]
    warranty, benefit = _warranty(p.category, facts), _member_benefit(tier, member, facts)
    known = [f.text for f in mine] + [x[1].text for x in (warranty, benefit) if x]
    return Material(
        product=p,
        name=short_name(p),
        shop=catalog.shop,
        price_fact=by_id.get(f"{sku}:price"),
        stock=p.stock,
        coupon=coupon,
        quality=quality,
        selling_points=sps,
        warranty=warranty,
        member_benefit=benefit,
        show=show,
        tz=tz,
        known_text="".join("".join(known).split()),
    )


def sp_short(text: str, limit: int = 24) -> str:
    """A selling point's first clause, short enough for a push body."""
    first = re.split(r"[，,；;。]", text.strip())[0]
    return first[:limit]
