"""Benchmarks: concurrent coupon claims against a budget, and event ingest throughput / event→tag latency."""

from __future__ import annotations

import multiprocessing as mp
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from audience.config import normalize_url
from audience.db import pg_temp_schema
from audience.service import AudienceService
from sim.audience import DEMO_PRODUCTS, gen_session, gen_viewers


@contextmanager
def bench_db(url: str | None) -> Iterator[str]:
    """No URL: a temporary SQLite file. PostgreSQL: a throwaway schema, dropped afterwards. Benchmarks
    never write into a real database's tables."""
    if url is None:
        with tempfile.TemporaryDirectory(prefix="liveroom-bench-") as d:
            yield f"sqlite:///{Path(d) / 'bench.db'}"
    elif normalize_url(url).startswith("postgresql"):
        with pg_temp_schema(url, prefix="bench") as u:
            yield u
    else:
        yield url


def _claim_plan(claims: int, seed: int) -> tuple[list[str], list[tuple[str, str]]]:
    """~70% first claims by distinct viewers, ~20% extra claims (new keys) by the same viewers, ~10%
    replays (same key again): the budget runs out, limits are tested and replays must not duplicate."""
    rng = random.Random(seed)
    n_viewers = max(1, int(claims * 0.7))
    viewers = [f"bv{i:05d}" for i in range(n_viewers)]
    plan = [(v, f"{v}:k0") for v in viewers][:claims]
    while len(plan) < claims:
        if rng.random() < 0.66:
            v = rng.choice(viewers)
            plan.append((v, f"{v}:k{uuid.uuid4().hex[:8]}"))
        else:
            plan.append(rng.choice(plan[:n_viewers]))
    rng.shuffle(plan)
    return viewers, plan


def _issue_all(svc: AudienceService, merchant: str, cid: str, plan: list[tuple[str, str]], threads: int) -> list:
    def one(claim):
        v, k = claim
        r = svc.issue(merchant, v, cid, k)
        return v, k, r.code, r.coupon_id

    with ThreadPoolExecutor(max_workers=threads) as ex:
        return list(ex.map(one, plan))


def _coupon_worker(url, merchant, cid, plan, threads, ready, go, out) -> None:  # runs in a child process
    svc = AudienceService(url, auto_migrate=False, pool_size=threads)
    ready.put(1)
    go.wait()
    try:
        out.put(_issue_all(svc, merchant, cid, plan, threads))
    finally:
        svc.close()


def bench_coupons(
    claims: int = 1000,
    budget: int = 100,
    workers: int = 4,
    *,
    url: str | None = None,
    threads: int = 8,
    per_viewer_limit: int = 1,
    seed: int = 1,
) -> dict:
    """`claims` concurrent claims against a `budget`-coupon campaign from `workers` processes (0 = threads
    in this process). Returns issued / duplicates / over_limit / elapsed_s plus the ledger audit."""
    with bench_db(url) as db:
        return _bench_coupons(db, claims, budget, workers, threads, per_viewer_limit, seed)


def _bench_coupons(
    url: str, claims: int, budget: int, workers: int, threads: int, per_viewer_limit: int, seed: int
) -> dict:
    svc = AudienceService(url)
    merchant = "bench-" + uuid.uuid4().hex[:8]
    viewers, plan = _claim_plan(claims, seed)
    svc.upsert_viewers(merchant, [{"viewer_id": v} for v in viewers])
    cid = svc.create_campaign(
        merchant,
        {
            "title": "压测券 满100减10",
            "kind": "amount",
            "amount": 10,
            "threshold": 100,
            "budget_count": budget,
            "budget_money": budget * 10,
            "per_viewer_limit": per_viewer_limit,
        },
    ).campaign_id
    if workers <= 0:
        t0 = time.perf_counter()
        results = _issue_all(svc, merchant, cid, plan, threads)
        elapsed = time.perf_counter() - t0
    else:
        ctx = mp.get_context("spawn")
        ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        procs = [
            ctx.Process(
                target=_coupon_worker, args=(url, merchant, cid, plan[w::workers], threads, ready, go, out), daemon=True
            )
            for w in range(workers)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=120)
        t0 = time.perf_counter()
        go.set()
        results = []
        for _ in procs:
            results.extend(out.get(timeout=600))
        elapsed = time.perf_counter() - t0
        for p in procs:
            p.join(timeout=30)
    audit = svc.ledger_check(merchant, cid)
    # Duplicates: a key that got two different coupons, or the ledger holding a key twice.
    by_key: dict[str, set[str]] = {}
    for _, k, code, coupon in results:
        if coupon:
            by_key.setdefault(k, set()).add(coupon)
    duplicates = sum(len(s) - 1 for s in by_key.values()) + audit["duplicate_keys"]
    over_limit = audit["over_limit_viewers"] + max(0, audit["coupons"] - budget)
    svc.close()
    return {
        "issued": audit["coupons"],
        "budget": budget,
        "duplicates": duplicates,
        "over_limit": over_limit,
        "elapsed_s": round(elapsed, 3),
        "backend": svc.backend,
        "claims": len(plan),
        "workers": workers,
        "threads_per_worker": threads,
        "claims_per_s": round(len(plan) / elapsed, 1) if elapsed else None,
        "codes": dict(Counter(code for _, _, code, _ in results)),
        "ledger_ok": audit["ok"],
        "ledger": {
            k: audit[k] for k in ("issued_count", "coupons", "ledger_issues", "claims", "issued_value", "ledger_value")
        },
    }


