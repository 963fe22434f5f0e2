"""Shapes of copy requests and results (千人千面 copy for pre-show, in-show and post-show)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from tools.contracts import InterestTag, Level, ProfileView, Tier

Phase = Literal["pre", "live", "post"]
Channel = Literal["push", "sms", "popup", "host"]
Recall = Literal["watched_no_buy", "left_early", "cart_unpaid", "missed_show"]
Angle = Literal["focus", "price", "member", "quality", "general"]
ANGLES: tuple[str, ...] = ("focus", "price", "member", "quality", "general")
ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"

PHASE_ALIASES = {
    "pre-show": "pre",
    "preshow": "pre",
    "warmup": "pre",
    "预热": "pre",
    "in-show": "live",
    "直播中": "live",
    "post-show": "post",
    "recall": "post",
    "召回": "post",
}


def _as_list(v: Any) -> Any:
    if v is None:
        return []
    return [v] if isinstance(v, (str, bool)) else v


class Segment(BaseModel):
    """An audience segment: viewers matching every given criterion (empty criterion = any)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("all", max_length=64)
    tier: list[Tier] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)  # any of these interest tags
    price_sensitivity: list[Level] = Field(default_factory=list)
    spending_power: list[Level] = Field(default_factory=list)
    member: bool | None = None

    @field_validator("tier", "tags", "price_sensitivity", "spending_power", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _as_list(v)

    def matches(self, p: ProfileView) -> bool:
        if self.tier and p.tier not in self.tier:
            return False
        if self.tags and not {t.tag for t in p.interest_tags} & set(self.tags):
            return False
        if self.price_sensitivity and p.price_sensitivity not in self.price_sensitivity:
            return False
        if self.spending_power and p.spending_power not in self.spending_power:
            return False
        if self.member is not None and p.member != self.member:
            return False
        return True

    def representative(self) -> ProfileView:
        """The profile a copy for the whole segment is written for."""
        return ProfileView(
            viewer_id=f"segment:{self.name}",
            tier=self.tier[0] if len(self.tier) == 1 else "围观",
            interest_tags=[InterestTag(tag=t, weight=1.0) for t in self.tags],
            price_sensitivity=self.price_sensitivity[0] if len(self.price_sensitivity) == 1 else "medium",
            spending_power=self.spending_power[0] if len(self.spending_power) == 1 else "medium",
            member=bool(self.member),
        )


class ShowSegment(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    start: AwareDatetime
    end: AwareDatetime | None = None


class Show(BaseModel):
    """A show's rundown: when it starts and when each product is presented."""

    model_config = ConfigDict(extra="forbid")
    show_id: str = Field("show", pattern=ID_PATTERN)
    title: str | None = Field(None, max_length=64)
    start: AwareDatetime
    end: AwareDatetime | None = None
    segments: list[ShowSegment] = Field(default_factory=list)

    def segment_for(self, sku: str) -> ShowSegment | None:
        return next((s for s in self.segments if s.sku == sku), None)

    def skus(self) -> list[str]:
        out: list[str] = []
        for s in self.segments:
            if s.sku not in out:
                out.append(s.sku)
        return out

    def end_time(self):
        if self.end:
            return self.end
        ends = [s.end or s.start for s in self.segments]
        from datetime import timedelta

        return max(ends + [self.start]) + timedelta(minutes=30) if ends else self.start + timedelta(hours=2)


class CopyRequest(BaseModel):
    """One copy: a product, a target (one viewer or a segment), a phase and a channel."""

    model_config = ConfigDict(extra="forbid")
    merchant: str | None = Field(None, pattern=ID_PATTERN)
    sku: str | None = Field(None, min_length=1, max_length=64)  # None with a show: the product for this target
    viewer_id: str | None = Field(None, min_length=1, max_length=128)
    segment: Segment | None = None
    phase: Phase = "pre"
    channel: Channel = "push"
    recall: Recall | None = None  # post-show: why we call them back (inferred from the profile when absent)
    angle: Angle | None = None  # force an angle (A/B copy variants); else chosen from the profile
    coupon: str = Field("auto", max_length=64)  # "auto" (best eligible), "none", or a coupon campaign id
    show: Show | None = None  # the rundown: show time in pre-show copy, the product's segment
    use_llm: bool = True

    @field_validator("phase", mode="before")
    @classmethod
    def _phase(cls, v: Any) -> Any:
        return PHASE_ALIASES.get(v, v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _target(self) -> CopyRequest:
        if self.viewer_id and self.segment:
            raise ValueError("give a viewer_id or a segment, not both")
        if not self.sku and not (self.show and self.show.segments):
            raise ValueError("give a sku, or a show rundown with segments to pick the product from")
        return self


class Citation(BaseModel):
    id: str  # KB fact id (SK-001:price, doc:membership:…), or coupon:<campaign>, show:<show_id>
    kind: str
    text: str


class ComplianceReport(BaseModel):
    ok: bool
    violations: list[dict[str, Any]] = Field(default_factory=list)


class CopyPiece(BaseModel):
    text: str  # as delivered (push: "title\nbody"; SMS with signature and opt-out)
    title: str | None = None  # push only
    body: str | None = None  # push only
    angle: Angle
    citations: list[Citation]
    compliance: ComplianceReport
    sku: str
    product: str
    phase: Phase
    channel: Channel
    recall: Recall | None = None
    coupon: str | None = None  # campaign id of the coupon the copy mentions
    source: Literal["llm", "template"] = "template"
    attempts: int = 0  # LLM attempts (0 = template only)
    issues: list[str] = Field(default_factory=list)  # why LLM drafts were rejected
    lengths: dict[str, int] = Field(default_factory=dict)
    limits: dict[str, int] = Field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The CLI/API shape: text, angle, citations, compliance, plus the detail."""
        return self.model_dump()
