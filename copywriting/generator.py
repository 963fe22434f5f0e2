"""`CopyWriter`: one personalised copy for a product, a target (viewer or segment), a phase and a channel.

Code decides everything that must be right — the angle (from the profile), the facts (knowledge base),
live price / coupon / stock (real data), the opening, the length, compliance. The model only words the
copy within that: on llama.cpp its JSON output is grammar-constrained to start with the chosen opening and
to fit the channel; every draft is then checked, retried once with the problems named, and replaced by a
safe template if it still fails.
"""

from __future__ import annotations

import asyncio
import logging
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.compliance import DEFAULT_RULES, ComplianceRules
from agent.llm import LLMClient, LLMUnavailable
from copywriting import angles, templates
from copywriting.channels import assemble, lengths, spec
from copywriting.facts import CatalogView, Material, gather
from copywriting.schema import ComplianceReport, CopyPiece, CopyRequest
from copywriting.validate import check as validate
from core.errors import LiveRoomError
from prompts.loader import PROMPTS_DIR, PromptError, variables
from tools.contracts import CouponOffer, ProfileView

log = logging.getLogger("liveroom.copy")

PROMPT_VARS = {"copy_system": {"shop"}, "copy_user": {"channel", "phase", "audience", "lead", "length", "facts"}}
AUDIENCE = {  # who the copy is for (descriptions, not instructions: a small model echoes instructions)
    "price": "看重价格的观众",
    "quality": "看重品质的观众",
    "focus": "反复看过这款商品的观众",
    "member": "店铺铁粉/会员",
    "general": "刚关注的观众",
}
PHASE = {
    "pre": "开播前发",
    "live": "直播中发",
    "post": {
        "cart_unpaid": "直播结束后发给加购了没付款的人",
        "watched_no_buy": "直播结束后发给看了没买的人",
        "left_early": "直播结束后发给中途离开的人",
        "missed_show": "直播结束后发给错过直播的人",
    },
}
DEFAULT = object()  # "use the writer's own client"
_CHARS = '[^"\\\\\\n]'  # any JSON string character but a quote, backslash or line break
_REGEX_SPECIAL = set("[](){}|*+?")


def load_prompt(name: str) -> string.Template:
    text = (PROMPTS_DIR / f"{name}.md").read_text(encoding="utf-8")
    want, have = PROMPT_VARS[name], variables(text)
    if want != have:
        raise PromptError(f"prompt {name!r}: expected variables {sorted(want)}, found {sorted(have)}")
    return string.Template(text)


def _re_literal(s: str) -> str:
    """``s`` as a literal in llama.cpp's JSON-schema ``pattern`` subset: its converter unescapes
    ``\\[ \\( \\+ …`` but not ``\\.`` (which then breaks the grammar), so a dot goes in a class."""
    out = []
    for c in s:
        if c == ".":
            out.append("[.]")
        elif c in _REGEX_SPECIAL:
            out.append("\\" + c)
        elif c in '\\"\n':
            continue
        else:
            out.append(c)
    return "".join(out)


@dataclass
class Resolved:
    """Everything a copy is written from (also the batch grouping key's ingredients)."""

    material: Material
    angle: str
    reason: str
    recall: str | None
    profile: ProfileView | None


class DraftRejected(LiveRoomError):
    code = "draft_rejected"
    http_status = 422

    """A model draft that can't be used as it is (the reason goes back to the model on the retry)."""