def bench_events(
    events: int = 50_000,
    viewers: int = 2000,
    batch: int = 500,
    *,
    url: str | None = None,
    probes: int = 200,
    seed: int = 3,
) -> dict:
    """Ingest throughput with real-time tag updates, then event→tag latency (p50/p95) under that load."""
    with bench_db(url) as db:
        return _bench_events(db, events, viewers, batch, probes, seed)


def _bench_events(url: str, events: int, viewers: int, batch: int, probes: int, seed: int) -> dict:
    svc = AudienceService(url)
    merchant = "bench-" + uuid.uuid4().hex[:8]
    svc.upsert_products(merchant, DEMO_PRODUCTS)
    vs = gen_viewers(viewers, seed, prefix="bv")
    svc.upsert_viewers(merchant, [{"viewer_id": v["viewer_id"]} for v in vs])
    now = time.time()
    evs: list[dict] = []
    rounds = 0
    while len(evs) < events:  # several sessions back to back until there are enough events
        rounds += 1
        evs.extend(
            gen_session(
                vs,
                DEMO_PRODUCTS,
                seed=seed + rounds,
                end=now - 3600 * (rounds - 1),
                attendance=0.8,
                heartbeat_s=30,
                id_prefix=f"b{rounds}",
            )
        )
    evs = evs[:events]
    t0 = time.perf_counter()
    batch_ms = []
    for i in range(0, len(evs), batch):
        b0 = time.perf_counter()
        r = svc.ingest(merchant, evs[i : i + batch])
        batch_ms.append((time.perf_counter() - b0) * 1000)
        assert r.rejected == 0, r.results[0]
    elapsed = time.perf_counter() - t0

    # Latency: one event (a click on a product of a category new to that viewer) → lookup shows the tag,
    # while another thread keeps ingesting full batches.
    stop = threading.Event()
    loaded = [0]

    def load():
        k = 0
        while not stop.is_set():
            k += 1
            b = [dict(e, event_id=f"load-{k}-{j}", ts=time.time()) for j, e in enumerate(evs[:batch])]
            loaded[0] += svc.ingest(merchant, b).accepted

    th = threading.Thread(target=load, daemon=True)
    th.start()
    lat = []
    rng = random.Random(seed)
    try:
        for k in range(probes):
            vid = f"probe{k}"
            tag = f"探针{k}兴趣"
            t1 = time.perf_counter()
            svc.ingest(
                merchant,
                [
                    {"event_id": f"probe-{k}", "viewer_id": vid, "type": "enter"},
                    {
                        "event_id": f"probe-{k}-c",
                        "viewer_id": vid,
                        "type": "add_to_cart",
                        "sku": rng.choice(DEMO_PRODUCTS)["sku"],
                        "category": f"探针{k}",
                    },
                ],
            )
            pv = svc.lookup(merchant, vid)
            lat.append((time.perf_counter() - t1) * 1000)
            assert pv is not None and any(x.tag == tag for x in pv.interest_tags), pv
    finally:
        stop.set()
        th.join()
    lat.sort()
    svc.close()
    return {
        "backend": svc.backend,
        "events": len(evs),
        "viewers": viewers,
        "batch": batch,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(len(evs) / elapsed, 1),
        "batch_ms_p50": round(statistics.median(batch_ms), 1),
        "batch_ms_p95": round(_pct(sorted(batch_ms), 95), 1),
        "event_to_tag_ms_p50": round(_pct(lat, 50), 1),
        "event_to_tag_ms_p95": round(_pct(lat, 95), 1),
        "event_to_tag_ms_max": round(lat[-1], 1),
        "probes": probes,
        "background_events_during_probes": loaded[0],
    }


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]
