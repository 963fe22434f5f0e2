"""One viewer's voice session: a Pipecat pipeline on the WebSocket, run by a ``WorkerRunner``.

transport.input()        PCM frames / control messages (VoiceSerializer)
→ VADProcessor           Silero (shared ONNX session)
→ BargeInGate            pause on speech over the bot; resume or release (min-speech rule)
→ STT                    Whisper (or any Pipecat STT service)
→ UserTurnProcessor      VAD start → turn (+ InterruptionFrame); segment results (+ Smart Turn) → end of turn
→ LiveRoomAgentProcessor Agent.stream: same tools and guardrails as text
→ TTS                    espeak-ng (or Piper / any Pipecat TTS service)
→ transport.output()     real-time paced PCM, events, pause/resume, interruption flush
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import WebSocket
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import OutputTransportMessageUrgentFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from pipecat.turns.user_turn_processor import UserTurnProcessor
from pipecat.workers.runner import WorkerRunner
from starlette.websockets import WebSocketState

from agent.guardrails import AI_LABEL
from core.abuse import client_ip
from core.errors import LiveRoomError
from knowledge.store import KBError
from voice.agent_processor import LiveRoomAgentProcessor
from voice.bargein import BargeInGate
from voice.config import FRAME_MS, SAMPLE_RATE
from voice.metrics import TurnTracker
from voice.protocol import AUDIO_FORMAT, MAX_AUDIO_FRAME_BYTES, VoiceSerializer
from voice.services import VoiceServices, VoiceUnavailable
from voice.transport import LiveRoomWebsocketTransport
from voice.tts import SpeechLedger
from voice.turns import voice_turn_strategies
from voice.vad import SharedSileroVADAnalyzer

log = logging.getLogger("liveroom.voice")

AUDIO_IDLE_SECS = 3.0


@dataclass
class SessionInfo:
    room_id: str
    merchant: str
    viewer_id: str
    lang: str
    duplex: str
    session_id: str
    verified: bool = False
    client_ip: str = ""  # for the per-IP question limit ("" = none)


@dataclass
class VoiceSession:
    """What a running session exposes (tests inspect it)."""

    info: SessionInfo
    worker: PipelineWorker
    runner: WorkerRunner
    serializer: VoiceSerializer
    gate: BargeInGate
    agent: LiveRoomAgentProcessor
    tracker: TurnTracker
    transport: LiveRoomWebsocketTransport
    ledger: SpeechLedger


def build_session(ws: WebSocket, info: SessionInfo, services: VoiceServices) -> VoiceSession:
    s, c = services.settings, services.container
    serializer = VoiceSerializer(on_error=lambda code: services.metrics.errors.labels(code).inc())
    ledger = SpeechLedger()
    params = FastAPIWebsocketParams(
        audio_in_enabled=True,
        audio_out_enabled=True,
        audio_in_sample_rate=SAMPLE_RATE,
        audio_out_sample_rate=SAMPLE_RATE,
        audio_out_end_silence_secs=0,
        serializer=serializer,
        allowed_origins=[],
        ws_close_timeout=0.5,
    )
    transport = LiveRoomWebsocketTransport(ws, params, ledger=ledger)
    vad = VADProcessor(
        vad_analyzer=SharedSileroVADAnalyzer(
            params=VADParams(
                confidence=s.vad_confidence,
                start_secs=s.vad_start_secs,
                stop_secs=s.vad_stop_secs,
                min_volume=s.vad_min_volume,
            )
        ),
        # Pipecat forces a VAD stop when no audio was *processed* for this long while the viewer
        # speaks. On a loaded server the loop stalls for over a second at times (measured: 1.5 s with
        # a busy loop per core) and the queued audio is then processed in a burst: 1.0 s split
        # utterances in two turns. The client sends silence whenever the mic is closed, so only a
        # vanished client goes quiet for this long (and the idle watchdog ends that session).
        audio_idle_timeout=AUDIO_IDLE_SECS,
    )
    gate = BargeInGate(min_barge_in_secs=s.min_barge_in_secs, duplex=info.duplex)
    stt = services.make_stt(info.lang, info.merchant)
    turns = UserTurnProcessor(
        user_turn_strategies=voice_turn_strategies(s.turn_grace_secs, services.make_turn_analyzer()),
        user_turn_stop_timeout=s.turn_stop_timeout_secs,
    )
    metrics = getattr(ws.app.state, "metrics", None)
    agent = LiveRoomAgentProcessor(
        c.agent,
        merchant=info.merchant,
        room_id=info.room_id,
        viewer_id=info.viewer_id,
        verified=info.verified,
        limit=(lambda: c.access.limit("questions", ip=info.client_ip, room_id=info.room_id))
        if info.client_ip
        else None,
        lang=info.lang,
        ledger=ledger,
        on_answer=metrics.observe if metrics is not None else None,
    )
    tts = services.make_tts(info.lang, ledger)

    async def send(msg: dict) -> None:
        await transport.output().send_message(OutputTransportMessageUrgentFrame(message=msg))

    tracker = TurnTracker(
        metrics=services.metrics,
        stop_secs=s.vad_stop_secs,
        sink=services.recent_turns,
        session={
            "session_id": info.session_id,
            "room_id": info.room_id,
            "viewer_id": info.viewer_id,
            "lang": info.lang,
        },
        send=send,
    )
    pipeline = Pipeline([transport.input(), vad, gate, stt, turns, agent, tts, transport.output()])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        observers=[tracker],
        enable_rtvi=False,
        enable_turn_tracking=False,
        idle_timeout_secs=None,
        cancel_on_idle_timeout=False,
        check_dangling_tasks=True,
        name=f"voice-{info.session_id}",
    )
    runner = WorkerRunner(handle_sigint=False, name=f"voice-runner-{info.session_id}")
    return VoiceSession(info, worker, runner, serializer, gate, agent, tracker, transport, ledger)


async def _send_json(ws: WebSocket, obj: dict) -> None:
    if ws.client_state == WebSocketState.CONNECTED and ws.application_state == WebSocketState.CONNECTED:
        await ws.send_text(json.dumps(obj, ensure_ascii=False))


async def _refuse(ws: WebSocket, services: VoiceServices, code: str, message: str, close_code: int) -> None:
    services.metrics.errors.labels(code).inc()
    await _send_json(ws, {"type": "error", "code": code, "message": message})
    await ws.close(code=close_code)


async def serve_voice(
    ws: WebSocket, room_id: str, services: VoiceServices, on_session: Callable[[VoiceSession], None] | None = None
) -> None:
    """Accept, validate, run the pipeline until the client leaves (or idles), tear down."""
    c, s = services.container, services.settings
    q = ws.query_params
    lang = q.get("lang") or s.default_lang
    duplex = q.get("duplex") or s.duplex
    # Who is asking (audience/access.py): the merchant is the room's (404 unknown/closed room, 403 another
    # merchant named); ?token= makes the viewer verified, else anonymous (a client's ?viewer_id= is ignored).
    access = c.access
    peer = ws.client[0] if ws.client else ""
    ip = client_ip(peer, ws.headers, c.settings.access.proxies())
    try:
        # once per connection, in the loop: a cached room read and an HMAC check (no worker thread that
        # would outlive the session)
        room = access.room(room_id, named_merchant=q.get("merchant"), origin=ws.headers.get("origin"))
        access.limit("sockets", ip=ip)
        viewer = access.viewer(room, q.get("token"), None)
    except LiveRoomError as e:
        await ws.accept()
        extra = e.detail if isinstance(e.detail, dict) else {}
        services.metrics.errors.labels(e.code).inc()
        await _send_json(ws, {"type": "error", "code": e.code, "message": e.message, **extra})
        await ws.close(code=1013 if e.code == "rate_limited" else 1008)
        return
    merchant, viewer_id = room.merchant, viewer.viewer_id
    await ws.accept()
    if lang not in ("zh", "en"):
        return await _refuse(ws, services, "bad_lang", f"lang must be zh or en, not {lang!r}", 1008)
    if duplex not in ("full", "half"):
        return await _refuse(ws, services, "bad_duplex", f"duplex must be full or half, not {duplex!r}", 1008)
    try:
        version = c.kb.active_version(merchant)
    except KBError as e:
        return await _refuse(ws, services, "bad_merchant", str(e), 1008)
    if version is None:
        return await _refuse(ws, services, "unknown_merchant", f"merchant {merchant!r} has no knowledge base", 1008)
    if services.sessions >= s.max_sessions:
        return await _refuse(
            ws, services, "busy", f"{s.max_sessions} voice sessions are already open; try again shortly", 1013
        )
    services.sessions += 1
    services.metrics.sessions.inc()
    try:
        try:
            await services.ensure_ready()
        except VoiceUnavailable as e:
            return await _refuse(ws, services, "voice_unavailable", str(e), 1011)
        info = SessionInfo(
            room_id=room_id,
            merchant=merchant,
            viewer_id=viewer_id,
            lang=lang,
            duplex=duplex,
            session_id=uuid.uuid4().hex[:10],
            verified=viewer.verified,
            client_ip=ip or "-",
        )
        session = build_session(ws, info, services)
        if on_session is not None:
            on_session(session)
        await _send_json(
            ws,
            {
                "type": "ready",
                "session_id": info.session_id,
                "room_id": room_id,
                "merchant": merchant,
                "kb_version": version,
                "viewer_id": viewer_id,
                "verified": viewer.verified,
                "lang": lang,
                "duplex": duplex,
                "label": AI_LABEL,
                "audio": AUDIO_FORMAT,
                "frame_ms": FRAME_MS,
                "max_audio_frame_bytes": MAX_AUDIO_FRAME_BYTES,
                "min_barge_in_ms": round(s.min_barge_in_secs * 1000),
            },
        )
        await _run(session, s.idle_timeout_secs, services)
    finally:
        services.sessions -= 1
        services.metrics.sessions.dec()


async def _run(session: VoiceSession, idle_timeout: float, services: VoiceServices) -> None:
    worker, runner = session.worker, session.runner
    ended = asyncio.Event()

    @session.transport.event_handler("on_client_disconnected")
    async def _gone(transport, websocket):  # the client left (possibly mid-answer): tear down now
        ended.set()
        await worker.cancel(reason="client disconnected")

    async def watchdog() -> None:
        while not ended.is_set():
            await asyncio.sleep(min(1.0, idle_timeout / 4))
            if time.monotonic() - session.serializer.last_rx > idle_timeout:
                services.metrics.errors.labels("idle_timeout").inc()
                await session.transport.output().send_message(
                    OutputTransportMessageUrgentFrame(
                        message={
                            "type": "error",
                            "code": "idle_timeout",
                            "message": f"nothing received for {idle_timeout:g} s; closing",
                        }
                    )
                )
                await worker.cancel(reason="idle")
                return

    dog = asyncio.create_task(watchdog(), name=f"voice-idle-{session.info.session_id}")
    try:
        await runner.add_workers(worker)
        await runner.run()
    finally:
        ended.set()
        dog.cancel()
        try:
            await dog
        except asyncio.CancelledError:
            pass
        ws = session.transport._client._websocket  # noqa: SLF001 — make sure the socket is closed
        if ws.application_state == WebSocketState.CONNECTED:
            try:
                await ws.close(code=1000)
            except Exception:  # noqa: BLE001 — already gone
                pass
