"""``liveroom serve --workers N``: N uvicorn servers, each a process with its own ``SO_REUSEPORT`` socket on
the same port, so the kernel spreads new connections over them by their address hash. (uvicorn's own
``workers=`` shares one accepting socket, and under light load the worker that waited last takes nearly
every connection: a second worker sat idle.) A worker that dies — a crash, an OOM kill, ``kill -9`` — is
started again; SIGTERM or Ctrl-C stops them all, each finishing what it is answering."""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger("liveroom.workers")

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)  # a worker that keeps dying is restarted ever more slowly


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:  # runs in the child process
    import uvicorn

    sock = _listen(host, port)
    server = uvicorn.Server(uvicorn.Config("server:create_app", factory=True, **options))
    server.run(sockets=[sock])


def serve_workers(n: int, host: str, port: int, options: dict[str, Any], tick: Any = None) -> None:
    """Run ``n`` workers until SIGTERM/SIGINT; restart any that exits on its own. ``tick()`` runs with
    each look at the workers (the one shared model server is watched the same way)."""
    if port == 0:
        raise ValueError("several workers need a fixed port (LIVEROOM_PORT / --port)")
    _listen(host, port).close()  # the port is free (or ours to share): fail here, not in every child
    ctx = mp.get_context("spawn")  # a clean interpreter per worker: no state copied from this one
    stopping = False

    def start() -> BaseProcess:
        p = ctx.Process(target=_worker, args=(host, port, options), name="liveroom-worker")
        p.start()
        return p

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    procs = [start() for _ in range(n)]
    started = [time.monotonic()] * n
    deaths = [0] * n
    log.info("started %d workers on %s:%d: %s", n, host, port, [p.pid for p in procs])
    try:
        while not stopping:
            for i, p in enumerate(procs):
                if not p.is_alive() and not stopping:
                    if time.monotonic() - started[i] > 60:
                        deaths[i] = 0  # it had been serving: not a worker that dies at start-up
                    wait = RESTART_BACKOFF_S[min(deaths[i], len(RESTART_BACKOFF_S) - 1)]
                    log.warning("worker %s exited (%s); starting another in %.1f s", p.pid, p.exitcode, wait)
                    deaths[i] += 1
                    time.sleep(wait)
                    procs[i], started[i] = start(), time.monotonic()
            if tick is not None:
                tick()
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()  # uvicorn's graceful shutdown on SIGTERM
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
