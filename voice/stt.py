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
from typing import Any

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
# Whisper's encoder costs the same for a 2 s question as for 30 s of audio when the segment is padded
# to the 30 s window it was trained on. CTranslate2 takes a shorter input: encoding only the segment
# (plus CONTEXT_PAD_SECS of silence, and at least CONTEXT_SECS) is several times faster.
CONTEXT_SECS: float | None = 10.0
CONTEXT_PAD_SECS = 0.5


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
        context_secs: float | None = CONTEXT_SECS,
    ):
        self.model_dir = str(model_dir)
        self.compute_type, self.threads = compute_type, threads
        self.max_new_tokens, self.no_speech_prob = max_new_tokens, no_speech_prob
        # None: Whisper's whole 30 s window (faster-whisper's own loop); else the encoder sees only the
        # segment, padded to at least this long (see CONTEXT_SECS)
        self.context_secs = context_secs
        self.model = None
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._tokenizers: dict[str, Any] = {}

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
        return self.hypotheses(pcm16, lang, prompt)[0]

    def hypotheses(
        self, pcm16: bytes, lang: str, prompt: str | None = None, reprompt: Callable[[str], str | None] | None = None
    ) -> list[str]:
        """The transcript, then — when ``reprompt(transcript)`` gives another prompt — the same audio decoded
        again with it (the encoder's output reused: a second decode costs the decoder only)."""
        assert self.model is not None, "WhisperEngine.load() first"
        audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        if prompt is None:
            prompt = _ZH_PROMPT if lang == "zh" else ""
        if self.context_secs is None and reprompt is None:
            return [self._transcribe_window(audio, lang, prompt)]
        enc = self._encode(audio)
        out = [self._decode(enc, lang, prompt)]
        again = reprompt(out[0]) if reprompt is not None and out[0] else None
        if again:
            out.append(self._decode(enc, lang, again))
        return out

    def _transcribe_window(self, audio: np.ndarray, lang: str, prompt: str) -> str:
        """faster-whisper's own loop: the segment padded to Whisper's 30 s window."""
        segments, _ = self.model.transcribe(  # type: ignore[union-attr]
            audio,
            language=lang,
            beam_size=1,
            best_of=1,
            temperature=0.0,
            max_new_tokens=self.max_new_tokens,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            initial_prompt=prompt or None,
        )
        return " ".join(s.text.strip() for s in segments if s.no_speech_prob < self.no_speech_prob).strip()

    def _encode(self, audio: np.ndarray) -> Any:
        """The encoder on the segment alone (padded with silence to ``context_secs``), or on 30 s."""
        import ctranslate2

        model = self.model
        assert model is not None
        secs = 30.0 if self.context_secs is None else self.context_secs
        n = min(SAMPLE_RATE * 30, max(int(SAMPLE_RATE * secs), len(audio) + int(SAMPLE_RATE * CONTEXT_PAD_SECS)))
        audio = np.pad(audio[:n], (0, max(0, n - len(audio))))
        feats = model.feature_extractor(audio, padding=0)
        feats = np.ascontiguousarray(feats[None, :, : min(3000, feats.shape[-1] // 2 * 2)])
        return model.model.encode(ctranslate2.StorageView.from_array(feats))

    def _tokenizer(self, lang: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        tok = self._tokenizers.get(lang)
        if tok is None:
            model = self.model
            assert model is not None
            t = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=lang)
            tok = self._tokenizers[lang] = (t, get_suppressed_tokens(t, [-1]))
        return tok

    def _decode(self, enc: Any, lang: str, prompt: str) -> str:
        """Greedy decoding as faster-whisper does it (no timestamps, the language pinned)."""
        model = self.model
        assert model is not None
        tok, suppress = self._tokenizer(lang)
        previous = tok.encode(" " + prompt.strip()) if prompt else []
        ids = model.get_prompt(tok, previous, without_timestamps=True)
        res = model.model.generate(
            enc,
            [ids],
            beam_size=1,
            max_length=len(ids) + self.max_new_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppress,
        )[0]
        if res.no_speech_prob >= self.no_speech_prob:
            return ""
        return tok.decode(res.sequences_ids[0]).strip()

    async def transcribe(self, pcm16: bytes, lang: str, prompt: str | None = None) -> str:
        return (await self.transcribe_hypotheses(pcm16, lang, prompt))[0]

    async def transcribe_hypotheses(
        self, pcm16: bytes, lang: str, prompt: str | None = None, reprompt: Callable[[str], str | None] | None = None
    ) -> list[str]:
        self.load()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self.hypotheses, pcm16, lang, prompt, reprompt
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
            vocab = self.vocabulary if self._lang == "zh" else None
            if vocab is not None:
                # a transcript naming no product is decoded again with the catalog words it sounds like
                hyps = await self._engine.transcribe_hypotheses(audio, "zh", vocab.prompt, vocab.reprompt)
                text, fixes = vocab.choose(hyps)
                self.fixes += fixes
            else:
                text = self.postprocess(await self._engine.transcribe(audio, self._lang))
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
