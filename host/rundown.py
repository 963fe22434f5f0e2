"""The show plan (rundown): segments in YAML, validated with errors that name the line and field.

    title: 暖光护肤专场
    loop: true            # repeat the middle segments until the show ends (24 h shows)
    hours: 24             # default show length; `liveroom host --hours` overrides
    pace: {chars_per_second: 4.5, gap_seconds: 2}
    reserve_coupons: [DEMO-ALL20]   # flash coupons the host may switch to when conversion drops
    segments:
      - {type: opening, minutes: 2}
      - {type: product, sku: SK-001, minutes: 8}
      - {type: coupon, campaign: DEMO-ALL20, minutes: 1, sku: SK-001}
      - {type: qa, minutes: 3}
      - {type: closing, minutes: 2}

``load_rundown`` checks the shape (``RundownError`` lists every problem as ``file:line: field:
message``); ``check_references`` checks it against the live data (skus in the knowledge base,
campaigns in the coupon ledger). ``Timeline`` turns it into timed slots: the opening once, the
middle segments looped, the closing at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import BadRequest

_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pace(_Strict):
    chars_per_second: float = Field(4.5, gt=0.5, le=20, description="speaking speed (Chinese characters per second)")
    gap_seconds: float = Field(2.0, ge=0, le=120, description="pause between script sentences (product demo)")
    interaction_every_s: float = Field(60.0, ge=10, le=3600, description="an interaction prompt at most this often")


class _Seg(_Strict):
    minutes: float = Field(gt=0, le=240)
    title: str | None = Field(None, max_length=64)
    notes: str | None = Field(None, max_length=500, description="merchant's notes; not spoken")


class OpeningSegment(_Seg):
    type: Literal["opening"]


class ProductSegment(_Seg):
    type: Literal["product"]
    sku: str = Field(min_length=1, max_length=64)
    emphasis: list[Literal["price", "selling_points", "specs", "faq", "suitability"]] = Field(default_factory=list)


class CouponSegment(_Seg):
    type: Literal["coupon"]
    campaign: str = Field(min_length=1, max_length=64, pattern=_ID.pattern)
    sku: str | None = Field(None, max_length=64, description="the product to pair the coupon with")


class QASegment(_Seg):
    type: Literal["qa"]


class ClosingSegment(_Seg):
    type: Literal["closing"]


Segment = Annotated[
    Union[OpeningSegment, ProductSegment, CouponSegment, QASegment, ClosingSegment], Field(discriminator="type")
]


class Rundown(_Strict):
    version: Literal[1] = 1
    title: str = Field("直播", max_length=64)
    merchant: str | None = Field(None, max_length=64)
    room: str | None = Field(None, max_length=64, pattern=_ID.pattern)
    loop: bool = True
    hours: float = Field(1.0, gt=0, le=72)
    pace: Pace = Field(default_factory=Pace)
    reserve_coupons: list[Annotated[str, Field(pattern=_ID.pattern)]] = Field(default_factory=list, max_length=20)
    segments: list[Segment] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _order(self) -> Rundown:
        kinds = [s.type for s in self.segments]
        if kinds.count("opening") > 1:
            raise ValueError("at most one opening segment")
        if "opening" in kinds and kinds[0] != "opening":
            raise ValueError("the opening segment must come first")
        if kinds.count("closing") > 1:
            raise ValueError("at most one closing segment")
        if "closing" in kinds and kinds[-1] != "closing":
            raise ValueError("the closing segment must come last")
        if "product" not in kinds:
            raise ValueError("a rundown needs at least one product segment")
        if self.loop and not self.body():
            raise ValueError("a looping rundown needs segments between the opening and the closing")
        return self

    def opening(self) -> OpeningSegment | None:
        return self.segments[0] if isinstance(self.segments[0], OpeningSegment) else None

    def closing(self) -> ClosingSegment | None:
        return self.segments[-1] if isinstance(self.segments[-1], ClosingSegment) else None

    def body(self) -> list:
        return [s for s in self.segments if s.type not in ("opening", "closing")]

    def skus(self) -> list[str]:
        out = [s.sku for s in self.segments if getattr(s, "sku", None)]
        return list(dict.fromkeys(out))

    def campaigns(self) -> list[str]:
        out = [s.campaign for s in self.segments if isinstance(s, CouponSegment)] + list(self.reserve_coupons)
        return list(dict.fromkeys(out))


@dataclass
class RundownIssue:
    path: str  # segments[2].sku
    message: str
    line: int | None = None
    source: str = "rundown"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"


class RundownError(BadRequest):
    code = "bad_rundown"

    def __init__(self, issues: list[RundownIssue]):
        self.issues = issues
        super().__init__("invalid rundown:\n" + "\n".join(f"  {i}" for i in issues))

    def as_dicts(self) -> list[dict[str, Any]]:
        return [{"path": i.path, "line": i.line, "message": i.message} for i in self.issues]


def _node_at(node: yaml.Node | None, loc: tuple) -> yaml.Node | None:
    """The YAML node a pydantic error location points at (closest existing ancestor)."""
    cur = node
    for part in loc:
        if cur is None:
            return None
        if isinstance(cur, yaml.MappingNode):
            nxt = next((v for k, v in cur.value if getattr(k, "value", None) == part), None)
            if nxt is None:
                continue  # a discriminator tag ("product") or a missing field: stay on the parent
            cur = nxt
        elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(cur.value):
                return cur
            cur = cur.value[part]
    return cur


def _path(loc: tuple, data: Any) -> str:
    out, cur = "", data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            cur = cur[part] if isinstance(cur, list) and part < len(cur) else None
        else:
            if isinstance(cur, dict) and part not in cur and part in ("opening", "product", "coupon", "qa", "closing"):
                continue  # pydantic's union tag, not a field
            out += ("." if out else "") + str(part)
            cur = cur.get(part) if isinstance(cur, dict) else None
    return out


_FRIENDLY = {
    "union_tag_invalid": "unknown segment type {tag!r}; use one of: opening, product, coupon, qa, closing",
    "union_tag_not_found": "each segment needs a 'type': opening, product, coupon, qa or closing",
    "extra_forbidden": "unknown field (check the spelling)",
    "missing": "required field is missing",
    "string_pattern_mismatch": "use 1-64 letters, digits, '_', '.', ':' or '-'",
}


def parse_rundown(text: str, source: str = "rundown") -> Rundown:
    """Parse and validate YAML text; raises ``RundownError`` with every problem found."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise RundownError(
            [RundownIssue("", f"not valid YAML: {getattr(e, 'problem', None) or e}", line, source)]
        ) from None
    if data is None:
        raise RundownError([RundownIssue("", "the rundown is empty", None, source)])
    if not isinstance(data, dict):
        raise RundownError([RundownIssue("", "the rundown must be a mapping with 'segments'", 1, source)])
    try:
        return Rundown.model_validate(data)
    except ValidationError as e:
        issues = []
        for err in e.errors():
            loc = tuple(err["loc"])
            node = _node_at(root, loc)
            msg = err["msg"]
            if err["type"] in _FRIENDLY:
                msg = _FRIENDLY[err["type"]].format(tag=(err.get("ctx") or {}).get("tag"))
            if err["type"] == "value_error":
                msg = err["msg"].removeprefix("Value error, ")
            issues.append(RundownIssue(_path(loc, data), msg, node.start_mark.line + 1 if node else None, source))
        raise RundownError(issues) from None