class CopyWriter:
    def __init__(
        self,
        catalog_for: Callable[[str], CatalogView],
        *,
        profiles: Any = None,
        ledger: Any = None,
        audience: Any = None,
        llm: LLMClient | None = None,
        rules_for: Callable[[str], ComplianceRules] | None = None,
        tz: str = "Asia/Shanghai",
        default_merchant: str = "demo",
        max_attempts: int = 2,
    ):
        self.catalog_for = catalog_for
        self.profiles, self.ledger, self.audience = profiles, ledger, audience
        self.llm = llm
        self.rules_for = rules_for or (lambda m: DEFAULT_RULES)
        self.tz = tz
        self.default_merchant = default_merchant
        self.max_attempts = max_attempts
        self.llm_calls = 0
        self.cut_off = 0
        self._system = load_prompt("copy_system")
        self._user = load_prompt("copy_user")

    # --- inputs --------------------------------------------------------------------------------
    def profile_for(self, merchant: str, req: CopyRequest) -> ProfileView | None:
        if req.viewer_id:
            if self.profiles is None:
                return None
            return self.profiles.lookup(merchant, req.viewer_id)
        if req.segment:
            return req.segment.representative()
        return None

    def offer_for(self, merchant: str, req: CopyRequest, profile: ProfileView | None) -> CouponOffer | None:
        if req.coupon == "none":
            return None
        offers: list[CouponOffer] = []
        if req.viewer_id and self.ledger is not None:
            offers = list(self.ledger.eligible_offers(merchant, req.viewer_id, req.sku))
        elif req.segment is not None:
            offers = segment_offers(self.audience, merchant, req.segment, req.sku)
        if req.coupon != "auto":
            offers = [o for o in offers if o.campaign_id == req.coupon]
        p = self.catalog_for(merchant).product(req.sku)
        return best_offer(offers, p.price if p else None)

    def resolve(
        self,
        req: CopyRequest,
        *,
        profile: ProfileView | None = None,
        offer: CouponOffer | None = None,
        lookup: bool = True,
    ) -> Resolved:
        merchant = req.merchant or self.default_merchant
        catalog = self.catalog_for(merchant)
        if lookup:
            profile = self.profile_for(merchant, req)
        if not req.sku:  # a show: the product this viewer / segment cares about
            skus = [s for s in req.show.skus() if catalog.product(s) is not None]
            if not skus:
                raise KeyError(f"none of the show's products is in the knowledge base of {merchant!r}")
            tags = angles.interest_tags_of(catalog, skus, self.audience, merchant)
            req = req.model_copy(update={"sku": angles.pick_product(profile, skus, tags)})
        if lookup:
            offer = self.offer_for(merchant, req, profile)
        m = gather(
            catalog,
            req.sku,
            coupon=offer,
            tier=profile.tier if profile else "路过",
            member=bool(profile and profile.member),
            show=req.show,
            tz=self.tz,
        )
        choice = angles.choose(profile, req.sku, m, req.angle)
        recall = (req.recall or angles.infer_recall(profile, req.sku)) if req.phase == "post" else None
        return Resolved(m, choice.angle, choice.reason, recall, profile)

    # --- writing -------------------------------------------------------------------------------
    async def write(self, req: CopyRequest, *, resolved: Resolved | None = None, llm: Any = DEFAULT) -> CopyPiece:
        """``llm``: the client to use (default: ``self.llm``; None: template only)."""
        merchant = req.merchant or self.default_merchant
        llm = self.llm if llm is DEFAULT else llm
        r = resolved or await asyncio.to_thread(self.resolve, req)
        rules = self.rules_for(merchant)
        issues: list[str] = []
        attempts = 0
        if req.use_llm and llm is not None:
            for attempt in range(self.max_attempts):
                attempts += 1
                try:
                    title, body = await self._draft(llm, r, req.phase, req.channel, issues[-1:] if attempt else [])
                except LLMUnavailable as e:
                    log.warning("copy LLM unavailable: %s", e)
                    issues.append(f"llm unavailable: {str(e)[:120]}")
                    break
                except DraftRejected as e:
                    issues.append(f"{e}; write it shorter")
                    continue
                verdict = validate(r.material, r.angle, req.channel, title, body, rules, recall=r.recall)
                if verdict.ok:
                    return self._piece(r, req, title, body, verdict, "llm", attempts, issues)
                issues.append("; ".join(verdict.issues + [f"{x.rule}:{x.term}" for x in verdict.violations]))
        return self.template(r, req, rules, attempts, issues)

    def write_template(self, req: CopyRequest, resolved: Resolved | None = None) -> CopyPiece:
        r = resolved or self.resolve(req)
        return self.template(r, req, self.rules_for(req.merchant or self.default_merchant), 0, [])

    def template(
        self, r: Resolved, req: CopyRequest, rules: ComplianceRules, attempts: int, issues: list[str]
    ) -> CopyPiece:
        last = None
        for d in templates.candidates(r.material, r.angle, req.phase, req.channel, r.recall):
            verdict = validate(
                r.material, r.angle, req.channel, d.title, d.body, rules, extra_citations=d.citations, recall=r.recall
            )
            last = (d, verdict)
            if verdict.ok:
                return self._piece(r, req, d.title, d.body, verdict, "template", attempts, issues)
        d, verdict = last  # nothing passed (a catalog this odd is worth a log line); report it as it is
        log.error("no template copy passed for %s/%s/%s: %s", req.sku, r.angle, req.channel, verdict.issues)
        return self._piece(r, req, d.title, d.body, verdict, "template", attempts, issues)

    def _piece(
        self,
        r: Resolved,
        req: CopyRequest,
        title: str | None,
        body: str,
        verdict,
        source: str,
        attempts: int,
        issues: list[str],
    ) -> CopyPiece:
        m = r.material
        ln, lim = lengths(req.channel, m.shop, title, body)
        return CopyPiece(
            text=assemble(req.channel, m.shop, title, body),
            title=title if req.channel == "push" else None,
            body=body if req.channel == "push" else None,
            angle=r.angle,
            citations=verdict.citations,
            compliance=ComplianceReport(
                ok=not verdict.violations, violations=[v.model_dump() for v in verdict.violations]
            ),
            sku=m.product.sku,
            product=m.product.name,
            phase=req.phase,
            channel=req.channel,
            recall=r.recall,
            coupon=m.coupon.campaign_id
            if m.coupon and any(c.id.startswith("coupon:") for c in verdict.citations)
            else None,
            source=source,
            attempts=attempts,
            issues=issues + ([] if verdict.ok else verdict.issues),
            lengths=ln,
            limits=lim,
        )

    # --- the model -----------------------------------------------------------------------------
    def messages(
        self, r: Resolved, phase: str, channel: str, feedback: list[str], patterned: bool = True
    ) -> tuple[list[dict], dict, str | None]:
        m = r.material
        s = spec(channel, m.shop)
        facts = prompt_facts(m, r.angle, channel)
        room = draft_room(channel, s)
        if channel == "push":
            title = templates.lead(m, r.angle, s.title_max).text
            lead_text, length = title, f"推送正文，一句话，不超过{room}字，不要重复标题"
        else:
            title = None
            lead_text = templates.lead(m, r.angle, 24 if channel != "popup" else 18).text
            length = {
                "sms": f"，整条不超过{room}字",
                "popup": f"，整条不超过{room}字",
                "host": f"，一到两句话，整条不超过{room}字",
            }[channel]
        phase_text = PHASE["post"][r.recall or "watched_no_buy"] if phase == "post" else PHASE[phase]
        t = m.show_time()
        if phase == "pre" and t:
            phase_text += f"（{t}开播）" if not (m.show and m.show.segment_for(m.product.sku)) else f"（{t}讲解这款）"
        user = self._user.substitute(
            channel=s.label,
            phase=phase_text,
            audience=AUDIENCE[r.angle],
            lead=lead_text,
            length=length,
            facts="\n".join(f"- {f}" for f in facts),
        )
        if feedback:
            user += f"\n上一版不合格（{feedback[0][:80]}），请重写。"
        msgs = [{"role": "system", "content": self._system.substitute(shop=m.shop)}, {"role": "user", "content": user}]
        return msgs, self._schema(channel, lead_text, s, patterned), title

    def _schema(self, channel: str, lead_text: str, s, patterned: bool) -> dict:
        """The model is asked for ``draft_room`` characters; the grammar stops it at the channel's limit
        (a draft that runs into that hard stop is cut off and rejected, see ``_draft``)."""
        if channel == "push":
            body: dict = {"type": "string", "minLength": s.body_min, "maxLength": s.body_max}
            if patterned:
                body = {"type": "string", "pattern": f"^{_CHARS}{{{s.body_min - 1},{s.body_max - 1}}}[。！]$"}
            return {"type": "object", "properties": {"body": body}, "required": ["body"]}
        text: dict = {"type": "string", "minLength": s.body_min, "maxLength": s.body_max}
        if patterned:
            rest = max(s.body_max - len(lead_text), 6)
            text = {
                "type": "string",
                "pattern": f"^{_re_literal(lead_text)}{_CHARS}{{{min(4, rest - 1)},{rest - 1}}}[。！]$",
            }
        return {"type": "object", "properties": {"text": text}, "required": ["text"]}

    async def _draft(
        self, llm: LLMClient, r: Resolved, phase: str, channel: str, feedback: list[str]
    ) -> tuple[str | None, str]:
        caps = await llm.capabilities()
        patterned = caps.json_schema == "llama"
        msgs, schema, title = self.messages(r, phase, channel, feedback, patterned)
        s = spec(channel, r.material.shop)
        self.llm_calls += 1
        out = await llm.json(msgs, schema, max_tokens=int((s.body_max + 10) * 1.5), name="copy")
        raw = str(out.get("body" if channel == "push" else "text") or "")
        body = raw.strip()
        if title and body.startswith(title):  # the model echoed the title: the body is what follows
            body = body[len(title) :].lstrip("，,。！!：: ")
        if len(raw) >= s.body_max:  # ran into the hard stop: the last clause may be cut; drop it
            self.cut_off += 1
            body = drop_last_clause(body)
            if len(body) < s.body_min:
                raise DraftRejected(f"cut off at the {s.body_max}-character limit: {raw[-12:]!r}")
        body = re.sub(r"\s+", "", body) if re.search(r"[\u4e00-\u9fff]", body) else body.strip()
        if channel == "sms":
            from copywriting.channels import SMS_OPT_OUT, sms_signature

            body = body.replace(SMS_OPT_OUT, "").replace(sms_signature(r.material.shop), "")
        return title, body


