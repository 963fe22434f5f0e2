"""The voice WebSocket wire protocol (docs/voice.md) as a Pipecat ``FrameSerializer``.

Client → server: binary frames of raw PCM (s16le, 16 kHz, mono; any length up to 1 s, even
byte count) and JSON text frames (``start``, ``interrupt``, ``ask``, ``ping``).
Server → client: binary frames of the bot's PCM (same format) and JSON events.

Bad input never reaches the pipeline: the serializer answers it with an ``error`` event (sent
straight back through the output transport) and drops it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.serializers.base_serializer import FrameSerializer
from pydantic import BaseModel, field_validator

from core import wire
from voice.config import SAMPLE_RATE
from voice.frames import ClientInterruptFrame, TextQuestionFrame

MAX_AUDIO_FRAME_BYTES = SAMPLE_RATE * 2  # one second of audio per binary frame at most
MAX_TEXT_FRAME_BYTES = wire.MAX_TEXT_FRAME_BYTES


class AskFrame(BaseModel):
    text: str

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("`ask` needs a non-empty `text`")
        return v[:5000]


# the voice socket's control frames, decoded by core.wire
_VOICE_FRAMES: dict[str, type[BaseModel] | None] = {"start": None, "interrupt": None, "ask": AskFrame, "ping": None}
ERROR_REPEAT_SECS = 1.0  # the same error code is reported at most once a second (audio arrives 50x/s)

# Containers people send by mistake instead of raw PCM (what MediaRecorder and files produce). Only
# signatures of 4+ bytes: shorter ones (an MP3 frame sync, 0xFFFB) turn up in real PCM every few seconds.
_MAGIC = {
    b"RIFF": "a WAV/RIFF file",
    b"OggS": "Ogg (Opus/Vorbis)",
    b"\x1aE\xdf\xa3": "WebM/Matroska",
    b"fLaC": "FLAC",
    b"ID3\x03": "MP3",
    b"ID3\x04": "MP3",
    b"#!AMR": "AMR",
}

AUDIO_FORMAT = {"encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE, "channels": 1}


def event(kind: str, **fields: Any) -> OutputTransportMessageUrgentFrame:
    """A JSON event for the client, sent as soon as it reaches the output transport."""
    return OutputTransportMessageUrgentFrame(message={"type": kind, **fields})


def error_event(code: str, message: str, **fields: Any) -> OutputTransportMessageUrgentFrame:
    return OutputTransportMessageUrgentFrame(message=wire.error_frame(code, message, **fields))


class VoiceSerializer(FrameSerializer):
    """One per connection (it remembers what the client announced)."""

    def __init__(self, on_error: Callable[[str], None] | None = None):
        super().__init__()
        self.audio_ok = True  # False after a `start` announcing a format we can't take
        self.last_rx = time.monotonic()
        self.bytes_in = 0
        self._on_error = on_error
        self._last_error: dict[str, float] = {}

    # --- server → client ------------------------------------------------------------------
    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, OutputAudioRawFrame):
            return frame.audio
        if isinstance(frame, (OutputTransportMessageFrame, OutputTransportMessageUrgentFrame)):
            if self.should_ignore_frame(frame):
                return None
            return json.dumps(frame.message, ensure_ascii=False)
        if isinstance(frame, InterruptionFrame):
            return json.dumps({"type": "interruption"})
        return None

    # --- client → server ------------------------------------------------------------------
    def _error(self, code: str, message: str, **fields: Any) -> Frame | None:
        now = time.monotonic()
        if now - self._last_error.get(code, -1e9) < ERROR_REPEAT_SECS:
            return None
        self._last_error[code] = now
        if self._on_error:
            self._on_error(code)
        return error_event(code, message, **fields)

    async def deserialize(self, data: str | bytes) -> Frame | None:
        self.last_rx = time.monotonic()
        if isinstance(data, (bytes, bytearray)):
            return self._audio(bytes(data))
        return self._control(data)

    def _audio(self, data: bytes) -> Frame | None:
        if not data:
            return None
        for magic, what in _MAGIC.items():
            if data.startswith(magic):
                return self._error(
                    wire.NOT_PCM, f"binary frames must be raw PCM s16le {SAMPLE_RATE} Hz mono, not {what}"
                )
        if len(data) % 2:
            return self._error(wire.NOT_PCM, "a PCM s16le frame has an even number of bytes")
        if len(data) > MAX_AUDIO_FRAME_BYTES:
            return self._error(wire.FRAME_TOO_LARGE, f"audio frames are at most {MAX_AUDIO_FRAME_BYTES} bytes (1 s)")
        if not self.audio_ok:
            return self._error(
                "audio_rejected", f"audio is ignored until a `start` announces pcm_s16le at {SAMPLE_RATE} Hz, mono"
            )
        self.bytes_in += len(data)
        return InputAudioRawFrame(audio=data, sample_rate=SAMPLE_RATE, num_channels=1)

    def _control(self, raw: str) -> Frame | None:
        try:
            kind, msg = wire.decode_text(raw, _VOICE_FRAMES, max_bytes=MAX_TEXT_FRAME_BYTES)
        except wire.WireError as e:
            return self._error(e.code, e.message)
        if kind == "start":
            return self._start(msg)
        if kind == "interrupt":
            return ClientInterruptFrame()
        if kind == "ask":
            return TextQuestionFrame(text=msg.text)
        return event("pong", t=time.time())  # ping

    def _start(self, msg: dict[str, Any]) -> Frame | None:
        rate, enc, ch = msg.get("sample_rate", SAMPLE_RATE), msg.get("encoding", "pcm_s16le"), msg.get("channels", 1)
        problems = []
        if rate != SAMPLE_RATE:
            problems.append(f"sample_rate {rate!r} (only {SAMPLE_RATE} is accepted; resample on the client)")
        if enc != "pcm_s16le":
            problems.append(f"encoding {enc!r} (only pcm_s16le)")
        if ch != 1:
            problems.append(f"channels {ch!r} (only mono)")
        if problems:
            self.audio_ok = False
            self._last_error.pop("unsupported_audio", None)
            return self._error(
                "unsupported_audio", "unsupported audio format: " + "; ".join(problems), expected=AUDIO_FORMAT
            )
        self.audio_ok = True
        return event("started", audio=AUDIO_FORMAT)
