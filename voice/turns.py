"""End of the viewer's turn for segmented STT (one result per VAD segment).

``SegmentUserTurnStopStrategy`` ends the turn once the VAD has stopped, every segment of the turn
has come back from the STT (a transcript or a ``NoTranscriptFrame``), and ``grace_secs`` have
passed without the viewer speaking again. It needs no STT latency estimate: with Whisper it waits
exactly as long as the transcript takes, with an instant STT it ends the turn right away.

``SmartTurnSegmentStopStrategy`` (``voice.turn_model = "smart-turn-v3"``) adds a semantic check:
at each VAD stop Pipecat's Smart Turn v3 (``LocalSmartTurnAnalyzerV3``, the ONNX model shipped in
the pipecat-ai wheel) judges from the audio whether the viewer has finished. If it says "not yet"
("我想问一下……"), the turn waits for more speech or for ``smart_turn_stop_secs`` of silence, so a
short VAD stop no longer cuts viewers off at a pause. The prediction (~0.1-0.2 s on one thread) runs
while Whisper transcribes the segment, off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import BaseUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from voice.frames import NoTranscriptFrame


class SegmentUserTurnStopStrategy(BaseUserTurnStopStrategy):
    def __init__(self, *, grace_secs: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        self.grace_secs = grace_secs
        self._speaking = False
        self._pending = 0  # VAD segments whose STT result hasn't arrived
        self._heard = False
        self._timer: asyncio.Task | None = None

    async def handle_user_turn_started(self):
        self._heard = False

    async def handle_user_turn_stopped(self):
        self._pending, self._heard = 0, False
        await self._cancel_timer()

    async def cleanup(self):
        await super().cleanup()
        await self._cancel_timer()

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._speaking = True
            await self._cancel_timer()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speaking = False
            self._pending += 1
        elif isinstance(frame, TranscriptionFrame):
            self._pending = max(0, self._pending - 1)
            self._heard = True
            await self._maybe_stop()
        elif isinstance(frame, NoTranscriptFrame):
            self._pending = max(0, self._pending - 1)
            await self._maybe_stop()
        return ProcessFrameResult.CONTINUE

    async def _maybe_stop(self):
        if self._speaking or self._pending:
            return
        if self.grace_secs <= 0:
            await self.trigger_user_turn_stopped()
            return
        await self._cancel_timer()
        self._timer = self.task_manager.create_task(self._after_grace(), f"{self}::grace")

    async def _after_grace(self):
        try:
            await asyncio.sleep(self.grace_secs)
        except asyncio.CancelledError:
            return
        self._timer = None
        if not self._speaking and not self._pending:
            await self.trigger_user_turn_stopped()

    async def _cancel_timer(self):
        if self._timer:
            t, self._timer = self._timer, None
            await self.task_manager.cancel_task(t)


def smart_turn_session(threads: int = 1) -> Any:
    """Smart Turn v3's ONNX Runtime session (the model bundled in pipecat-ai), built by Pipecat's own
    analyzer. Built once per process (``VoiceServices``): a session is read-only and thread-safe."""
    return LocalSmartTurnAnalyzerV3(cpu_count=threads)._session  # noqa: SLF001 — reuse Pipecat's loader


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """Pipecat's Smart Turn v3 analyzer on a shared session; its audio buffer stays per session."""

    def __init__(self, session: Any, *, stop_secs: float = 1.0, sample_rate: int | None = None):
        BaseSmartTurn.__init__(self, sample_rate=sample_rate, params=SmartTurnParams(stop_secs=stop_secs))
        self._log_data = False
        self._session = session


class SmartTurnSegmentStopStrategy(SegmentUserTurnStopStrategy):
    """The segment rule, and the turn analyzer agrees the viewer is done (or the silence fallback ran out)."""

    def __init__(self, *, analyzer: BaseTurnAnalyzer, grace_secs: float = 0.05, **kwargs):
        super().__init__(grace_secs=grace_secs, **kwargs)
        self.analyzer = analyzer
        self._complete = False
        self._predicting: asyncio.Task | None = None
        self.predictions: list[float] = []  # probability of "finished" per VAD stop (tests, traces)

    async def setup(self, setup: FrameProcessorSetup):
        await super().setup(setup)
        self.analyzer.set_sample_rate(setup.audio_in_sample_rate)

    async def cleanup(self):
        await super().cleanup()
        await self._cancel_prediction()
        await self.analyzer.cleanup()

    async def handle_user_turn_started(self):
        await super().handle_user_turn_started()
        self._complete = False

    async def handle_user_turn_stopped(self):
        await super().handle_user_turn_stopped()
        await self._cancel_prediction()
        self._complete = False
        self.analyzer.clear()

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, InputAudioRawFrame):
            # Silence since the VAD stop counted here; COMPLETE once it reaches the analyzer's stop_secs.
            if self.analyzer.append_audio(frame.audio, self._speaking) == EndOfTurnState.COMPLETE:
                self._complete = True
                await self._maybe_stop()
            return ProcessFrameResult.CONTINUE
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._complete = False
            await self._cancel_prediction()
            self.analyzer.update_vad_start_secs(frame.start_secs)
        result = await super().process_frame(frame)
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._predicting = self.task_manager.create_task(self._predict(), f"{self}::smart-turn")
        return result

    async def _predict(self) -> None:
        state, data = await self.analyzer.analyze_end_of_turn()
        self._predicting = None
        prob = getattr(data, "probability", None)
        if prob is not None:
            self.predictions.append(round(float(prob), 3))
        if state == EndOfTurnState.COMPLETE:
            self._complete = True
            await self._maybe_stop()

    async def _maybe_stop(self):
        if self._complete:
            await super()._maybe_stop()

    async def _cancel_prediction(self) -> None:
        if self._predicting:
            t, self._predicting = self._predicting, None
            await self.task_manager.cancel_task(t)


def voice_turn_strategies(grace_secs: float = 0.05, analyzer: BaseTurnAnalyzer | None = None) -> UserTurnStrategies:
    """VAD starts the turn (and interrupts the bot); the segment results end it — with ``analyzer``
    (Smart Turn), only once it judges the viewer finished or its silence fallback has run out."""
    stop = (
        SmartTurnSegmentStopStrategy(analyzer=analyzer, grace_secs=grace_secs)
        if analyzer is not None
        else SegmentUserTurnStopStrategy(grace_secs=grace_secs)
    )
    return UserTurnStrategies(start=[VADUserTurnStartStrategy()], stop=[stop])