# How much the model is asked to write: under the channel's limit (shorter copy reads better on a phone,
# and every token costs ~0.25 s on the embedded model).
DRAFT_ROOM = {"push": 36, "sms": 44, "popup": 20, "host": 45}


def draft_room(channel: str, s) -> int:
    return min(DRAFT_ROOM[channel], s.body_max)


def drop_last_clause(text: str) -> str:
    """ "…，现在直播价159元，日常价2。" → "…，现在直播价159元。" (the clause the length limit cut)."""
    core = text.rstrip("。！!？?")
    cut = max(core.rfind(c) for c in "，,；;。！!")
    if cut <= 0:
        return ""
    kept = core[:cut].rstrip("，,；;")
    return kept + ("。" if not kept.endswith(("。", "！", "!")) else "")


def patient(llm: LLMClient | None, timeout: float = 300.0) -> LLMClient | None:
    """The same backend with a longer timeout: copy is written off the viewer's critical path, and on a
    busy 2-core machine one embedded-model call can take longer than the chat path's 60 s."""
    if llm is None or not isinstance(llm, LLMClient):
        return llm
    c = LLMClient(llm.base_url, llm.model, api_key=llm.client.api_key, timeout=timeout, flavor=llm.flavor)
    c._caps = llm._caps
    return c


