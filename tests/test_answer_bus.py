"""The answer bus: answers given on any channel — here the voice pipeline and the OpenAI-compatible
``/v1/chat/completions`` — reach the console's live answer log (read through the dashboard's API)
and ``/metrics``, each labelled with its channel. Real app, agent and demo KB; a scripted model."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from pipecat.frames.frames import TranscriptionFrame, UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from pipecat.tests.utils import SleepFrame, run_test

from agent.bus import AnswerBus, AnsweredEvent
from agent.messages import AgentAnswer, ViewerMessage
from tests.support.access import agent_key, open_room, viewer_token
from tests.support.console import FakeLLM, console_app, grant, make_container
from voice.agent_processor import LiveRoomAgentProcessor
from voice.tts import SpeechLedger


@pytest.fixture()
def world(tmp_path, demo_root, use_embedder):
    llm = FakeLLM()
    c = make_container(tmp_path, demo_root, use_embedder, llm=llm)
    for room in ("r-voice", "r-text"):
        open_room(c, room, "demo")
    with TestClient(console_app(c)) as client:
        grant(client, "demo", "viewer")  # an API token of merchant demo; the rooms it reads are claimed
        yield c, client, llm


def _live(client, room_id: str) -> list[dict]:
    r = client.get(f"/console/api/m/demo/rooms/{room_id}/live")
    assert r.status_code == 200, r.text
    return r.json()["answers"]


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample whose labels include ``labels``."""
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def test_voice_and_v1_answers_reach_the_live_log_and_metrics(world):
    c, client, llm = world
    # voice: a spoken turn through the agent processor, built as voice/session.py builds it
    proc = LiveRoomAgentProcessor(
        c.agent, merchant="demo", room_id="r-voice", viewer_id="voice-1", lang="en", ledger=SpeechLedger()
    )
    asyncio.run(
        run_test(
            proc,
            frames_to_send=[
                UserStartedSpeakingFrame(),
                TranscriptionFrame("how much is the sea salt almond?", "voice-1", "now"),
                UserStoppedSpeakingFrame(),
                SleepFrame(1.5),
            ],
        )
    )
    # /v1: small talk (the model path) and a price question (the composed path), streamed and not
    key = agent_key(client.app) | {"x-liveroom-merchant": "demo"}
    r = client.post(
        "/v1/chat/completions",
        headers=key,
        json={
            "viewer_token": viewer_token(c, "o1"),
            "messages": [{"role": "user", "content": "主播今天好漂亮呀"}],
        },
    )
    assert r.status_code == 200, r.text
    v1_answer = r.json()["choices"][0]["message"]["content"]
    with client.stream(
        "POST",
        "/v1/chat/completions",
        headers=key,
        json={
            "stream": True,
            "viewer_token": viewer_token(c, "o2"),
            "messages": [{"role": "user", "content": "海盐巴旦木多少钱"}],
        },
    ) as s:
        assert "data: [DONE]" in "".join(s.iter_text())

    voice = _live(client, "r-voice")
    assert len(voice) == 1
    v = voice[0]
    assert v["channel"] == "voice" and v["viewer_id"] == "voice-1"
    assert v["question"] == "how much is the sea salt almond?" and "72" in v["answer"]
    assert v["path"] == "fast" and any(ci["sku"] == "SN-002" for ci in v["citations"])
    assert all(ci["text"] for ci in v["citations"])  # the dashboard shows the cited facts

    v1 = _live(client, "openai")  # the /v1 endpoint answers in room "openai"
    assert [a["channel"] for a in v1] == ["v1", "v1"]
    by_viewer = {a["viewer_id"]: a for a in v1}
    assert by_viewer["o1"]["path"] == "llm" and by_viewer["o1"]["answer"] in v1_answer and llm.calls
    assert by_viewer["o2"]["path"] == "fast" and "72" in by_viewer["o2"]["answer"]

    m = client.get("/metrics").text
    assert _sample(m, "liveroom_answers_total", channel="voice", path="fast") == 1
    assert _sample(m, "liveroom_answers_total", channel="v1", path="llm") == 1
    assert _sample(m, "liveroom_answers_total", channel="v1", path="fast") == 1
    assert _sample(m, "liveroom_answer_first_token_seconds_count", channel="voice") == 1
    assert _sample(m, "liveroom_answer_first_token_seconds_count", channel="v1") == 2


def test_ws_and_http_answers_are_logged_once_with_their_channel(world):
    """The danmaku socket and the HTTP ask endpoint: one log entry and one count per answer (no tap
    in the guard any more, and no route counting on its own)."""
    c, client, _ = world
    with client.websocket_connect(f"/ws/rooms/r-text?merchant=demo&token={viewer_token(c, 'w1')}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "ask", "id": "q1", "text": "海盐巴旦木多少钱"})
        while ws.receive_json()["type"] != "answer.done":
            pass
    r = client.post(
        "/api/rooms/r-text/ask",
        json={"merchant": "demo", "viewer_token": viewer_token(c, "h1"), "text": "小蓝瓶多少钱"},
    )
    assert r.status_code == 200
    live = _live(client, "r-text")
    assert sorted((a["channel"], a["viewer_id"]) for a in live) == [("http", "h1"), ("ws", "w1")]
    m = client.get("/metrics").text
    assert _sample(m, "liveroom_answers_total", channel="ws") == 1
    assert _sample(m, "liveroom_answers_total", channel="http") == 1


async def test_bus_publishes_every_answer_and_survives_a_failing_subscriber(demo_container):
    from agent.core import Agent

    bus = AnswerBus()
    seen: list[AnsweredEvent] = []

    def broken(ev: AnsweredEvent) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(broken)
    stop = bus.subscribe(seen.append)
    agent = Agent(demo_container.kb, demo_container.tools, answers=bus)
    agent.intent_model = demo_container.intent_model
    ans = await agent.answer(
        ViewerMessage(merchant="demo", room_id="r9", viewer_id="x", text="海盐巴旦木多少钱", channel="host")
    )
    assert isinstance(ans, AgentAnswer) and "72" in ans.answer
    ev = seen[-1]
    assert (ev.merchant, ev.room_id, ev.viewer_id, ev.channel, ev.path) == ("demo", "r9", "x", "host", "fast")
    assert ev.question == "海盐巴旦木多少钱" and ev.answer == ans.answer and ev.citations == ans.citations
    assert ev.latency_ms == ans.latency_ms and ev.at > 0
    await agent.answer(ViewerMessage(merchant="demo", viewer_id="x", text=""))  # refusals are answers too
    assert seen[-1].refused and seen[-1].channel == "ws"
    stop()
    await agent.answer(ViewerMessage(merchant="demo", viewer_id="y", text="你好"))
    assert len(seen) == 2
    # earlier channel names are still accepted
    assert ViewerMessage(merchant="m", channel="openai").channel == "v1"
    assert ViewerMessage(merchant="m", channel="text").channel == "ws"
    assert ViewerMessage(merchant="m", channel="api").channel == "http"
