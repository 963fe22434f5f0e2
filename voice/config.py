"""Voice wire constants. The knobs are ``settings.voice`` (``core.settings.VoiceSettings``,
env ``LIVEROOM_VOICE_*``).

The STT and TTS services are chosen by name. Besides the built-in offline services
(``whisper``/``stub`` and ``espeak``/``piper``), ``module:factory`` names any importable callable
that returns a Pipecat ``STTService``/``TTSService`` (a cloud one, say), called with the keyword
arguments in ``stt_options``/``tts_options`` (plus ``lang="zh"|"en"``, the room's language, when it
takes a ``lang`` argument). So switching to a cloud service is a configuration change, e.g.::

    LIVEROOM_VOICE_STT=pipecat.services.deepgram.stt:DeepgramSTTService
    LIVEROOM_VOICE_STT_OPTIONS='{"api_key": "..."}'
"""

from __future__ import annotations

from core.settings import VoiceSettings

__all__ = ["FRAME_MS", "SAMPLE_RATE", "VoiceSettings"]

SAMPLE_RATE = 16_000  # the wire format, both directions: PCM s16le mono
FRAME_MS = 20  # what the browser client sends; any size up to MAX_AUDIO_FRAME_BYTES is accepted