def prompt_facts(m: Material, angle: str, channel: str = "push") -> list[str]:
    """The few short lines the model writes from, phrased as copy would say them (the model copies labels
    like "售后：" otherwise). Short prompt = fast on the embedded model; a pop-up gets only its angle's line,
    or the model tries to fit everything into 30 characters."""
    price = f"{m.name}直播价{m.price}元" + (f"，日常价{m.list_price}元" if m.list_price else "")
    coupon = (
        f"可以用{m.coupon_phrase()}券"
        if m.coupon and "券" not in m.coupon_phrase()
        else (f"可以用{m.coupon_phrase()}" if m.coupon else None)
    )
    sp = m.selling_points[0][0] if m.selling_points else None
    if channel == "popup":
        if angle == "price":
            return [price] + ([coupon] if coupon else [])
        if angle == "focus":
            return [f"{m.name}直播价{m.price}元"]
        if angle == "quality" and m.quality:
            return [f"{m.name}{m.quality[0][0]}{m.quality[0][1]}"]
        if angle == "member" and m.member_benefit:
            return [m.member_benefit[0], f"{m.name}直播价{m.price}元"]
        return [f"{m.name}：{sp}"] if sp else [f"{m.name}直播价{m.price}元"]
    lines = [price]
    if coupon:
        lines.append(coupon)
    if angle == "quality":
        lines += [f"{k}{v}" for k, v, _ in m.quality[:2]]
        if m.warranty:
            lines.append(m.warranty[0])
    elif angle == "member" and m.member_benefit:
        lines.append(m.member_benefit[0])
    if sp and angle != "quality":
        lines.append(sp)
    return lines


