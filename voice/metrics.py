"""Per-turn voice latency: Prometheus histograms and a turn trace.

``TurnTracker`` is a Pipecat observer: it timestamps the frames that mark each stage of a turn as
they are pushed (VAD stop → transcript → turn end → first sentence from the agent → first TTS audio
→ first audio chunk sent) and, when the bot starts speaking, emits a ``turn.metrics`` event to the
client, observes the histograms and appends the trace to the process's recent-turns buffer.

End of speech is estimated server-side as the VAD stop minus the VAD's ``stop_secs`` (the silence
it waits for); the eval measures the same interval from the client's side.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from voice.frames import BotPauseFrame, BotResumeFrame, NoTranscriptFrame

log = logging.getLogger("liveroom.voice")

_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2, 3, 4, 6, 10)


class VoiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        self.eos_to_first_audio = Histogram(
            "liveroom_voice_eos_to_first_audio_seconds",
            "End of viewer speech to the first bot audio sent",
            registry=r,
            buckets=_BUCKETS,
        )
        self.stt = Histogram("liveroom_voice_stt_seconds", "VAD stop to transcript", registry=r, buckets=_BUCKETS)
        self.agent_first_sentence = Histogram(
            "liveroom_voice_agent_first_sentence_seconds",
            "Turn end to the agent's first sentence",
            registry=r,
            buckets=_BUCKETS,
        )
        self.tts_first_byte = Histogram(
            "liveroom_voice_tts_first_byte_seconds",
            "First sentence to the TTS's first audio",
            registry=r,
            buckets=_BUCKETS,
        )
        self.barge_in_pause = Histogram(
            "liveroom_voice_barge_in_pause_seconds",
            "Viewer speech start (VAD) to the bot's audio pausing",
            registry=r,
            buckets=_BUCKETS,
        )
        self.barge_ins = Counter(
            "liveroom_voice_barge_ins_total", "Viewer speech over the bot, by outcome", ["outcome"], registry=r
        )
        self.turns = Counter("liveroom_voice_turns_total", "Voice turns answered", registry=r)
        self.sessions = Gauge("liveroom_voice_sessions", "Open voice sessions", registry=r)
        self.errors = Counter("liveroom_voice_errors_total", "Voice error events sent", ["code"], registry=r)


def _ms(a: float | None, b: float | None) -> float | None:
    return round((b - a) * 1000, 1) if a is not None and b is not None else None


class TurnTracker(BaseObserver):
    def __init__(
        self,
        *,
        metrics: VoiceMetrics,
        stop_secs: float,
        session: dict[str, Any],
        sink: deque | None = None,
        send: Callable[[dict], Any] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.metrics, self.stop_secs, self.session = metrics, stop_secs, session
        self.sink = sink if sink is not None else deque(maxlen=200)
        self.send = send
        self.traces: list[dict] = []
        self._speech_start: float | None = None
        self._vad_stop: float | None = None
        self._stt_done: float | None = None
        self._transcript = ""
        self._turn: dict[str, Any] | None = None
        self._bot_speaking = False
        self._seen: set[int] = set()

    async def on_push_frame(self, data: FramePushed):
        # Observers run behind the pipeline (queued): use the push time, not the time we see it.
        f, now = data.frame, data.timestamp / 1e9
        if f.id in self._seen:  # a frame is pushed again by every processor that passes it on
            return
        if (
            isinstance(f, (VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame))
            and data.direction != FrameDirection.DOWNSTREAM
        ):
            return
        self._seen.add(f.id)
        if len(self._seen) > 4096:
            self._seen.clear()
            self._seen.add(f.id)

        if isinstance(f, VADUserStartedSpeakingFrame):
            self._speech_start = now
        elif isinstance(f, VADUserStoppedSpeakingFrame):
            self._vad_stop = now
        elif isinstance(f, BotPauseFrame):
            if self._speech_start is not None:
                self.metrics.barge_in_pause.observe(now - self._speech_start)
        elif isinstance(f, BotResumeFrame):
            self.metrics.barge_ins.labels("resumed").inc()
        elif isinstance(f, InterruptionFrame):
            if self._bot_speaking:
                self.metrics.barge_ins.labels("interrupted").inc()
        elif isinstance(f, (TranscriptionFrame, NoTranscriptFrame)):
            self._stt_done = now
            if isinstance(f, TranscriptionFrame):
                self._transcript = (self._transcript + " " + f.text).strip()
        elif isinstance(f, UserStoppedSpeakingFrame) and data.direction == FrameDirection.DOWNSTREAM:
            self._turn = {
                "turn_end": now,
                "vad_stop": self._vad_stop,
                "stt_done": self._stt_done,
                "transcript": self._transcript,
            }
            self._transcript = ""
        elif isinstance(f, AggregatedTextFrame) and not isinstance(f, TranscriptionFrame):
            if self._turn is not None and "first_sentence" not in self._turn and type(f) is AggregatedTextFrame:
                self._turn["first_sentence"] = now
                self._turn["answer"] = f.text
        elif isinstance(f, TTSAudioRawFrame):
            if self._turn is not None and "first_sentence" in self._turn and "tts_first" not in self._turn:
                self._turn["tts_first"] = now
        elif isinstance(f, BotStartedSpeakingFrame) and data.direction == FrameDirection.DOWNSTREAM:
            self._bot_speaking = True
            if self._turn is not None and "first_sentence" in self._turn:
                await self._finish(now)
        elif isinstance(f, BotStoppedSpeakingFrame):
            self._bot_speaking = False

    async def _finish(self, first_audio: float) -> None:
        t, self._turn = self._turn, None
        assert t is not None
        eos = t["vad_stop"] - self.stop_secs if t["vad_stop"] is not None else None
        trace = {
            **self.session,
            "at": time.time(),
            "transcript": t["transcript"],
            "answer": t.get("answer", ""),
            "eos_to_first_audio_ms": _ms(eos, first_audio),
            "stt_ms": _ms(t["vad_stop"], t["stt_done"]),
            "turn_end_ms": _ms(t["vad_stop"], t["turn_end"]),
            "agent_first_sentence_ms": _ms(t["turn_end"], t.get("first_sentence")),
            "tts_first_byte_ms": _ms(t.get("first_sentence"), t.get("tts_first")),
            "send_first_audio_ms": _ms(t.get("tts_first"), first_audio),
        }
        m = self.metrics
        m.turns.inc()
        for hist, key in (
            (m.eos_to_first_audio, "eos_to_first_audio_ms"),
            (m.stt, "stt_ms"),
            (m.agent_first_sentence, "agent_first_sentence_ms"),
            (m.tts_first_byte, "tts_first_byte_ms"),
        ):
            if trace[key] is not None:
                hist.observe(trace[key] / 1000)
        self.traces.append(trace)
        self.sink.append(trace)
        log.info("voice turn %s", trace)
        if self.send is not None:
            try:
                await self.send({"type": "turn.metrics", **{k: v for k, v in trace.items() if k.endswith("_ms")}})
            except Exception:  # noqa: BLE001 — metrics never break a session
                log.debug("could not send turn metrics", exc_info=True)
