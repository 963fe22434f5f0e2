"""Load test of the room WebSocket: N concurrent viewers, each its own connection, asking questions
with random think time (open loop, like a live room), against a real `liveroom serve` process.

    python -m benchmarks.ws_load [--viewers 200] [--seconds 30] [--think 2.0] [--llm-share 0.0] [--json]

Prints p50/p95 time to first answer token per path over the steady window (after every viewer has
connected), the sustained answers/s in it, ``busy`` refusals and client timeouts, and the share of
lookups served by the server's caches (from its /metrics; null on a server without those counters), and the share of
answers replayed whole by the answer cache (their ``answer_cache`` flag). Traffic goes to
127.0.0.1 only; the run is bounded in time and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import websockets

from agent.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
FAST_QS = [
    "小蓝瓶多少钱",
    "海盐巴旦木还有货吗",
    "碎花裙短款裙长多少",
    "满多少包邮",
    "口红02号显白吗",
    "面霜油皮能用吗",
    "what's the price of the sea salt almonds?",
    "拆封的面霜能退吗",
    "原味巴旦木和海盐的差几块钱",
    "羽绒服含绒量多少",
]
ANSWER_TIMEOUT_S = 30.0  # a viewer that waited this long for its answer counts a timeout
LLM_QS = ["有什么适合我的零食推荐吗", "主播今天推荐什么呀", "送妈妈什么礼物好"]


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 1)


async def viewer(
    url: str, vid: int, until: float, think: float, llm_share: float, out: list, errors: list, ready: list
) -> None:
    rnd = random.Random(vid)
    try:
        async with websockets.connect(url, max_size=2**20, open_timeout=60) as ws:
            json.loads(await ws.recv())  # ready
            ready.append(time.monotonic())
            n = 0
            while time.monotonic() < until:
                await asyncio.sleep(rnd.expovariate(1 / think))
                if time.monotonic() >= until:
                    break
                q = rnd.choice(LLM_QS) if rnd.random() < llm_share else rnd.choice(FAST_QS)
                rid = f"{vid}-{n}"
                n += 1
                t0 = time.perf_counter()
                # each viewer id is distinct per message so the per-viewer rate limit doesn't shape the load
                await ws.send(json.dumps({"type": "ask", "id": rid, "viewer_id": f"load-{vid}", "text": q}))
                first = None
                while True:
                    try:
                        f = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT_S))
                    except TimeoutError:
                        errors.append("timeout")
                        return  # the socket may still deliver the late answer: this viewer stops
                    if f.get("id") != rid:
                        continue
                    if f["type"] == "answer.delta" and first is None:
                        first = (time.perf_counter() - t0) * 1000
                    if f["type"] in ("answer.done", "error"):
                        if f["type"] == "error":
                            errors.append(f.get("code"))
                        else:
                            out.append(
                                (
                                    f["path"],
                                    first if first is not None else (time.perf_counter() - t0) * 1000,
                                    (time.perf_counter() - t0) * 1000,
                                    "rate_limited" in f.get("flags", []),
                                    time.monotonic(),
                                    "answer_cache" in f.get("flags", []),  # replayed by the whole-answer cache
                                )
                            )
                        break
    except Exception as e:  # noqa: BLE001 — report, don't crash the run
        errors.append(repr(e)[:80])


def cache_counters(port: int) -> dict[str, float]:
    """The server's cache counters from /metrics (absent on servers without them: {})."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("liveroom_cache_") and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def hit_share(before: dict[str, float], after: dict[str, float], cache: str) -> float | None:
    def delta(kind: str) -> float:
        key = f'liveroom_cache_lookups_total{{cache="{cache}",result="{kind}"}}'
        return after.get(key, 0.0) - before.get(key, 0.0)

    hits, misses = delta("hit"), delta("miss")
    return round(hits / (hits + misses), 3) if hits + misses else None