def offer_value(o: CouponOffer, price: float | None) -> tuple:
    """Rank: usable on this product alone first (threshold ≤ price), then the most money off it."""
    usable = price is None or (o.threshold or 0) <= price
    if o.kind == "amount":
        off = o.amount or 0
    else:
        off = (price or 0) * (1 - (o.discount or 1))
    return (usable, off)


def fits(o: CouponOffer, price: float | None) -> bool:
    """The product alone reaches the coupon's threshold (a 满199减20 is no offer on an 89-yuan lipstick)."""
    return price is None or (o.threshold or 0) <= price


def best_offer(offers: list[CouponOffer], price: float | None) -> CouponOffer | None:
    """The most money off among the coupons whose threshold the product's price reaches; none otherwise."""
    usable = [o for o in offers if fits(o, price)]
    if not usable:
        return None
    return max(usable, key=lambda o: (*offer_value(o, price), o.campaign_id))


def segment_offers(audience: Any, merchant: str, segment, sku: str | None) -> list[CouponOffer]:
    """Coupons every viewer of a segment may get (campaign eligibility checked against the segment's
    definition, not per viewer)."""
    if audience is None or not hasattr(audience, "list_campaigns"):
        return []
    out = []
    for c in audience.list_campaigns(merchant):
        if not campaign_open(c):
            continue
        if c.eligible_tiers and (not segment.tier or not set(segment.tier) <= set(c.eligible_tiers)):
            continue
        if c.eligible_tags and (not segment.tags or not set(segment.tags) & set(c.eligible_tags)):
            continue
        if c.members_only and segment.member is not True:
            continue
        if sku and c.skus and sku not in c.skus:
            continue
        out.append(c)
    out.sort(key=lambda c: (-(c.amount or c.max_off or 0), c.campaign_id))
    return [campaign_offer(c) for c in out]


def campaign_open(c, now: float | None = None) -> bool:
    import time
    from datetime import datetime

    now = time.time() if now is None else now
    if c.status != "active" or c.remaining <= 0:
        return False
    if c.valid_from and datetime.fromisoformat(c.valid_from).timestamp() > now:
        return False
    if c.valid_until and datetime.fromisoformat(c.valid_until).timestamp() < now:
        return False
    return True


def campaign_offer(c) -> CouponOffer:
    return CouponOffer(
        campaign_id=c.campaign_id,
        title=c.title,
        kind=c.kind,
        amount=c.amount,
        discount=c.discount,
        threshold=c.threshold,
        skus=list(c.skus),
        valid_until=c.valid_until,
    )
