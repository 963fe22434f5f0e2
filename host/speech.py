"""Where the host's sentences go: a text track (subtitles, always) and a voice (TTS, when there is one).

``SpeechSink`` is the small interface a voice implements: ``await sink.speak(text) -> seconds of
audio``. Implementations here:

- ``EspeakSink``: the voice issue's offline stack (``voice.tts.plan_speech`` for pinyin/number
  normalization + espeak-ng), audio to an ``AudioOut`` (discard, or a WAV file);
- ``PipecatSink``: pushes ``TTSSpeakFrame``s into a running Pipecat ``PipelineTask`` (the voice
  issue's pipeline, whatever TTS service it was configured with).

``Speaker`` paces the show: each sentence takes its speaking time on the show clock; a TTS failure
never stops the show — the sentence stays on the text track, the voice is retried after a pause.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import wave
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from core.clock import Clock
from core.errors import Unavailable
from host.frames import SpokenLine
from host.pipeline import Bus

log = logging.getLogger("liveroom.host")


class SpeechError(Unavailable):
    code = "speech_unavailable"


class SpeechSink(Protocol):
    name: str

    async def speak(self, text: str) -> float:
        """Say ``text``; return the seconds of audio produced (raise ``SpeechError`` on failure)."""
        ...


class AudioOut:
    """Discards audio, counting it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.bytes = 0

    def write(self, pcm: bytes, rate: int) -> None:
        self.bytes += len(pcm)
        self.seconds += len(pcm) / 2 / rate

    def close(self) -> None:
        pass


class WavOut(AudioOut):
    def __init__(self, path: str, rate: int = 22050):
        super().__init__()
        self._w = wave.open(str(path), "wb")
        self._w.setnchannels(1)
        self._w.setsampwidth(2)
        self._w.setframerate(rate)
        self.rate = rate

    def write(self, pcm: bytes, rate: int) -> None:
        super().write(pcm, rate)
        self._w.writeframes(pcm)

    def close(self) -> None:
        self._w.close()


class EspeakSink:
    """espeak-ng through the voice package's text normalization (Chinese as tone-numbered pinyin)."""

    name = "espeak"
    RATE = 22050

    def __init__(self, out: AudioOut | None = None, lang: str = "zh", wpm: int = 175, timeout_s: float = 20.0):
        from voice.tts import plan_speech  # the voice issue's normalization

        if shutil.which("espeak-ng") is None:
            raise SpeechError("espeak-ng is not installed (scripts/install_voice_deps.sh)")
        self._plan = plan_speech
        self.out = out or AudioOut()
        self.lang, self.wpm, self.timeout_s = lang, wpm, timeout_s
        self._voices = {"zh": "cmn-latn-pinyin", "en": "en-us"}

    async def _run(self, voice: str, text: str) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng",
            "-v",
            voice,
            "-s",
            str(self.wpm),
            "--stdout",
            text,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            data, _ = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            raise SpeechError(f"espeak-ng exited with {proc.returncode}")
        return data[44:]  # WAV header

    async def speak(self, text: str) -> float:
        seconds = 0.0
        try:
            for seg in self._plan(text, self.lang):
                pcm = await self._run(self._voices[seg.voice], seg.text)
                self.out.write(pcm, self.RATE)
                seconds += len(pcm) / 2 / self.RATE
        except (TimeoutError, OSError) as e:
            raise SpeechError(str(e)) from e
        return seconds


class PipecatSink:
    """Speak through a running Pipecat pipeline (``TTSSpeakFrame`` queued into its task)."""

    name = "pipecat"

    def __init__(self, task: Any, chars_per_second: float = 4.5):
        self.task, self.cps = task, chars_per_second

    async def speak(self, text: str) -> float:
        from pipecat.frames.frames import TTSSpeakFrame

        try:
            await self.task.queue_frames([TTSSpeakFrame(text=text, append_to_context=False)])
        except Exception as e:
            raise SpeechError(str(e)) from e
        return len(text) / self.cps


class TextTrack:
    """Subtitles: the last ``keep`` lines, published on the room bus as ``line``."""

    def __init__(self, bus: Bus | None = None, keep: int = 200, echo: Callable[[SpokenLine], None] | None = None):
        self.bus, self.lines, self.echo = bus, deque(maxlen=keep), echo
        self.count = 0

    def show(self, line: SpokenLine) -> None:
        self.lines.append(line)
        self.count += 1
        if self.bus is not None:
            self.bus.publish("line", line)
        if self.echo is not None:
            self.echo(line)


class Speaker:
    """Text track always; TTS when configured. Paces each sentence on the show clock."""

    def __init__(
        self,
        clock: Clock,
        track: TextTrack,
        tts: SpeechSink | None = None,
        chars_per_second: float = 4.5,
        retry_after_s: float = 60.0,
        on_failure: Callable[[str], None] | None = None,
    ):
        self.clock, self.track, self.tts = clock, track, tts
        self.cps = chars_per_second
        self.retry_after_s = retry_after_s
        self.on_failure = on_failure
        self.voice_down_until = 0.0
        self.stats = {"lines": 0, "voiced": 0, "tts_failures": 0, "audio_s": 0.0}

    def duration(self, text: str) -> float:
        return max(1.0, len(text) / self.cps)

    async def say(self, line: SpokenLine) -> None:
        """Show the line, voice it (if the voice is up), and return when it has been said."""
        self.stats["lines"] += 1
        voiced = False
        spoken_s = self.duration(line.text)
        if self.tts is not None and self.clock.now() >= self.voice_down_until:
            try:
                audio_s = await self.tts.speak(line.text)
                voiced = True
                self.stats["voiced"] += 1
                self.stats["audio_s"] += audio_s
                spoken_s = max(spoken_s, audio_s) if audio_s else spoken_s
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the voice failed: the show goes on, on the text track
                self.stats["tts_failures"] += 1
                self.voice_down_until = self.clock.now() + self.retry_after_s
                log.warning("TTS failed (%s); text only for %.0fs", e, self.retry_after_s)
                if self.on_failure:
                    self.on_failure(str(e))
        line.voiced = voiced
        self.track.show(line)
        await self.clock.sleep(spoken_s)
