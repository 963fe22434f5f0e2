"""Voice pipeline pieces, each run in a real Pipecat pipeline with Pipecat's test utilities
(``pipecat.tests.utils.run_test``): the barge-in gate, the end-of-turn strategy, the stub STT,
espeak-ng TTS, the agent processor on the demo catalog, and the wire-protocol serializer."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    OutputTransportMessageUrgentFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_turn_processor import UserTurnProcessor

from voice.agent_processor import LiveRoomAgentProcessor, is_filler
from voice.bargein import BargeInGate
from voice.frames import BotPauseFrame, BotResumeFrame, ClientInterruptFrame, NoTranscriptFrame, TextQuestionFrame
from voice.protocol import VoiceSerializer
from voice.stt import StubSTTService
from voice.tts import EspeakTTSService, SpeechLedger, number_zh, plan_speech
from voice.turns import voice_turn_strategies

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def audio(ms: int = 20, level: int = 0) -> InputAudioRawFrame:
    n = 16 * ms
    return InputAudioRawFrame(audio=(level.to_bytes(2, "little", signed=True)) * n, sample_rate=16000, num_channels=1)


def of(frames, cls):
    return [f for f in frames if isinstance(f, cls)]


def events(frames, kind=None):
    out = [f.message for f in frames if isinstance(f, OutputTransportMessageUrgentFrame)]
    return [m for m in out if kind is None or m["type"] == kind]


# --- barge-in gate ---------------------------------------------------------------------------
async def test_gate_passes_speech_when_the_bot_is_quiet():
    down, _ = await run_test(
        BargeInGate(), frames_to_send=[VADUserStartedSpeakingFrame(), audio(), VADUserStoppedSpeakingFrame()]
    )
    assert [type(f) for f in down] == [VADUserStartedSpeakingFrame, InputAudioRawFrame, VADUserStoppedSpeakingFrame]


async def test_gate_pauses_then_resumes_on_a_backchannel():
    gate = BargeInGate(min_barge_in_secs=0.8)
    down, _ = await run_test(
        gate,
        frames_to_send=[
            BotStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            *[audio() for _ in range(20)],  # 0.4 s
            VADUserStoppedSpeakingFrame(),
        ],
    )
    kinds = [type(f) for f in down if not isinstance(f, InputAudioRawFrame)]
    assert kinds == [BotStartedSpeakingFrame, BotPauseFrame, BotResumeFrame]  # no VAD frame reaches the STT
    assert len(of(down, InputAudioRawFrame)) == 20  # audio still flows (the STT keeps its pre-roll)
    assert gate.stats["paused"] == 1 and gate.stats["resumed"] == 1 and gate.stats["committed"] == 0


async def test_gate_releases_real_speech_after_the_minimum():
    gate = BargeInGate(min_barge_in_secs=0.4)
    down, _ = await run_test(
        gate,
        frames_to_send=[
            BotStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            *[audio() for _ in range(30)],
            VADUserStoppedSpeakingFrame(),
        ],
    )
    seq = [type(f) for f in down]
    start = seq.index(VADUserStartedSpeakingFrame)
    assert seq.index(BotPauseFrame) < start
    assert seq[:start].count(InputAudioRawFrame) == 20  # released once 0.4 s of speech went by
    assert seq[-1] is VADUserStoppedSpeakingFrame and BotResumeFrame not in seq
    assert gate.stats["committed"] == 1


async def test_gate_half_duplex_ignores_the_viewer_while_the_bot_speaks():
    gate = BargeInGate(duplex="half")
    down, _ = await run_test(
        gate,
        frames_to_send=[
            BotStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            *[audio() for _ in range(60)],
            VADUserStoppedSpeakingFrame(),
            BotStoppedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
        ],
    )
    seq = [type(f) for f in down if not isinstance(f, InputAudioRawFrame)]
    assert seq == [BotStartedSpeakingFrame, BotStoppedSpeakingFrame, VADUserStartedSpeakingFrame]
    assert gate.stats["ignored"] == 1


async def test_client_interrupt_broadcasts_an_interruption():
    down, up = await run_test(BargeInGate(), frames_to_send=[BotStartedSpeakingFrame(), ClientInterruptFrame()])
    assert of(down, InterruptionFrame) and of(up, InterruptionFrame)
    assert not of(down, ClientInterruptFrame)


# --- end of turn -----------------------------------------------------------------------------
def turn_processor(grace: float = 0.0) -> UserTurnProcessor:
    return UserTurnProcessor(user_turn_strategies=voice_turn_strategies(grace), user_turn_stop_timeout=5.0)


async def test_turn_starts_on_vad_and_ends_with_the_transcript():
    down, up = await run_test(
        turn_processor(),
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            audio(),
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.1),
            TranscriptionFrame("how much is the coffee?", "v", "now"),
            SleepFrame(0.1),
        ],
    )
    seq = [type(f) for f in down]
    assert seq.index(UserStartedSpeakingFrame) < seq.index(TranscriptionFrame) < seq.index(UserStoppedSpeakingFrame)
    assert of(down, InterruptionFrame) and of(up, InterruptionFrame)  # a new turn interrupts the bot


async def test_turn_waits_for_every_segment_and_ends_on_no_transcript():
    down, _ = await run_test(
        turn_processor(grace=0.05),
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            VADUserStoppedSpeakingFrame(),  # segment 1
            VADUserStartedSpeakingFrame(),
            VADUserStoppedSpeakingFrame(),  # segment 2 (a pause mid-question)
            SleepFrame(0.1),
            TranscriptionFrame("how much", "v", "now"),
            SleepFrame(0.2),
        ],
    )
    assert not of(down, UserStoppedSpeakingFrame)  # one segment still out
    down, _ = await run_test(
        turn_processor(grace=0.05),
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.05),
            NoTranscriptFrame(),
            SleepFrame(0.2),
        ],
    )
    assert len(of(down, UserStartedSpeakingFrame)) == 1 and len(of(down, UserStoppedSpeakingFrame)) == 1


# --- STT ---------------------------------------------------------------------------------------
async def test_stub_stt_transcribes_a_segment():
    heard = []

    def transcriber(pcm: bytes) -> str:
        heard.append(len(pcm))
        return "how much is the coffee?"

    down, _ = await run_test(
        StubSTTService(transcriber, lang="en"),
        frames_to_send=[
            *[audio() for _ in range(10)],
            VADUserStartedSpeakingFrame(),
            *[audio() for _ in range(25)],
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.1),
        ],
        pipeline_params=PipelineParams(audio_in_sample_rate=16000),
    )
    assert [f.text for f in of(down, TranscriptionFrame)] == ["how much is the coffee?"]
    assert heard[0] == 35 * 640  # the segment keeps its pre-roll


# --- TTS ---------------------------------------------------------------------------------------
def test_number_and_speech_plan():
    assert [number_zh(x) for x in ("72", "109", "29.9", "01", "10", "10086")] == [
        "七十二",
        "一百零九",
        "二十九点九",
        "零一",
        "十",
        "一万零八十六",
    ]
    zh = plan_speech("海盐巴旦木 500g今晚直播价72元～", "zh")
    assert [s.voice for s in zh] == ["zh"] and "qi1 shi2 er4 yuan2" in zh[0].text and "ke4" in zh[0].text
    en = plan_speech("Tonight's live price for 暖光 海盐巴旦木 500g is ¥72 (regular ¥109).", "en")
    assert [s.voice for s in en] == ["en", "zh", "en"]
    assert "72 yuan" in en[2].text and "500 grams" in en[2].text and "hai3 yan2" in en[1].text
    assert plan_speech("【AI生成】", "zh") == []


@needs_espeak
@pytest.mark.parametrize(
    "lang, text", [("en", "The sea salt almond is 72 yuan tonight."), ("zh", "海盐巴旦木今晚直播价72元。")]
)
async def test_espeak_tts_speaks(lang, text):
    ledger = SpeechLedger()
    down, _ = await run_test(
        EspeakTTSService(lang=lang, ledger=ledger),
        frames_to_send=[TTSSpeakFrame(text), SleepFrame(1.0)],
        pipeline_params=PipelineParams(audio_out_sample_rate=16000),
    )
    seq = [type(f) for f in down]
    assert seq.index(TTSStartedFrame) < seq.index(TTSAudioRawFrame) < seq.index(TTSStoppedFrame)
    pcm = b"".join(f.audio for f in of(down, TTSAudioRawFrame))
    seconds = len(pcm) / 32000
    assert 1.0 < seconds < 8.0 and max(pcm[1::2]) > 10  # audible speech at 16 kHz
    assert ledger.pending and abs(ledger.pending[0][1] - seconds) < 0.01


def test_speech_ledger_said():
    led = SpeechLedger()
    led.begin("第一句。")
    led.add_audio("第一句。", 1.0)
    led.begin("第二句很长很长。")
    led.add_audio("第二句很长很长。", 2.0)
    led.sent(1.0)
    led.sentence_done("第一句。")
    led.sent(1.0)
    assert led.said() == "第一句。第二句很"  # half of the second sentence went out
    assert led.unsaid


# --- the agent ---------------------------------------------------------------------------------
def agent_processor(c, lang="en", viewer="v1") -> LiveRoomAgentProcessor:
    c.agent.prepare_sync("demo")  # as the server does at start-up: not on the first question's clock
    return LiveRoomAgentProcessor(
        c.agent, merchant="demo", room_id="r1", viewer_id=viewer, lang=lang, ledger=SpeechLedger()
    )


async def test_agent_processor_answers_a_spoken_question(demo_container):
    down, _ = await run_test(
        agent_processor(demo_container),
        frames_to_send=[
            UserStartedSpeakingFrame(),
            TranscriptionFrame("how much is the sea salt almond?", "v1", "now"),
            UserStoppedSpeakingFrame(),
            SleepFrame(1.5),
        ],
    )
    sentences = [f.text for f in down if type(f) is AggregatedTextFrame]
    assert sentences and "72" in sentences[0]
    seq = [type(f) for f in down]
    assert seq.index(LLMFullResponseStartFrame) < seq.index(AggregatedTextFrame) < seq.index(LLMFullResponseEndFrame)
    assert events(down, "transcript")[0]["text"] == "how much is the sea salt almond?"
    done = events(down, "answer.done")[0]
    assert done["citations"][0]["sku"] == "SN-002" and done["label"] == "AI生成"
    turns = demo_container.agent.memory.get("demo", "r1", "v1").turns
    assert [t.role for t in turns] == ["viewer", "agent"]


async def test_a_transcript_after_its_turn_closed_is_still_answered(demo_container):
    """On a loaded server Whisper can take longer than the turn-stop timeout: the turn closes empty,
    then the transcript arrives. It is answered (it used to be dropped: a question never answered)."""
    proc = agent_processor(demo_container, viewer="v-late")
    down, _ = await run_test(
        proc,
        frames_to_send=[
            UserStartedSpeakingFrame(),
            UserStoppedSpeakingFrame(),  # the turn-stop timeout: no transcript yet
            SleepFrame(0.2),
            TranscriptionFrame("how much is the sea salt almond?", "v-late", "now"),
            SleepFrame(1.5),
        ],
    )
    assert events(down, "transcript")[0]["late"] is True
    assert "72" in events(down, "answer.done")[0]["answer"]
    assert proc.late_transcripts == 1


async def test_agent_processor_ignores_backchannels(demo_container):
    down, _ = await run_test(
        agent_processor(demo_container),
        frames_to_send=[
            UserStartedSpeakingFrame(),
            TranscriptionFrame("Mm-hmm.", "v1", "now"),
            UserStoppedSpeakingFrame(),
            SleepFrame(0.3),
        ],
    )
    assert not [f for f in down if type(f) is AggregatedTextFrame]
    assert events(down, "transcript.ignored")[0]["reason"] == "backchannel"
    assert is_filler("嗯嗯") and is_filler("好的。") and is_filler(" ") and not is_filler("多少钱")


async def test_interruption_records_the_half_said_answer(demo_container):
    proc = agent_processor(demo_container, viewer="v2")

    def played():  # what the output transport reports once a quarter of the answer went out
        answer = proc._answer_text
        proc.ledger.begin(answer)
        proc.ledger.add_audio(answer, 4.0)
        proc.ledger.sent(1.0)

    asyncio.get_running_loop().call_later(0.8, played)
    down, _ = await run_test(
        proc,
        frames_to_send=[
            UserStartedSpeakingFrame(),
            TranscriptionFrame("how much is the sea salt almond?", "v2", "now"),
            UserStoppedSpeakingFrame(),
            SleepFrame(1.0),
            BotStartedSpeakingFrame(),
            InterruptionFrame(),
            SleepFrame(0.1),
        ],
    )
    rec = proc.interrupted[-1]
    full = rec["answer"]
    assert "72" in full and rec["said"] and len(rec["said"]) < len(full) and full.startswith(rec["said"])
    agent_turn = demo_container.agent.memory.get("demo", "r1", "v2").turns[-1]
    assert agent_turn.role == "agent" and agent_turn.interrupted and agent_turn.text == rec["said"]
    assert events(down, "answer.interrupted")[0]["said"] == rec["said"]


async def test_typed_question_on_the_voice_socket_is_answered(demo_container):
    down, _ = await run_test(
        agent_processor(demo_container, viewer="v3"),
        frames_to_send=[TextQuestionFrame(text="how much is the sea salt almond?"), SleepFrame(1.0)],
    )
    assert "72" in [f.text for f in down if type(f) is AggregatedTextFrame][0]
    assert events(down, "transcript")[0]["source"] == "text"


# --- protocol ------------------------------------------------------------------------------------
async def test_serializer_takes_pcm_and_answers_bad_input_with_errors():
    ser = VoiceSerializer()
    frame = await ser.deserialize(bytes(640))
    assert isinstance(frame, InputAudioRawFrame) and frame.sample_rate == 16000 and frame.num_channels == 1

    async def err(data):
        f = await ser.deserialize(data)
        assert isinstance(f, OutputTransportMessageUrgentFrame) and f.message["type"] == "error", f
        ser._last_error.clear()  # (errors are rate-limited to one per code per second)
        return f.message["code"]

    assert await err(b"RIFF\x24\x00\x00\x00WAVEfmt ") == "not_pcm"
    assert await err(b"OggS" + bytes(100)) == "not_pcm"
    assert await err(bytes(641)) == "not_pcm"
    assert await err(bytes(64001)[:64000]) == "frame_too_large"
    assert await err("{nope") == "bad_json"
    assert await err("[1]") == "bad_frame"
    assert await err(json.dumps({"type": "dance"})) == "unknown_type"
    assert await err(json.dumps({"type": "ask", "text": " "})) == "invalid"
    assert await err(json.dumps({"type": "start", "sample_rate": 48000})) == "unsupported_audio"
    assert await err(bytes(640)) == "audio_rejected"  # until a good `start`
    ok = await ser.deserialize(
        json.dumps({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1})
    )
    assert ok.message["type"] == "started"
    assert isinstance(await ser.deserialize(bytes(640)), InputAudioRawFrame)
    assert isinstance(await ser.deserialize(json.dumps({"type": "interrupt"})), ClientInterruptFrame)
    assert (await ser.deserialize(json.dumps({"type": "ping"}))).message["type"] == "pong"
    assert await ser.serialize(InterruptionFrame()) == '{"type": "interruption"}'
    assert await ser.serialize(TTSAudioRawFrame(b"\x01\x02", 16000, 1)) == b"\x01\x02"


async def test_serializer_rate_limits_repeated_errors():
    ser = VoiceSerializer()
    first = await ser.deserialize(bytes(3))
    assert first.message["code"] == "not_pcm"
    assert await ser.deserialize(bytes(3)) is None  # 50 bad frames a second → one error a second


def make_test_stt(lang: str, text: str = "") -> StubSTTService:
    """A `module:callable` STT factory, as LIVEROOM_VOICE_STT would name it."""
    return StubSTTService(lambda pcm: text, lang=lang)


def test_services_are_chosen_by_configuration(demo_container):
    from voice.config import VoiceSettings
    from voice.services import VoiceServices, VoiceUnavailable

    vs = VoiceServices(
        demo_container,
        VoiceSettings(
            stt="tests.test_voice_pipeline:make_test_stt", stt_options={"text": "hi"}, tts="voice.tts:EspeakTTSService"
        ),
    )
    stt = vs.make_stt("zh")
    assert isinstance(stt, StubSTTService) and stt._lang == "zh" and stt._transcriber(b"") == "hi"
    assert isinstance(vs.make_tts("en", SpeechLedger()), EspeakTTSService)
    bad = VoiceServices(demo_container, VoiceSettings(stt="no.such.module:Thing"))
    with pytest.raises(VoiceUnavailable):
        bad.make_stt("zh")
    missing = VoiceServices(demo_container, VoiceSettings(whisper_model="/nonexistent/whisper"))
    with pytest.raises(VoiceUnavailable, match="liveroom models install"):
        missing.load_models()
