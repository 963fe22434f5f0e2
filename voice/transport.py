"""Pipecat's FastAPI WebSocket transport with LiveRoom's barge-in behaviour on the output side.

The output transport already paces audio in real time (one 40 ms chunk per 40 ms) and drops its
queue on an ``InterruptionFrame``; on top of that this one

- pauses sending on ``BotPauseFrame`` and resumes on ``BotResumeFrame`` (tentative barge-in),
- never sends a chunk once an interruption has been seen (a chunk already being written when the
  interruption arrived is dropped, so nothing follows the ``interruption`` event),
- tells the client ``bot.started_speaking`` / ``bot.stopped_speaking`` before the first / after the
  last chunk, and ``bot.paused`` / ``bot.resumed``,
- reports what was actually sent to the session's ``SpeechLedger``.
"""

from __future__ import annotations

import asyncio
import time

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketOutputTransport,
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)

from voice.frames import BotPauseFrame, BotResumeFrame
from voice.protocol import event
from voice.tts import SpeechLedger


class LiveRoomOutputTransport(FastAPIWebsocketOutputTransport):
    def __init__(self, *args, ledger: SpeechLedger | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._ledger = ledger
        self._resume = asyncio.Event()
        self._resume.set()
        self._discard = False
        self._speaking = False
        self._last_audio_at = 0.0
        self._tell_interruption = True
        self.audio_bytes_sent = 0

    async def _event(self, kind: str, **fields) -> None:
        await self._write_frame(event(kind, **fields))

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        if isinstance(frame, BotPauseFrame):
            if self._speaking and self._resume.is_set():
                self._resume.clear()
                await self._event("bot.paused")
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, BotResumeFrame):
            if not self._resume.is_set():
                self._resume.set()
                await self._event("bot.resumed", reason=frame.reason)
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, InterruptionFrame):
            # Only an audible bot is "interrupted": the client flushes on this event. (The client's
            # buffer may still be playing up to a second after the last chunk went out.)
            self._tell_interruption = self._speaking or time.monotonic() - self._last_audio_at < 1.0
            self._discard = True
            self._resume.set()
        elif isinstance(frame, (TTSAudioRawFrame, TTSStartedFrame)) and direction == FrameDirection.DOWNSTREAM:
            self._discard = False  # audio of a new answer (anything older was dropped with the queue)
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if not self._resume.is_set():
            await self._resume.wait()
        if self._discard:
            return False
        ok = await super().write_audio_frame(frame)
        if ok:
            self._last_audio_at = time.monotonic()
            self.audio_bytes_sent += len(frame.audio)
            if self._ledger is not None:
                self._ledger.sent(len(frame.audio) / 2 / (frame.sample_rate * frame.num_channels))
        return ok

    async def _write_frame(self, frame: Frame) -> bool:
        if isinstance(frame, InterruptionFrame) and not self._tell_interruption:
            return True
        return await super()._write_frame(frame)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, TTSTextFrame):  # a sentence's audio has gone out (timed or in sync)
                if self._ledger is not None and not self._discard:
                    self._ledger.sentence_done(frame.text)
            elif isinstance(frame, BotStartedSpeakingFrame):
                self._speaking = True
                await self._event("bot.started_speaking")
            elif isinstance(frame, BotStoppedSpeakingFrame):
                self._speaking = False
                self._resume.set()
                await self._event("bot.stopped_speaking")
        await super().push_frame(frame, direction)


class LiveRoomWebsocketTransport(FastAPIWebsocketTransport):
    """``FastAPIWebsocketTransport`` whose output is a ``LiveRoomOutputTransport``."""

    def __init__(self, websocket, params: FastAPIWebsocketParams, *, ledger: SpeechLedger | None = None):
        super().__init__(websocket, params)
        self._output = LiveRoomOutputTransport(self, self._client, self._params, ledger=ledger, name=self._output_name)
