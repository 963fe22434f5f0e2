"""Typed frames passed between the room's processors, and the pydantic shapes at its edges.

Inside the danmaku path frames are slotted dataclasses (thousands per second); what leaves the
room — to the console WebSocket, the HTTP API, the CLI's JSON — is a pydantic model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

# --- inside the pipeline ---------------------------------------------------------------------


@dataclass(slots=True)
class Danmaku:
    """One viewer message as it arrives."""

    merchant: str
    room_id: str
    viewer_id: str
    text: str
    ts: float  # show time (clock.now())
    context_sku: str | None = None  # the product on screen when it was sent
    t_in: float = 0.0  # time.perf_counter() at ingest (latency bookkeeping)
    # Whether the sender vouched for ``viewer_id``: the merchant's authenticated danmaku API does; a live
    # platform's unsigned user id (connectors/) does not — then the text reply treats the viewer as anonymous.
    verified: bool = True
    reply: bool = True  # False: someone else answers it (a connector answers through the agent itself)


Kind = Literal[
    "question", "coupon_request", "greeting", "chatter", "spam", "abuse", "injection", "duplicate", "empty", "flood"
]


@dataclass(slots=True)
class Triaged:
    """A danmaku after triage: what it is, and (for questions) what it is about."""

    msg: Danmaku
    text: str  # sanitized
    key: str  # normalized text used for dedupe and the embedding cache
    kind: Kind
    intent: str = "other"
    topics: frozenset[str] = frozenset()
    sku: str | None = None  # named in the text, else the product on screen
    named_sku: bool = False
    lang: str = "zh"


@dataclass(slots=True)
class RoomEvent:
    """A behaviour event in a room (the audience layer's event types)."""

    type: (
        str  # enter, leave, watch, product_click, add_to_cart, purchase, comment, like, share, coupon_claim, coupon_use
    )
    viewer_id: str
    ts: float
    sku: str | None = None
    amount: float | None = None
    seconds: float | None = None
    campaign_id: str | None = None
    coupon_used: bool = False
    event_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- at the edges ---------------------------------------------------------------------------


class FactRef(BaseModel):
    fact_id: str
    sku: str | None = None
    text: str


class ClusterView(BaseModel):
    """A cluster of similar questions in the sliding window (what the console shows as 热门问题)."""

    cluster_id: str
    label: str  # what the viewers ask about, e.g. "敏感肌适用性"
    topic: str | None = None
    sku: str | None = None
    viewers: int  # distinct viewers asking within the window
    messages: int
    examples: list[str] = Field(default_factory=list)
    first_at: float
    last_at: float
    hot: bool = False  # crossed the suggestion threshold
    answered_at: float | None = None


class Suggestion(BaseModel):
    """A talking point for the host (智能话术推荐)."""

    suggestion_id: str
    merchant: str
    room_id: str
    cluster_id: str
    topic: str | None = None
    label: str
    message: str  # "多位观众关注敏感肌适用性，建议重点讲解"
    say: str  # a compliant, fact-grounded line the host can read out
    facts: list[FactRef] = Field(default_factory=list)
    sku: str | None = None
    viewers: int
    examples: list[str] = Field(default_factory=list)
    created_at: float  # show time
    latency_ms: float = 0.0  # from the message that crossed the threshold to this suggestion


AlertKind = Literal[
    "entry_surge_short_stay",
    "conversion_drop",
    "question_unanswered",
    "sku_missing",
    "coupon_unavailable",
    "llm_failed",
    "tts_failed",
    "empty_room",
    "flood",
    "connector_lagging",  # a live-platform connector went quiet while the show is live (connectors/)
    "connector_failing",  # … or is down / refusing what it receives
]


class Alert(BaseModel):
    alert_id: str
    merchant: str
    room_id: str
    kind: AlertKind
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str
    at: float  # show time
    action: Literal["flash_coupon", "answer_cluster", "hook", "skip_segment", "none"] = "none"
    data: dict[str, Any] = Field(default_factory=dict)


class SpokenLine(BaseModel):
    """One sentence the host said (text track / subtitles), in order."""

    seq: int
    text: str
    kind: Literal["script", "answer", "coupon", "greeting", "thanks", "bridge", "hook", "filler", "reply"]
    at: float
    segment: int | None = None
    sku: str | None = None
    source: Literal["template", "llm", "fastpath", "system"] = "template"
    cluster_id: str | None = None
    voiced: bool = False  # the TTS spoke it (text-only otherwise)
    label: str = "AI生成"


class Reply(BaseModel):
    """A text answer to one viewer (not spoken)."""

    viewer_id: str
    question: str
    answer: str
    at: float
    cluster_id: str | None = None
    label: str = "AI生成"
