"""LiveRoom's own Pipecat frames (everything else is a stock Pipecat frame)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import DataFrame, SystemFrame


@dataclass
class BotPauseFrame(SystemFrame):
    """Hold the bot's audio: the viewer may be barging in (not decided yet)."""


@dataclass
class BotResumeFrame(SystemFrame):
    """The sound that paused the bot was a backchannel or a noise: carry on where it paused."""

    reason: str = ""


@dataclass
class ClientInterruptFrame(SystemFrame):
    """The client asked to stop the bot (push-to-talk pressed, a stop button)."""


@dataclass
class ClientConfigFrame(SystemFrame):
    """A ``start`` control message: what the client will send."""

    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class TextQuestionFrame(SystemFrame):
    """A typed question on the voice socket: answered like a spoken one (and spoken back)."""

    text: str = ""


@dataclass
class NoTranscriptFrame(DataFrame):
    """A segment the STT heard nothing in (noise, silence): lets the turn end without waiting."""


@dataclass
class AnswerTurnFrame(DataFrame):
    """Internal to the agent processor: answer now (queued behind the turn's transcripts)."""

    source: str = "voice"
    text: str = ""
