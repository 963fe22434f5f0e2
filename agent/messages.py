"""Typed messages at the agent's edges: what a channel sends in, what comes back out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

MAX_TEXT_CHARS = 500  # danmaku are short; longer input is truncated (floods are cut, not processed)

# Where a message came in: the danmaku WebSocket, the HTTP ask endpoint, the voice socket, the
# OpenAI-compatible /v1 endpoint, the virtual host, the console's own previews, the demo simulator, a
# live-platform connector (connectors/: Douyin push, signed webhook, Bilibili, replay).
Channel = Literal["ws", "http", "voice", "v1", "host", "console", "sim", "connector"]
_LEGACY_CHANNELS = {"text": "ws", "api": "http", "openai": "v1"}  # earlier names, still accepted


class ViewerMessage(BaseModel):
    merchant: str
    room_id: str = "default"
    viewer_id: str = "anonymous"
    text: str = Field(default="", max_length=20_000)
    image_id: str | None = None
    context_sku: str | None = Field(default=None, max_length=64, description="the product on screen right now")
    lang: Literal["zh", "en"] | None = None  # None = detect
    channel: Channel = "ws"  # given by the caller; labels the answer on the answer bus (agent/bus.py)
    # Set by the channel when a signed viewer token vouched for ``viewer_id`` (audience/identity.py).
    # Only a verified viewer's profile, memory and coupons are used; anonymous ids are server-assigned.
    verified: bool = False

    @field_validator("channel", mode="before")
    @classmethod
    def _legacy_channel(cls, v: object) -> object:
        return _LEGACY_CHANNELS.get(v, v) if isinstance(v, str) else v


class Citation(BaseModel):
    fact_id: str
    sku: str | None = None


class ToolCallRecord(BaseModel):
    name: str
    arguments: dict[str, Any]
    result: Any = None
    ok: bool = True
    by: Literal["rules", "llm"] = "rules"  # who decided to call it


class AgentAnswer(BaseModel):
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    refused: bool = False
    path: Literal["fast", "llm"] = "fast"
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    intent: str = ""
    lang: str = "zh"
    label: str = "AI生成"  # the AI-generated-content label every agent message carries
    kb_version: str | None = None
    flags: list[str] = Field(default_factory=list)  # guardrail actions taken (rewrite, injection, …)


class AnswerDelta(BaseModel):
    """A streamed piece of an answer: whole sentences, each already guardrail-checked."""

    text: str
    index: int
