"""The LiveRoom agent as a Pipecat processor: the same brain, tools and guardrails as text.

A finished viewer turn (its transcripts) becomes a ``ViewerMessage(channel="voice")`` for
``Agent.stream``; every guardrail-checked sentence goes to the TTS as soon as the agent yields it
(``AggregatedTextFrame``: no re-aggregation, no waiting for the next sentence), and to the client as
an ``answer`` event. An ``InterruptionFrame`` cancels the answer and records what was actually said
as an interrupted turn in the viewer's conversation memory (``Memory.mark_interrupted``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.text.base_text_aggregator import TextType
from rapidfuzz import fuzz

from agent.core import Agent
from agent.messages import AgentAnswer, AnswerDelta, ViewerMessage
from core.errors import LiveRoomError
from knowledge.store import UnknownMerchant
from voice.frames import AnswerTurnFrame, NoTranscriptFrame, TextQuestionFrame
from voice.protocol import error_event, event
from voice.tts import SpeechLedger

log = logging.getLogger("liveroom.voice")

# Backchannels and fillers: acknowledged, never answered (whatever the bot is doing).
_FILLERS = {
    "嗯",
    "嗯嗯",
    "嗯哼",
    "哦",
    "噢",
    "喔",
    "啊",
    "呃",
    "额",
    "对",
    "对对",
    "对对对",
    "好",
    "好的",
    "是",
    "是的",
    "行",
    "哈",
    "哈哈",
    "mm",
    "mmm",
    "mhm",
    "hmm",
    "hm",
    "uh",
    "um",
    "uhhuh",
    "mmhmm",
    "yeah",
    "yes",
    "yep",
    "ok",
    "okay",
    "right",
    "sure",
    "oh",
    "ah",
    "wow",
    "thankyou",
    "thanks",
    "you",
}


def is_filler(text: str) -> bool:
    """True for transcripts that carry no question: "嗯", "mm-hmm.", "Okay!" (and empty ones)."""
    t = re.sub(r"[\s\W_]+", "", text.lower())
    return not t or t in _FILLERS or (len(set(t)) == 1 and t[0] in "嗯哦啊呃额")


class LiveRoomAgentProcessor(FrameProcessor):
    def __init__(
        self,
        agent: Agent,
        *,
        merchant: str,
        room_id: str,
        viewer_id: str,
        lang: str,
        ledger: SpeechLedger,
        on_answer: Callable[[AgentAnswer], None] | None = None,
        echo_threshold: float = 85.0,
        verified: bool = False,
        limit: Callable[[], None] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.verified = verified  # a viewer token vouched for viewer_id (voice/session.py)
        self.limit = limit  # the room's abuse limits per question (raises core.errors.LiveRoomError)
        self.agent, self.ledger, self.on_answer = agent, ledger, on_answer
        self.merchant, self.room_id, self.viewer_id, self.lang = merchant, room_id, viewer_id, lang
        self.echo_threshold = echo_threshold
        self._texts: list[str] = []
        self._task: asyncio.Task | None = None
        self._answer_id: str | None = None
        self._question = ""
        self._answer_text = ""  # what the current answer says (sentences handed to the TTS)
        self._final: AgentAnswer | None = None
        self._bot_speaking = False
        self._turns = 0
        self._turn_closed = False  # this turn's AnswerTurnFrame was handled: later transcripts are late
        self.late_transcripts = 0  # transcripts answered after their turn had been closed
        self.interrupted: list[dict] = []  # (for tests and traces) what each interruption recorded

    # --- frames ---------------------------------------------------------------------------
    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)

        if isinstance(frame, UserStartedSpeakingFrame):
            self._texts = []
            self._turn_closed = False
            await self.push_frame(frame, direction)
        elif isinstance(frame, TranscriptionFrame):
            text = frame.text.strip()
            if text and self._turn_closed:
                # A transcript that came back after its turn was closed (the turn-stop timeout on a
                # busy server, when the STT took longer than that): answer it rather than drop it.
                self.late_transcripts += 1
                await self.push_frame(event("transcript", text=text, final=True, late=True))
                await self.queue_frame(AnswerTurnFrame(source="voice", text=text))
            elif text:
                self._texts.append(text)
                await self.push_frame(event("transcript", text=text, final=True))
        elif isinstance(frame, InterimTranscriptionFrame):
            await self.push_frame(event("transcript", text=frame.text.strip(), final=False))
        elif isinstance(frame, NoTranscriptFrame):
            pass
        elif isinstance(frame, UserStoppedSpeakingFrame):
            await self.push_frame(frame, direction)
            # Queued behind this turn's transcripts (data frames, still in our queue).
            await self.queue_frame(AnswerTurnFrame(source="voice"))
        elif isinstance(frame, AnswerTurnFrame):
            text = frame.text or " ".join(self._texts)
            self._texts = []
            if frame.source == "voice" and not frame.text:
                self._turn_closed = True
            await self._start_answer(text, frame.source)
        elif isinstance(frame, TextQuestionFrame):
            if self._task or self.ledger.unsaid:
                await self.broadcast_interruption()
            await self.push_frame(event("transcript", text=frame.text, final=True, source="text"))
            await self.queue_frame(AnswerTurnFrame(source="text", text=frame.text))
        elif isinstance(frame, InterruptionFrame):
            await self._interrupted()
            await self.push_frame(frame, direction)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            await self.push_frame(frame, direction)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            if self._final is not None and self._task is None and not self.ledger.unsaid:
                self._answer_done()
            await self.push_frame(frame, direction)
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._cancel_task()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    # --- answers --------------------------------------------------------------------------
    def _is_echo(self, text: str) -> bool:
        """The bot hearing itself (no echo cancellation): the "question" is what it is saying."""
        said = self._answer_text
        if not said or len(text) < 4:
            return False
        return fuzz.partial_ratio(text.lower(), said.lower()) >= self.echo_threshold

    async def _start_answer(self, text: str, source: str) -> None:
        if is_filler(text):
            if text.strip():
                await self.push_frame(event("transcript.ignored", text=text, reason="backchannel"))
            return
        if source == "voice" and (self._bot_speaking or self.ledger.unsaid) and self._is_echo(text):
            await self.push_frame(event("transcript.ignored", text=text, reason="echo"))
            return
        await self._cancel_task()
        self._turns += 1
        self._answer_id = f"v{self._turns}"
        self._question, self._answer_text, self._final = text, "", None
        self.ledger.reset()
        self._task = self.create_task(self._answer(text, self._answer_id), f"{self}::answer")

    async def _answer(self, text: str, answer_id: str) -> None:
        msg = ViewerMessage(
            merchant=self.merchant,
            room_id=self.room_id,
            viewer_id=self.viewer_id,
            verified=self.verified,
            text=text,
            lang=self.lang,
            channel="voice",
        )
        try:
            if self.limit is not None:
                try:
                    self.limit()
                except LiveRoomError as e:
                    extra = e.detail if isinstance(e.detail, dict) else {}
                    await self.push_frame(error_event(e.code, e.message, id=answer_id, **extra))
                    return
            await self.push_frame(LLMFullResponseStartFrame())
            async for ev in self.agent.stream(msg):
                if isinstance(ev, AnswerDelta):
                    self._answer_text += ev.text
                    await self.push_frame(event("answer", id=answer_id, index=ev.index, text=ev.text))
                    await self.push_frame(AggregatedTextFrame(ev.text, TextType.SENTENCE))
                else:
                    self._final = ev
                    if self.on_answer:
                        self.on_answer(ev)
                    await self.push_frame(
                        event(
                            "answer.done",
                            id=answer_id,
                            **ev.model_dump(
                                include={
                                    "answer",
                                    "citations",
                                    "refused",
                                    "path",
                                    "latency_ms",
                                    "first_token_ms",
                                    "intent",
                                    "lang",
                                    "label",
                                    "kb_version",
                                    "flags",
                                }
                            ),
                        )
                    )
            await self.push_frame(LLMFullResponseEndFrame())
        except asyncio.CancelledError:
            raise
        except UnknownMerchant as e:
            await self.push_frame(error_event("unknown_merchant", str(e), id=answer_id))
        except Exception:  # one failed answer must not end the session
            log.exception("voice answer failed")
            await self.push_frame(error_event("internal", "answer failed; please ask again", id=answer_id))
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def _answer_done(self) -> None:
        self._answer_id, self._final, self._answer_text = None, None, ""
        self.ledger.reset()

    async def _interrupted(self) -> None:
        """Record the half-said answer (what the viewer actually heard) as interrupted."""
        running = self._task is not None
        if self._answer_id is None or not (running or self.ledger.unsaid):
            await self._cancel_task()
            return
        said = self.ledger.said()
        m, r, v = self.merchant, self.room_id, self.viewer_id
        if self._final is not None:
            self.agent.memory.mark_interrupted(m, r, v, said)
        else:  # the agent hadn't finished (LLM path): it recorded nothing yet
            await self._cancel_task()
            self.agent.memory.record(m, r, v, "viewer", self._question)
            self.agent.memory.record(m, r, v, "agent", said, interrupted=True)
        self.interrupted.append(
            {
                "id": self._answer_id,
                "question": self._question,
                "said": said,
                "answer": self._final.answer if self._final else self._answer_text,
            }
        )
        await self.push_frame(event("answer.interrupted", id=self._answer_id, said=said))
        await self._cancel_task()
        self._answer_done()

    async def _cancel_task(self) -> None:
        if self._task is not None:
            t, self._task = self._task, None
            await self.cancel_task(t)
