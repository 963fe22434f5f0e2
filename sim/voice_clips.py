"""Helpers for voice tests and the voice eval: synthesized speech, a real-time streaming client,
and the app served by uvicorn on a loopback port (in the caller's event loop or in a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import threading
import time
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voice.config import SAMPLE_RATE

CHUNK_MS = 20
CHUNK_BYTES = SAMPLE_RATE * 2 * CHUNK_MS // 1000


def synth(text: str, voice: str = "en-us", rate: int = 165) -> bytes:
    """espeak-ng speech as PCM s16le 16 kHz mono (leading/trailing silence trimmed)."""
    import soxr

    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", text], capture_output=True, check=True
    ).stdout
    a = np.frombuffer(wav[44:], dtype=np.int16).astype(np.float32) / 32768.0
    a = soxr.resample(a, 22050, SAMPLE_RATE)
    loud = np.nonzero(np.abs(a) > 0.01)[0]
    if len(loud):
        a = a[max(0, loud[0] - 80) : loud[-1] + 80]
    return (np.clip(a, -1, 1) * 32767).astype(np.int16).tobytes()


def noise_burst(seconds: float = 0.25, level: float = 0.3, seed: int = 0) -> bytes:
    """A cough-like burst: filtered noise with a fast attack and decay."""
    rng = np.random.default_rng(seed)
    n = int(SAMPLE_RATE * seconds)
    x = rng.standard_normal(n).astype(np.float32)
    x = np.convolve(x, np.ones(6) / 6, mode="same")  # a little low-passed
    env = np.minimum(1.0, np.linspace(0, 8, n)) * np.exp(-np.linspace(0, 4, n))
    return (np.clip(x * env * level, -1, 1) * 32767).astype(np.int16).tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(SAMPLE_RATE * seconds) * 2)


def write_wav(path: Path, pcm: bytes, rate: int = SAMPLE_RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serve_in_loop(app, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in the running event loop; yields the base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets")
    )
    task = asyncio.create_task(server.serve(), name="uvicorn-test")
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.contextmanager
def serve_in_thread(app, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread (for a browser test); yields host:port."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets")
    )
    t = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not t.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=15)


@dataclass
class Received:
    t: float
    kind: str  # event type or "audio"
    data: Any


@dataclass
class VoiceClient:
    """A scripted viewer: streams PCM in real time and records what comes back, with times."""

    ws: Any
    log: list[Received] = field(default_factory=list)
    audio_bytes: int = 0
    _reader: asyncio.Task | None = None
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str) -> AsyncIterator[VoiceClient]:
        import websockets

        async with websockets.connect(url, max_size=2**22, open_timeout=30) as ws:
            client = cls(ws)
            client._reader = asyncio.create_task(client._read(), name="voice-client-reader")
            try:
                yield client
            finally:
                client._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await client._reader

    async def _read(self) -> None:
        import websockets

        try:
            async for msg in self.ws:
                now = time.monotonic()
                if isinstance(msg, bytes):
                    self.audio_bytes += len(msg)
                    self.log.append(Received(now, "audio", len(msg)))
                else:
                    obj = json.loads(msg)
                    self.log.append(Received(now, obj.get("type", "?"), obj))
                self._new.set()
        except websockets.ConnectionClosed:
            pass
        self.log.append(Received(time.monotonic(), "closed", getattr(self.ws, "close_code", None)))
        self._new.set()

    def events(self, kind: str | None = None, since: float = 0.0) -> list[Received]:
        return [r for r in self.log if r.t >= since and (kind is None or r.kind == kind)]

    async def wait_for(self, kind: str, since: float = 0.0, timeout: float = 30.0, pred=None) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            for r in self.log:
                if r.t >= since and r.kind == kind and (pred is None or pred(r.data)):
                    return r
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [r.kind for r in self.log if r.kind != "audio"][-20:]
                raise TimeoutError(f"no {kind!r} within {timeout} s (recent events: {kinds})")
            self._new.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._new.wait(), min(remaining, 0.5))

    async def send_json(self, obj: dict) -> None:
        await self.ws.send(json.dumps(obj))

    async def stream(self, pcm: bytes, realtime: bool = True) -> float:
        """Send ``pcm`` in 20 ms frames, paced like a microphone. Returns the monotonic time the
        last frame went out."""
        t0 = time.monotonic()
        for i, off in enumerate(range(0, len(pcm), CHUNK_BYTES)):
            chunk = pcm[off : off + CHUNK_BYTES]
            if len(chunk) < CHUNK_BYTES:
                chunk += bytes(CHUNK_BYTES - len(chunk))
            if realtime:
                delay = t0 + i * CHUNK_MS / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.ws.send(chunk)
        return time.monotonic()


def speech_span(pcm: bytes, threshold: float = 0.01) -> tuple[float, float]:
    """(first, last) second of a clip above the level threshold."""
    a = np.abs(np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0)
    idx = np.nonzero(a > threshold)[0]
    if not len(idx):
        return 0.0, 0.0
    return idx[0] / SAMPLE_RATE, idx[-1] / SAMPLE_RATE


class Mic:
    """A live microphone for a ``VoiceClient``: sends 20 ms frames at real-time pace, forever —
    the queued clips in order, silence in between (like a real mic, it never stops sending)."""

    def __init__(self, client: VoiceClient):
        self.client = client
        self._queue: list[tuple[bytes, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self.frames_sent = 0

    async def __aenter__(self) -> Mic:
        self._task = asyncio.create_task(self._run(), name="mic")
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def say(self, pcm: bytes) -> float:
        """Queue a clip; returns (once it is all sent) the monotonic time its first frame went out."""
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((pcm, fut))
        return await fut

    async def _run(self) -> None:
        t0 = time.monotonic()
        i = 0
        current: tuple[bytes, asyncio.Future] | None = None
        off, started = 0, 0.0
        while True:
            if current is None and self._queue:
                current, off = self._queue.pop(0), 0
            if current is not None:
                chunk = current[0][off : off + CHUNK_BYTES]
                chunk += bytes(CHUNK_BYTES - len(chunk))
            else:
                chunk = bytes(CHUNK_BYTES)
            delay = t0 + i * CHUNK_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.2:  # fell behind (a loaded machine): re-anchor rather than burst
                t0, i = time.monotonic(), 0
            now = time.monotonic()
            await self.client.ws.send(chunk)
            self.frames_sent += 1
            i += 1
            if current is not None:
                if off == 0:
                    started = now
                off += CHUNK_BYTES
                if off >= len(current[0]):
                    if not current[1].done():
                        current[1].set_result(started)
                    current = None