def load_rundown(path: str | Path) -> Rundown:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RundownError([RundownIssue("", f"file not found: {p}", None, str(p))]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise RundownError([RundownIssue("", f"cannot read the file: {e}", None, str(p))]) from None
    return parse_rundown(text, p.name)


def check_references(
    rundown: Rundown, products: dict[str, Any] | set[str], campaigns: dict[str, Any] | None, source: str = "rundown"
) -> list[RundownIssue]:
    """Problems with what the rundown points at: skus missing from the knowledge base, campaigns that
    don't exist or can't be announced (ended, paused, budget spent). ``campaigns``: id → ``Campaign``
    (None skips the check, e.g. no coupon ledger configured)."""
    issues: list[RundownIssue] = []
    for i, s in enumerate(rundown.segments):
        sku = getattr(s, "sku", None)
        if sku and sku not in products:
            issues.append(RundownIssue(f"segments[{i}].sku", f"no product {sku!r} in the knowledge base", None, source))
        if isinstance(s, CouponSegment) and campaigns is not None:
            issues += _campaign_issue(s.campaign, campaigns, f"segments[{i}].campaign", source)
    if campaigns is not None:
        for j, cid in enumerate(rundown.reserve_coupons):
            issues += _campaign_issue(cid, campaigns, f"reserve_coupons[{j}]", source)
    return issues


def _campaign_issue(cid: str, campaigns: dict[str, Any], path: str, source: str) -> list[RundownIssue]:
    c = campaigns.get(cid)
    if c is None:
        return [RundownIssue(path, f"no coupon campaign {cid!r} in the ledger (create it first)", None, source)]
    status = getattr(c, "status", "active")
    if status != "active":
        return [RundownIssue(path, f"campaign {cid!r} is {status}", None, source)]
    return []


# --- timeline -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    index: int  # position in the show (0, 1, 2 …)
    segment: Any  # one of the segment models
    start: float  # show time
    end: float
    loop: int  # which pass over the body (0 for opening/closing)

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Timeline:
    """Timed slots for a show of ``hours`` starting at ``start``: the opening once, the body looped (when
    ``loop``) while it fits, a Q&A slot for any remainder, the closing last."""

    def __init__(self, rundown: Rundown, start: float, hours: float | None = None):
        self.rundown = rundown
        self.start = start
        self.hours = rundown.hours if hours is None else hours
        self.end = start + self.hours * 3600

    def __iter__(self) -> Iterator[Slot]:
        r = self.rundown
        t, i = self.start, 0
        opening, closing = r.opening(), r.closing()
        close_s = closing.minutes * 60 if closing else 0.0
        last = self.end - close_s
        if opening:
            end = min(t + opening.minutes * 60, last)
            if end > t:
                yield Slot(i, opening, t, end, 0)
                i, t = i + 1, end
        body = r.body()
        n = 0
        while body and t < last:
            seg = body[n % len(body)]
            dur = seg.minutes * 60
            if t + dur > last + 1e-6:
                if last - t >= 30:  # the tail: questions until the closing
                    yield Slot(i, QASegment(type="qa", minutes=(last - t) / 60), t, last, n // len(body))
                    i += 1
                t = last
                break
            yield Slot(i, seg, t, t + dur, n // len(body))
            i, t, n = i + 1, t + dur, n + 1
            if not r.loop and n >= len(body):
                break
        if closing:
            yield Slot(i, closing, t, t + close_s, 0)

    def slots(self, limit: int = 100_000) -> list[Slot]:
        out = []
        for s in self:
            out.append(s)
            if len(out) >= limit:
                break
        return out
