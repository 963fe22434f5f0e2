"""The embedded LLM: llama.cpp's OpenAI-compatible server as a supervised child process.

Started with the app on a free loopback port, health-checked, restarted if it dies, stopped with
the app. Everything else talks to it like any OpenAI-compatible endpoint.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

log = logging.getLogger("liveroom.embedded")


def _child_setup() -> None:
    """In the child: own session (we stop its whole group), and die with the parent even if the
    parent is SIGKILLed — a leaked 2 GB model server must never outlive the app."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedLLMServer:
    def __init__(
        self,
        model_path: Path,
        threads: int = 2,
        ctx: int = 4096,
        port: int = 0,
        alias: str = "liveroom-embedded",
        ready_timeout: float = 120.0,
        log_path: Path | None = None,
    ):
        if not Path(model_path).is_file():
            raise FileNotFoundError(f"embedded model not found at {model_path}; run `liveroom models install`")
        self.model_path = Path(model_path)
        self.threads, self.ctx, self.alias = threads, ctx, alias
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        # A file, not a pipe: an unread pipe fills up and stalls the server mid-answer.
        self.log_path = Path(log_path) if log_path else Path(os.devnull)
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _spawn(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_threads",
            str(self.threads),
            "--n_threads_batch",
            str(self.threads),
            "--n_ctx",
            str(self.ctx),
            "--verbose",
            "False",
        ]
        log.info("starting embedded LLM: %s", " ".join(cmd))
        # Own process group: stopping the app stops the server and nothing else.
        if self.log_path != Path(os.devnull):
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            # Spawned from the caller's thread (the event loop's, not a worker's): PDEATHSIG fires
            # when the spawning *thread* exits.
            self.proc = subprocess.Popen(
                cmd,
                stdout=logf,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def healthy(self) -> bool:
        try:
            r = httpx.get(f"{self.base_url}/models", timeout=2.0)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"embedded LLM exited during start (code {self.proc.returncode}): {self._log_tail()}")

    async def _start_async(self) -> None:
        self._spawn()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if await asyncio.to_thread(self.healthy):
                log.info("embedded LLM ready on %s", self.base_url)
                return
            await asyncio.sleep(0.2)
        self.stop_sync()
        raise TimeoutError(f"embedded LLM not ready after {self.ready_timeout:.0f}s")

    async def start(self) -> EmbeddedLLMServer:
        self._stopping = False
        await self._start_async()
        self._supervisor = asyncio.create_task(self._supervise(), name="embedded-llm-supervisor")
        return self

    async def _supervise(self) -> None:
        """Restart the server if it dies (OOM kill, crash) while the app runs."""
        backoff = 1.0
        while not self._stopping:
            await asyncio.sleep(1.0)
            if self.proc is not None and self.proc.poll() is not None and not self._stopping:
                log.warning("embedded LLM died (code %s); restarting", self.proc.returncode)
                self.restarts += 1
                try:
                    await self._start_async()
                    backoff = 1.0
                except Exception:  # keep trying: the fast path still answers meanwhile
                    log.exception("embedded LLM restart failed")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)

    def stop_sync(self) -> None:
        self._stopping = True
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
        await asyncio.to_thread(self.stop_sync)