def start_server(
    data_dir: Path, port: int, llm: bool, workers: int = 1, extra_env: dict | None = None
) -> subprocess.Popen:
    env = {
        **os.environ,
        "LIVEROOM_DATA_DIR": str(data_dir),
        "LIVEROOM_LLM_AUTOSTART": "true" if llm else "false",
        "LIVEROOM_DEFAULT_MERCHANT": "demo",
        # every simulated viewer connects from 127.0.0.1: lift the per-address abuse limits for the load test
        "LIVEROOM_ACCESS_QUESTIONS_PER_IP": "0",
        "LIVEROOM_ACCESS_QUESTIONS_PER_ROOM": "0",
        "LIVEROOM_ACCESS_SOCKETS_PER_IP": "0",
        "LIVEROOM_ACCESS_OPEN_SOCKETS_PER_IP": "0",
        **(extra_env or {}),
    }
    subprocess.run(
        [sys.executable, "-m", "liveroom.cli", "kb", "import", "-m", "demo", "-q", str(ROOT / "knowledge" / "demo")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(  # public channels answer only in registered rooms
        [sys.executable, "-m", "liveroom.cli", "rooms", "create", "--merchant", "demo", "--room", "bench"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "liveroom.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180 * workers  # each worker loads the KB and the models
    up: set[str] = set()  # workers answering (each listens only once it has loaded)
    while time.monotonic() < deadline:
        try:
            with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as cl:
                r = cl.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            if r.status_code == 200 and (not llm or r.json().get("llm")):
                up.add(r.headers.get("x-liveroom-worker", ""))
                if len(up) >= workers:
                    return proc
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


async def run(args) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(Path(tmp), port, args.llm_share > 0, workers=getattr(args, "workers", 1))
        try:
            return await load(f"ws://127.0.0.1:{port}/ws/rooms/bench", args, port)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


async def load(url: str, args, port: int | None = None) -> dict:
    """The viewers' load against a running server's room socket; ``port`` for its /metrics (one worker's)."""
    load_before = os.getloadavg()
    out: list = []
    errors: list = []
    ready: list[float] = []
    before = cache_counters(port) if port else {}
    t0 = time.monotonic()
    until = t0 + args.seconds
    await asyncio.gather(
        *[viewer(url, i, until, args.think, args.llm_share, out, errors, ready) for i in range(args.viewers)]
    )
    elapsed = time.monotonic() - t0
    after = cache_counters(port) if port else {}
    # Sustained rate: answers completed between the last viewer's connection and the end of the run
    # (connecting thousands of sockets takes seconds and is not answering).
    steady_from = max(ready) if ready else t0
    window = max(until - steady_from, 1e-9)
    steady = [a for a in out if steady_from <= a[4] <= until]
    kinds = [str(e) for e in errors]
    res: dict = {
        "viewers": args.viewers,
        "think_s": args.think,
        "offered_per_s": round(args.viewers / args.think, 1),
        "seconds": round(elapsed, 1),
        "connect_s": round(steady_from - t0, 1),
        "steady_window_s": round(window, 1),
        "answers": len(out),
        "answers_per_s": round(len(steady) / window, 1) if until > steady_from else None,
        "messages_per_s": round(len(out) / elapsed, 1),
        "busy": kinds.count("busy"),
        "timeouts": kinds.count("timeout"),
        "errors": len(errors) - kinds.count("busy"),
        "error_kinds": sorted(set(kinds) - {"busy"})[:5],
        "cache_hit_share": {c: hit_share(before, after, c) for c in ("answer", "search", "query_vector", "intent")},
        # answers in the steady window that the whole-answer cache replayed (their flag; works on any server)
        "answered_from_cache": round(sum(1 for a in steady if a[5]) / len(steady), 3) if steady else None,
        "rate_limited": sum(1 for a in steady if a[3]),
        "load_avg_1m_before": round(load_before[0], 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }
    # the fast path's p95 over each 5 s of the steady window: a warm-up or a stall shows as one slow slice
    res["fast_p95_by_5s"] = [
        pct([a[1] for a in steady if a[0] == "fast" and steady_from + i <= a[4] < steady_from + i + 5], 95)
        for i in range(0, int(window), 5)
    ]
    for path in ("fast", "llm"):
        firsts = [a[1] for a in steady if a[0] == path]
        res[path] = {
            "n": len(firsts),
            "first_token_ms": {"p50": pct(firsts, 50), "p95": pct(firsts, 95)},
            "mean_ms": round(statistics.fmean(firsts), 1) if firsts else None,
        }
    return res


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--viewers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--think", type=float, default=2.0, help="mean seconds between a viewer's messages")
    ap.add_argument("--llm-share", type=float, default=0.0, help="share of questions that need the LLM path")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    # the load generator shares the machine with the server: the cheaper its event loop, the less it skews
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        res = runner.run(run(args))
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
        return
    print(
        f"WebSocket load: {res['viewers']} concurrent viewers for {res['seconds']} s "
        f"(think time ~{args.think}s, LLM share {args.llm_share:.0%})"
    )
    print(
        f"  sustained: {res['answers_per_s']} answers/s over the last {res['steady_window_s']} s "
        f"(offered ~{res['offered_per_s']}/s; {res['answers']} answers, {res['busy']} busy, "
        f"{res['timeouts']} timeouts, {res['errors']} errors)"
    )
    print(f"  answered from the answer cache: {res['answered_from_cache']}; rate-limited: {res['rate_limited']}")
    print(f"  cache hit share: {res['cache_hit_share']}  (load avg {res['load_avg_1m_before']})")
    for path in ("fast", "llm"):
        r = res[path]
        if r["n"]:
            print(
                f"  {path:<5} n={r['n']:<6} first token p50={r['first_token_ms']['p50']} ms  "
                f"p95={r['first_token_ms']['p95']} ms"
            )


if __name__ == "__main__":
    main()
