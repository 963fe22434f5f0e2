"""End of the viewer's turn for segmented STT (one result per VAD segment).

``SegmentUserTurnStopStrategy`` ends the turn once the VAD has stopped, every segment of the turn
has come back from the STT (a transcript or a ``NoTranscriptFrame``), and ``grace_secs`` have
passed without the viewer speaking again. It needs no STT latency estimate: with Whisper it waits
exactly as long as the transcript takes, with an instant STT it ends the turn right away.
"""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import (
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
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


def voice_turn_strategies(grace_secs: float = 0.05) -> UserTurnStrategies:
    """VAD starts the turn (and interrupts the bot); the segment results end it."""
    return UserTurnStrategies(
        start=[VADUserTurnStartStrategy()], stop=[SegmentUserTurnStopStrategy(grace_secs=grace_secs)]
    )
