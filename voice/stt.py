"""Speech-to-text services (Pipecat ``SegmentedSTTService``s: one transcript per VAD segment).

- ``LocalWhisperSTTService``: Pipecat's ``WhisperSTTService`` on the packaged Whisper base, with the
  model loaded once per process (``WhisperEngine``) and decoding bounded for latency: int8, beam 1,
  one temperature, ``max_new_tokens``, the room's language pinned, no timestamps. Transcription runs
  on the engine's single worker thread, so concurrent sessions queue instead of fighting over 2 cores.
- ``StubSTTService``: an instant STT whose text comes from a callable — tests, and the eval's
  baseline that shows the pipeline's own overhead.

Both push a ``NoTranscriptFrame`` when a segment held no words, so the turn ends without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from voice.config import SAMPLE_RATE
from voice.frames import NoTranscriptFrame
from voice.vocabulary import CatalogVocabulary, to_simplified

log = logging.getLogger("liveroom.voice")

# Whisper writes Mandarin in Traditional characters unless the prompt shows it Simplified.
_ZH_PROMPT = "以下是普通话的句子，关于直播间商品的价格、库存和优惠。"
_LANG = {"zh": Language.ZH, "en": Language.EN}


class WhisperEngine:
    """A faster-whisper model shared by every session of the process, with its own worker thread."""

    def __init__(
        self,
        model_dir: Path | str,
        *,
        compute_type: str = "int8",
        threads: int = 2,
        max_new_tokens: int = 48,
        no_speech_prob: float = 0.6,
    ):
        self.model_dir = str(model_dir)
        self.compute_type, self.threads = compute_type, threads
        self.max_new_tokens, self.no_speech_prob = max_new_tokens, no_speech_prob
        self.model = None
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def load(self) -> WhisperEngine:
        with self._lock:
            if self.model is None:
                if not (Path(self.model_dir) / "model.bin").is_file():
                    raise FileNotFoundError(f"no Whisper model in {self.model_dir} (run `liveroom models install`)")
                from faster_whisper import WhisperModel

                t = time.perf_counter()
                self.model = WhisperModel(
                    self.model_dir,
                    device="cpu",
                    compute_type=self.compute_type,
                    cpu_threads=self.threads,
                    num_workers=1,
                    local_files_only=True,
                )
                # The first decode of a process is ~3x slower: pay it here, not on a viewer's question.
                self.model.transcribe(
                    np.zeros(SAMPLE_RATE, dtype=np.float32),
                    language="en",
                    beam_size=1,
                    max_new_tokens=4,
                    without_timestamps=True,
                    vad_filter=False,
                )
                log.info("Whisper loaded from %s in %.1f s", self.model_dir, time.perf_counter() - t)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="liveroom-stt")
        return self

    def transcribe_sync(self, pcm16: bytes, lang: str, prompt: str | None = None) -> str:
        """``prompt``: Whisper's initial prompt (default: a Simplified-Chinese sentence for zh, none for en)."""
        assert self.model is not None, "WhisperEngine.load() first"
        audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        segments, _ = self.model.transcribe(
            audio,
            language=lang,
            beam_size=1,
            best_of=1,
            temperature=0.0,
            max_new_tokens=self.max_new_tokens,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            initial_prompt=prompt if prompt is not None else (_ZH_PROMPT if lang == "zh" else None),
        )
        return " ".join(s.text.strip() for s in segments if s.no_speech_prob < self.no_speech_prob).strip()

    async def transcribe(self, pcm16: bytes, lang: str, prompt: str | None = None) -> str:
        self.load()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self.transcribe_sync, pcm16, lang, prompt
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class _PrerollMixin:
    """Keep enough audio before the VAD start for the barge-in gate to release it late."""

    preroll_secs: float = 1.0

    async def setup(self, setup: FrameProcessorSetup):
        await super().setup(setup)  # type: ignore[misc]
        self._audio_buffer_size_1s = int(self.sample_rate * 2 * self.preroll_secs)  # type: ignore[attr-defined]


class LocalWhisperSTTService(_PrerollMixin, WhisperSTTService):
    """Pipecat's Whisper service on a shared ``WhisperEngine``."""

    def __init__(
        self,
        engine: WhisperEngine,
        *,
        lang: str = "zh",
        preroll_secs: float = 1.0,
        vocabulary: CatalogVocabulary | None = None,
        **kwargs,
    ):
        self._engine = engine
        self._lang = lang
        self.preroll_secs = preroll_secs
        # Mandarin: the catalog's words in the prompt, Simplified output, homophones of product words fixed.
        self.vocabulary = vocabulary
        self.fixes: list[tuple[str, str]] = []  # (heard, catalog word), for traces and tests
        super().__init__(
            settings=WhisperSTTService.Settings(
                model=engine.model_dir, language=_LANG[lang], no_speech_prob=engine.no_speech_prob
            ),
            device="cpu",
            compute_type=engine.compute_type,
            trailing_silence_secs=0.3,
            ttfs_p99_latency=2.5,
            **kwargs,
        )

    def postprocess(self, text: str) -> str:
        if self._lang != "zh" or not text:
            return text
        text = to_simplified(text)
        if self.vocabulary is not None:
            text, fixes = self.vocabulary.resolve(text)
            self.fixes += fixes
        return text

    def _load(self):  # the model is the engine's, loaded once per process
        self._model = self._engine.load().model

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        await self.start_processing_metrics()
        try:
            prompt = self.vocabulary.prompt if self.vocabulary is not None and self._lang == "zh" else None
            text = await self._engine.transcribe(audio, self._lang, prompt)
            text = self.postprocess(text)
        except Exception as e:  # noqa: BLE001 — reported in the pipeline, the session goes on
            log.exception("transcription failed")
            yield ErrorFrame(f"transcription failed: {e}")
            yield NoTranscriptFrame()
            return
        finally:
            await self.stop_processing_metrics()
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), _LANG[self._lang])
        else:
            yield NoTranscriptFrame()


class StubSTTService(_PrerollMixin, SegmentedSTTService):
    """An instant STT: ``transcriber(pcm16) -> text`` (empty/None: nothing heard)."""

    def __init__(
        self, transcriber: Callable[[bytes], str | None], *, lang: str = "en", preroll_secs: float = 1.0, **kwargs
    ):
        super().__init__(
            trailing_silence_secs=0.0,
            ttfs_p99_latency=0.0,
            settings=STTSettings(model="stub", language=_LANG.get(lang)),
            **kwargs,
        )
        self._transcriber = transcriber
        self._lang = lang
        self.preroll_secs = preroll_secs

    @property
    def wants_wav_segments(self) -> bool:
        return False

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        text = (self._transcriber(audio) or "").strip()
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), _LANG.get(self._lang))
        else:
            yield NoTranscriptFrame()
