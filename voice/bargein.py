"""Barge-in: pause at once, interrupt only for real speech.

``BargeInGate`` sits between the VAD and the STT. While the bot is speaking, a
``VADUserStartedSpeakingFrame`` is held back and the bot's audio is paused (``BotPauseFrame``: the
output transport stops sending and tells the client to hold playback). Then either

- the viewer keeps talking for ``min_barge_in_secs`` → the held VAD frame is released: the STT
  transcribes the utterance from its pre-roll and the user-turn processor starts a turn, which
  broadcasts Pipecat's ``InterruptionFrame`` (the answer is abandoned, the client flushes);
- or the VAD stops first (a backchannel — "嗯", "mm-hmm" — or a cough) → ``BotResumeFrame``: the
  answer carries on from where it paused, and the sound is dropped (never transcribed).

With ``duplex="half"`` the viewer is not heard at all while the bot speaks (echo-safe without
echo cancellation; barge-in only through an explicit ``interrupt`` message).
"""

from __future__ import annotations

import time

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voice.frames import BotPauseFrame, BotResumeFrame, ClientInterruptFrame


class BargeInGate(FrameProcessor):
    def __init__(self, *, min_barge_in_secs: float = 0.8, duplex: str = "full", **kwargs):
        super().__init__(**kwargs)
        self.min_barge_in_secs = min_barge_in_secs
        self.duplex = duplex
        self.bot_speaking = False
        self._held: VADUserStartedSpeakingFrame | None = None
        self._held_secs = 0.0
        self._held_at = 0.0
        self._ignoring = False  # half duplex: swallowing an utterance made while the bot spoke
        self.stats = {"paused": 0, "resumed": 0, "committed": 0, "ignored": 0, "client_interrupts": 0}

    @property
    def holding(self) -> bool:
        return self._held is not None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)

        if isinstance(frame, BotStartedSpeakingFrame):
            self.bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.bot_speaking = False
            if self._held is not None:  # the bot finished while the viewer talked: just a turn now
                await self._release("bot finished")
        elif isinstance(frame, VADUserStartedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            if self.bot_speaking:
                if self.duplex == "half":
                    self._ignoring = True
                    self.stats["ignored"] += 1
                    return
                self._held, self._held_secs, self._held_at = frame, 0.0, time.monotonic()
                self.stats["paused"] += 1
                await self.push_frame(BotPauseFrame())
                return
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            if self._ignoring:
                self._ignoring = False
                return
            if self._held is not None:
                held_for = time.monotonic() - self._held_at
                self._held = None
                self.stats["resumed"] += 1
                logger.debug(f"{self}: short sound while the bot spoke ({held_for:.2f}s): resuming")
                await self.push_frame(BotResumeFrame(reason="short"))
                return
        elif isinstance(frame, ClientInterruptFrame):
            self.stats["client_interrupts"] += 1
            if self._held is not None:
                await self._release("client interrupt")
            else:
                await self.broadcast_interruption()
            return
        elif isinstance(frame, InterruptionFrame):
            self._held = None
        elif isinstance(frame, InputAudioRawFrame) and self._held is not None:
            await self.push_frame(frame, direction)
            self._held_secs += len(frame.audio) / 2 / (frame.sample_rate * frame.num_channels)
            if self._held_secs >= self.min_barge_in_secs:
                await self._release("barge-in")
            return

        await self.push_frame(frame, direction)

    async def _release(self, why: str) -> None:
        frame, self._held = self._held, None
        if frame is None:
            return
        self.stats["committed"] += 1
        logger.debug(f"{self}: releasing the viewer's speech ({why})")
        await self.push_frame(frame)
