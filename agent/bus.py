"""The answer bus: every finished answer, whatever the channel, as one event for whoever listens.

``Agent.stream`` publishes an ``AnsweredEvent`` for each final answer (the one place every channel —
danmaku WebSocket, HTTP ask, voice, the OpenAI-compatible ``/v1`` endpoint, the virtual host — passes
through). Subscribers (the Prometheus metrics, the console's live answer log) are plain callables run
synchronously in the publisher's thread; they must be quick. A failing subscriber is logged and never
affects the answer or the other subscribers.

The bus is owned by the app's container (``Container.answer_bus``), not a module global.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pydantic import BaseModel, Field

from agent.messages import AgentAnswer, Citation, ViewerMessage

log = logging.getLogger("liveroom.agent.bus")


class AnsweredEvent(BaseModel):
    """One answer the agent gave: who asked what, where, and what came back."""

    merchant: str
    room_id: str
    viewer_id: str
    channel: str  # ws | http | voice | v1 | host | console | sim (ViewerMessage.channel)
    question: str
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    path: str = "fast"  # fast | llm
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    intent: str = ""
    refused: bool = False
    kb_version: str | None = None
    lang: str = "zh"
    flags: list[str] = Field(default_factory=list)
    at: float = Field(default_factory=time.time)  # unix timestamp of the answer

    @classmethod
    def of(cls, msg: ViewerMessage, ans: AgentAnswer) -> AnsweredEvent:
        return cls(
            merchant=msg.merchant,
            room_id=msg.room_id,
            viewer_id=msg.viewer_id,
            channel=msg.channel,
            question=msg.text,
            answer=ans.answer,
            citations=list(ans.citations),
            path=ans.path,
            latency_ms=ans.latency_ms,
            first_token_ms=ans.first_token_ms,
            intent=ans.intent,
            refused=ans.refused,
            kb_version=ans.kb_version,
            lang=ans.lang,
            flags=list(ans.flags),
        )


Subscriber = Callable[[AnsweredEvent], None]


class AnswerBus:
    """In-process publish/subscribe of ``AnsweredEvent``s."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every published answer; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not callback]

        return unsubscribe

    def publish(self, event: AnsweredEvent) -> None:
        for callback in self._subscribers:  # a snapshot: (un)subscribing replaces the list
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a listener never breaks an answer
                log.exception("answer subscriber %r failed", callback)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
