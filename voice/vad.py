"""Silero VAD (the ONNX model bundled in the pipecat-ai wheel), loaded once per process.

``SileroVADAnalyzer`` opens an ONNX Runtime session per instance; a session is read-only and
thread-safe, so every voice session shares one and keeps only its own recurrent state.
"""

from __future__ import annotations

import threading
from importlib import resources

from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams

_lock = threading.Lock()
_session = None


def silero_model_path() -> str:
    return str(resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx"))


def shared_session():
    """The process-wide ONNX Runtime session for Silero (1 thread: VAD is tiny)."""
    global _session
    with _lock:
        if _session is None:
            _session = SileroOnnxModel(silero_model_path(), force_onnx_cpu=True).session
        return _session


class _SharedSileroModel(SileroOnnxModel):
    def __init__(self, session):  # noqa: D107 — reuse a loaded session, keep private state
        self.session = session
        self.sample_rates = [8000, 16000]
        self.reset_states()


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """``SileroVADAnalyzer`` on the shared session."""

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None):
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._model = _SharedSileroModel(shared_session())
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
