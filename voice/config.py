"""Voice configuration: every knob is an env var with the ``LIVEROOM_VOICE_`` prefix.

The STT and TTS services are chosen by name. Besides the built-in offline services
(``whisper``/``stub`` and ``espeak``/``piper``), ``module:factory`` names any importable callable
that returns a Pipecat ``STTService``/``TTSService`` (a cloud one, say), called with the keyword
arguments in ``stt_options``/``tts_options`` (plus ``lang="zh"|"en"``, the room's language, when it
takes a ``lang`` argument). So switching to a cloud service is a configuration change, e.g.::

    LIVEROOM_VOICE_STT=pipecat.services.deepgram.stt:DeepgramSTTService
    LIVEROOM_VOICE_STT_OPTIONS='{"api_key": "..."}'
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SAMPLE_RATE = 16_000  # the wire format, both directions: PCM s16le mono
FRAME_MS = 20  # what the browser client sends; any size up to MAX_AUDIO_FRAME_BYTES is accepted


class VoiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVEROOM_VOICE_", env_file=".env", extra="ignore")

    # Services. "whisper" / "espeak" are the offline defaults; "module:callable" plugs any Pipecat service.
    stt: str = "whisper"
    stt_options: dict = Field(default_factory=dict)
    tts: str = "espeak"
    tts_options: dict = Field(default_factory=dict)

    # faster-whisper (the packaged Whisper base, provisioned by `liveroom models install`).
    whisper_model: str = "whisper-base"  # a provisioned model name, or a directory
    whisper_compute_type: str = "int8"
    whisper_threads: int = 2
    whisper_max_new_tokens: int = 48  # bounded: Whisper can loop on noise
    whisper_no_speech_prob: float = 0.6

    # espeak-ng voices and speed (words per minute).
    espeak_voice_en: str = "en-us"
    espeak_voice_zh: str = "cmn-latn-pinyin"  # fed pinyin with tone digits (pypinyin)
    espeak_rate: int = 175
    # Optional Piper English voice (GPL-3.0 `piper-tts`, not installed by default): an .onnx path.
    piper_voice: Path | None = None

    # Silero VAD (the model bundled in the pipecat-ai wheel).
    vad_confidence: float = 0.6
    vad_start_secs: float = 0.1
    vad_stop_secs: float = 0.25
    vad_min_volume: float = 0.5

    # Turn taking.
    turn_grace_secs: float = 0.05  # after the VAD stop, how long the viewer may resume the same turn
    turn_stop_timeout_secs: float = 6.0  # a turn whose transcript never comes is closed after this
    # Barge-in: the bot's audio pauses as soon as the VAD hears the viewer, and the answer is only
    # abandoned once the viewer has kept talking this long (VAD start → still speaking). Shorter
    # sounds — "嗯", "mm-hmm", a cough — resume the answer where it paused.
    min_barge_in_secs: float = 0.8
    max_pause_secs: float = 3.0  # a pause nothing resolves resumes by itself
    duplex: Literal["full", "half"] = "full"  # half: the viewer's audio is ignored while the bot speaks

    # Sessions.
    max_sessions: int = 4  # concurrent voice sessions per process (2 cores: Whisper is the bottleneck)
    idle_timeout_secs: float = 60.0  # a client that sends nothing for this long is closed
    default_lang: Literal["zh", "en"] = "zh"
    log_level: str = "WARNING"  # Pipecat's (loguru) log level
    web_dir: Path | None = None  # the browser client; default: <repo>/web


def get_voice_settings() -> VoiceSettings:
    return VoiceSettings()
