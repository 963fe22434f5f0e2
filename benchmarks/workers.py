"""Several workers on one port sharing Redis and PostgreSQL: what must hold across them, the throughput,
and one worker killed with SIGKILL under load.

    python -m benchmarks.workers [--workers 2] [--viewers 2000] [--think 2.0] [--seconds 30]
                                 [--no-checks] [--no-load] [--no-kill] [--json]

Redis and PostgreSQL: ``LIVEROOM_TEST_REDIS_URL`` / ``LIVEROOM_TEST_PG_URL`` when set, else the throwaway
servers of ``scripts/start_redis.sh`` / ``scripts/start_postgres.sh`` (started here). The run gets its own
PostgreSQL schema (dropped after) and its own Redis key prefix, and a fresh data directory.

Checks — each request on a new connection, so requests spread over the workers; every HTTP response
names its worker (``X-LiveRoom-Worker``) so a check can tell that both took part:
- rate limit: one viewer's 10 questions in a row: exactly the bucket's burst answered, the rest limited;
- memory: a question on one worker, its follow-up ("有货吗", no product named) on the other, answered
  about the product the first named;
- dashboard: the console's live view lists answers each worker served;
- coupons: concurrent claims spread over the workers against a 40-coupon budget: issued = budget, no
  duplicate, the ledger's own audit passes;
- KB publish: a new version imported by another process is answered by every worker within a second.
Then the room WebSocket under ``--viewers`` (as ``benchmarks.ws_load``), and with ``--kill`` a worker
killed with SIGKILL mid-load while events and coupon claims keep arriving: answers after the kill,
events acknowledged vs stored, coupons issued vs budget and duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from agent.embedded import free_port
from audience.db import pg_temp_schema
from audience.service import AudienceService
from benchmarks import ws_load

ROOT = Path(__file__).resolve().parent.parent
MERCHANT, ROOM = "demo", "bench"
REDIS_DB = 11  # the tests use their own key prefixes on database 0


def _script_url(env_name: str, script: str) -> str:
    url = os.environ.get(env_name)
    if url:
        return url
    out = subprocess.run(["bash", str(ROOT / "scripts" / script)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@contextmanager
def shared_services() -> Iterator[tuple[str, str]]:
    """(redis url, database url): a fresh PostgreSQL schema for this run, dropped after."""
    import re

    import redis

    base = _script_url("LIVEROOM_TEST_REDIS_URL", "start_redis.sh")
    redis_url = re.sub(r"/\d+$", "", base) + f"/{REDIS_DB}"  # a database of its own, emptied first
    redis.Redis.from_url(redis_url).flushdb()
    pg = _script_url("LIVEROOM_TEST_PG_URL", "start_postgres.sh")
    with pg_temp_schema(pg, prefix="workers") as db_url:
        yield redis_url, db_url


def _cli(env: dict, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "liveroom.cli", *args], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def _fresh() -> httpx.Client:
    """A client that opens a new connection per request (so the kernel hands each to any worker)."""
    return httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def _ask(cl: httpx.Client, base: str, text: str) -> tuple[str, dict]:
    r = cl.post(f"{base}/api/rooms/{ROOM}/ask", json={"text": text})
    r.raise_for_status()
    return r.headers["x-liveroom-worker"], r.json()


def check_rate_limit(base: str) -> dict:
    with _fresh() as cl:
        got = [_ask(cl, base, "小蓝瓶多少钱") for _ in range(10)]
    limited = sum("rate_limited" in a.get("flags", []) for _, a in got)
    workers = {w for w, _ in got}
    return {"asked": 10, "answered": 10 - limited, "limited": limited, "workers": len(workers)}


def check_memory(base: str, pairs: int = 16) -> dict:
    cross = cross_ok = same_ok = 0
    for _ in range(pairs):
        with _fresh() as cl:  # one viewer: the anonymous cookie the first answer sets
            w1, _ = _ask(cl, base, "小蓝瓶多少钱")
            w2, a = _ask(cl, base, "有货吗")
        ok = any(c.get("sku") == "SK-001" for c in a.get("citations", []))
        if w1 != w2:
            cross += 1
            cross_ok += ok
        else:
            same_ok += ok
    return {"pairs": pairs, "cross_worker": cross, "cross_worker_right": cross_ok, "same_worker_right": same_ok}


def check_dashboard(base: str, token: str) -> dict:
    served: dict[str, str] = {}
    with _fresh() as cl:
        for i in range(12):
            w, _ = _ask(cl, base, f"满多少包邮{i}")
            served[f"满多少包邮{i}"] = w
        r = cl.get(f"{base}/console/api/m/{MERCHANT}/rooms/{ROOM}/live", headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()
    shown = {a["question"] for a in r.json()["answers"]}
    by_worker = Counter(w for q, w in served.items() if q in shown)
    return {
        "asked": len(served),
        "shown": sum(by_worker.values()),
        "workers_asked": len(set(served.values())),
        "workers_shown": len(by_worker),
    }


def _campaign(db_url: str, budget: int) -> str:
    svc = AudienceService(db_url)
    try:
        svc.upsert_viewers(MERCHANT, [{"viewer_id": f"cv{i:04d}"} for i in range(200)])
        return svc.create_campaign(
            MERCHANT,
            {
                "title": "多进程压测券 满100减10",
                "kind": "amount",
                "amount": 10,
                "threshold": 100,
                "budget_count": budget,
                "per_viewer_limit": 1,
            },
        ).campaign_id
    finally:
        svc.close()


def _claim(base: str, token: str, cid: str, viewer: str, key: str, tries: int = 20) -> tuple[str, str, str | None]:
    """One claim, retried with the same idempotency key until a worker answers (a killed worker's
    connection fails; the retry must not issue a second coupon)."""
    for _ in range(tries):
        try:
            with _fresh() as cl:
                r = cl.post(
                    f"{base}/api/merchants/{MERCHANT}/coupons/issue",
                    json={"viewer_id": viewer, "campaign_id": cid, "idempotency_key": key},
                    headers={"Authorization": f"Bearer {token}"},
                )
            if r.status_code == 200:
                body = r.json()
                return key, body.get("code", ""), body.get("coupon_id")
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return key, "unreached", None


def claims(
    base: str, token: str, cid: str, viewers: int, threads: int = 8, pace_s: float = 0.0
) -> list[tuple[str, str, str | None]]:
    plan = [(f"cv{i:04d}", f"cv{i:04d}:k{j}") for i in range(viewers) for j in range(2)]  # two keys each
    plan += plan[::5]  # and replays of some keys

    def one(vk: tuple[str, str]) -> tuple[str, str, str | None]:
        time.sleep(pace_s)  # spread over the run (the kill lands among them)
        return _claim(base, token, cid, *vk)

    with ThreadPoolExecutor(max_workers=threads) as ex:
        return list(ex.map(one, plan))


def coupon_audit(db_url: str, cid: str, results: list[tuple[str, str, str | None]], budget: int) -> dict:
    svc = AudienceService(db_url)
    try:
        audit = svc.ledger_check(MERCHANT, cid)
    finally:
        svc.close()
    by_key: dict[str, set[str]] = {}
    for k, _, coupon in results:
        if coupon:
            by_key.setdefault(k, set()).add(coupon)
    per_viewer = Counter(k.split(":")[0] for k, s in by_key.items() for _ in s)
    issued = len({c for s in by_key.values() for c in s})
    return {
        "claims": len(results),
        "budget": budget,
        "issued": issued,
        "duplicate_keys": sum(1 for s in by_key.values() if len(s) > 1),
        "viewers_over_limit": sum(1 for n in per_viewer.values() if n > 1),
        "unreached": sum(1 for _, code, _ in results if code == "unreached"),
        "codes": dict(Counter(code for _, code, _ in results)),
        "ledger_ok": bool(audit["ok"]),
        "ledger": audit,
    }


def check_publish(env: dict, base: str) -> dict:
    """Import a changed price from another process; poll until every worker answers with it."""
    src = json.loads((ROOT / "knowledge" / "demo" / "products.json").read_text(encoding="utf-8"))
    products = src["products"] if isinstance(src, dict) else src
    for p in products:
        if p.get("sku") == "SK-001":
            p["price"] = 111
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "products.json"
        path.write_text(json.dumps(src, ensure_ascii=False), encoding="utf-8")
        _cli(env, "kb", "import", "-m", MERCHANT, "-q", str(path))
    t0 = time.monotonic()
    seen: dict[str, float] = {}
    workers: set[str] = set()
    with _fresh() as cl:
        while time.monotonic() - t0 < 10:
            r = cl.get(f"{base}/healthz")
            workers.add(r.headers["x-liveroom-worker"])
            w, a = _ask(cl, base, f"小蓝瓶多少钱 {uuid.uuid4().hex[:4]}")
            if "111" in a["answer"]:
                seen.setdefault(w, time.monotonic() - t0)
            if len(seen) >= 2 and len(workers) >= 2:
                break
    return {"workers_seen_new_price": len(seen), "max_s": round(max(seen.values()), 2) if seen else None}


def worker_pids(supervisor: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True)
    pids = [int(x) for x in out.stdout.split()]
    # uvicorn's workers run the app; a spawned multiprocessing helper (resource tracker) does not listen
    return [p for p in pids if "multiprocessing.resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()]


async def kill_under_load(base: str, token: str, cid: str, db_url: str, supervisor: int, seconds: float) -> dict:
    """Viewers ask over the room socket (reconnecting), events and coupon claims keep arriving; a quarter
    of the way in one worker gets SIGKILL (and the supervisor starts another)."""
    url = base.replace("http", "ws") + f"/ws/rooms/{ROOM}"
    until = time.monotonic() + seconds
    answers: list[float] = []
    drops: list[str] = []
    killed_at: list[float] = []

    async def asker(i: int) -> None:
        import websockets

        while time.monotonic() < until:
            try:
                async with websockets.connect(url, open_timeout=20) as ws:
                    await ws.recv()
                    while time.monotonic() < until:
                        await ws.send(json.dumps({"type": "ask", "id": f"{i}", "text": "满多少包邮"}))
                        while True:
                            f = json.loads(await asyncio.wait_for(ws.recv(), 20))
                            if f.get("type") in ("answer.done", "error"):
                                break
                        if f["type"] == "answer.done":
                            answers.append(time.monotonic())
                        await asyncio.sleep(0.5)
            except Exception as e:  # noqa: BLE001 - the killed worker's sockets drop: reconnect
                drops.append(type(e).__name__)
                await asyncio.sleep(0.2)

    acked: set[str] = set()
    sent = 0

    def post_events() -> None:
        nonlocal sent
        n = 0
        with _fresh() as cl:
            while time.monotonic() < until:
                batch = [
                    {
                        "event_id": f"kill-{n}-{j}",
                        "viewer_id": f"ev{(n * 10 + j) % 500}",
                        "type": "enter",
                        "ts": time.time(),
                        "session_id": ROOM,
                        "sku": "SK-001",
                    }
                    for j in range(10)
                ]
                n += 1
                sent += len(batch)
                for _ in range(20):  # retried with the same ids until acknowledged (duplicates are ignored)
                    try:
                        r = cl.post(
                            f"{base}/api/events",
                            json={"merchant": MERCHANT, "events": batch},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        if r.status_code == 200:
                            acked.update(e["event_id"] for e in batch)
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.1)
                time.sleep(0.05)

    restarted: list[float] = []

    async def killer() -> None:
        await asyncio.sleep(seconds / 4)
        pids = worker_pids(supervisor)
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed_at.append(time.monotonic())
        while time.monotonic() < until:  # the supervisor starts another; it counts once it answers
            await asyncio.sleep(0.5)
            now = set(worker_pids(supervisor))
            if len(now) == len(pids) and pids[0] not in now:
                async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)) as hc:
                    for _ in range(40):
                        try:
                            r = await hc.get(f"{base}/healthz", timeout=2)
                            if int(r.headers["x-liveroom-worker"]) in now - set(pids):
                                restarted.append(time.monotonic() - killed_at[0])
                                return
                        except httpx.HTTPError:
                            pass
                        await asyncio.sleep(0.25)

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=10) as ex:
        ev = loop.run_in_executor(ex, post_events)
        cl = loop.run_in_executor(ex, lambda: claims(base, token, cid, 60, threads=4, pace_s=seconds * 4 / 144))
        await asyncio.gather(killer(), *[asker(i) for i in range(40)])
        await ev
        results = await cl
    svc = AudienceService(db_url)
    try:
        from sqlalchemy import func, select

        from audience import models as am

        with svc.engine.connect() as conn:
            stored = conn.execute(
                select(func.count()).select_from(am.events).where(am.events.c.event_id.like("kill-%"))
            ).scalar_one()
    finally:
        svc.close()
    after = [t for t in answers if killed_at and t > killed_at[0] + 1]
    return {
        "killed": bool(killed_at),
        "answers": len(answers),
        "answers_after_kill": len(after),
        "socket_drops": len(drops),
        "replacement_answering_after_s": round(restarted[0], 1) if restarted else None,
        "events_sent": sent,
        "events_acknowledged": len(acked),
        "events_stored": stored,
        "events_lost": len(acked) - stored if stored < len(acked) else 0,
        "coupons": coupon_audit(db_url, cid, results, 30),
    }


def run(args: argparse.Namespace) -> dict:
    res: dict = {"workers": args.workers}
    with shared_services() as (redis_url, db_url), tempfile.TemporaryDirectory() as tmp:
        env_extra = {"LIVEROOM_REDIS_URL": redis_url, "LIVEROOM_DATABASE_URL": db_url}
        env = {**os.environ, "LIVEROOM_DATA_DIR": tmp, **env_extra}
        token = _cli(env, "console", "add-token", "--merchant", MERCHANT, "--name", "bench", "--role", "operator")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = ws_load.start_server(Path(tmp), port, llm=False, workers=args.workers, extra_env=env_extra)
        try:
            if args.checks:
                res["rate_limit"] = check_rate_limit(base)
                res["memory"] = check_memory(base)
                res["dashboard"] = check_dashboard(base, token)
                cid = _campaign(db_url, 40)
                res["coupons"] = coupon_audit(db_url, cid, claims(base, token, cid, 80), 40)
                res["publish"] = check_publish(env, base)
            if args.load:
                res["load"] = asyncio.run(ws_load.load(f"ws://127.0.0.1:{port}/ws/rooms/{ROOM}", args))
            if args.kill:
                cid = _campaign(db_url, 30)
                res["kill"] = asyncio.run(kill_under_load(base, token, cid, db_url, proc.pid, args.kill_seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--viewers", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--think", type=float, default=2.0)
    ap.add_argument("--llm-share", type=float, default=0.0)
    ap.add_argument("--kill-seconds", type=float, default=45)
    ap.add_argument("--no-load", dest="load", action="store_false")
    ap.add_argument("--no-kill", dest="kill", action="store_false")
    ap.add_argument("--no-checks", dest="checks", action="store_false")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = run(args)
    print(json.dumps(res, ensure_ascii=False, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
