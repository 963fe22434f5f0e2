"""Danmaku benchmark: a room ingesting ``rate`` messages/s for ``seconds``, end to end (triage,
dedupe, filters, question clustering with embeddings, suggestions, individual replies).

Result keys: ``ingested_per_s`` (messages fully processed per second of the run), ``suggestion_latency_ms``
(``p50``/``p95``: the message that made a cluster cross the threshold → suggestion published),
``clusters`` (clusters in the window at the end), ``dropped`` (messages lost: queue overflow), plus
context (offered rate, kinds, embedding cache hits, CPU).
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from host import questions as Q
from host.room import HostRoom, RoomConfig


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return round(xs[k], 2)


def ensure_kb(merchant: str = "demo", data_dir: str | None = None):
    """A knowledge base with ``merchant`` (the configured one; else the demo catalog in a temp dir)."""
    from core.settings import Settings
    from knowledge.embedder import UseEmbedder
    from knowledge.store import KnowledgeBase

    s = Settings(data_dir=Path(data_dir)) if data_dir else Settings()
    emb = UseEmbedder(threads=1)
    kb = KnowledgeBase(s.kb_dir(), emb)
    if kb.active_version(merchant) is None:
        if merchant != "demo":
            raise SystemExit(f"merchant {merchant!r} has no knowledge base in {s.kb_dir()}")
        root = Path(tempfile.mkdtemp(prefix="liveroom-bench-")) / "kb"
        kb = KnowledgeBase(root, emb)
        demo = Path(__file__).resolve().parent.parent / "knowledge" / "demo"
        files = sorted(p for p in demo.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
        kb.import_files(merchant, files)
    return kb, emb


async def run_bench(
    rate: int = 2000,
    seconds: float = 30.0,
    merchant: str = "demo",
    data_dir: str | None = None,
    unique: float = 0.05,
    replies_per_s: float = 10.0,
    seed: int = 7,
    kb_emb: Any = None,
) -> dict:
    kb, emb = kb_emb or ensure_kb(merchant, data_dir)
    snap = kb.snapshot(merchant)
    products = [p for p in snap.catalog.products][:10]
    emb.encode(["预热"])
    products = products or [p for p in snap.catalog.products]
    room = HostRoom(
        merchant, "bench", kb=kb, embed=emb.encode, audience=None, config=RoomConfig(replies_per_s=replies_per_s)
    )
    sub = room.bus.subscribe(["suggestion"], maxsize=100_000)
    received: list[float] = []

    async def console() -> None:  # a console consuming suggestions as they come
        while True:
            _, s = await sub.get()
            received.append(s.latency_ms)

    room.start()
    cons = asyncio.create_task(console())
    rng = random.Random(seed)
    viewers = [f"bv{i:05d}" for i in range(20_000)]

    def message(now: float) -> tuple[str, str]:
        p = products[int(now // 5.0) % len(products)]  # the product on screen changes every 5 s
        room.context_sku = p.sku
        topics = Q.topics_for(p.category)
        r = rng.random()
        if r < 0.45:
            text = Q.question(rng, rng.choice(topics))
        elif r < 0.45 + unique:
            text = Q.unique_question(rng, rng.choice(topics))
        elif r < 0.55:
            text = rng.choice(Q.COUPON_REQUESTS + Q.SPAM + Q.ABUSE + Q.INJECTION)
        elif r < 0.60:
            text = "上链接上链接"  # a flood of identical messages
        else:
            text = Q.chatter(rng)
        return rng.choice(viewers), text

    total = int(rate * seconds)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    sent = 0
    while sent < total:  # paced: the messages due by now, then yield
        now = time.perf_counter() - t0
        due = min(total, int(now * rate))
        while sent < due:
            room.ingest(*message(now))
            sent += 1
        await asyncio.sleep(0.002)
    send_s = time.perf_counter() - t0
    while room.clusterer.backlog:
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    st = room.triage.stats
    processed = sum(st.by_kind.values())
    lat = list(room.suggestions.latencies_ms)
    cs = room.clusterer.stats()
    kinds = dict(sorted(st.by_kind.items()))
    n_received, replies, skipped = len(received), room.stats["replies"], room.stats["replies_skipped"]
    # capacity: as fast as the room takes them, for a few seconds
    burst_s = min(5.0, max(1.0, seconds / 6))
    b0, n0 = time.perf_counter(), processed
    while time.perf_counter() - b0 < burst_s:
        for _ in range(200):
            room.ingest(*message(time.perf_counter() - t0))
        await asyncio.sleep(0)
    while room.clusterer.backlog:
        await asyncio.sleep(0.002)
    capacity = (sum(st.by_kind.values()) - n0) / (time.perf_counter() - b0)
    cons.cancel()
    await room.aclose()
    return {
        "ingested_per_s": round(processed / elapsed, 1),
        "suggestion_latency_ms": {"p50": _pct(lat, 50), "p95": _pct(lat, 95), "max": _pct(lat, 100), "n": len(lat)},
        "clusters": cs["clusters"],
        "dropped": cs["dropped"] + (sent - processed),
        "sent": sent,
        "offered_per_s": round(sent / send_s, 1),
        "rate_target": rate,
        "seconds": seconds,
        "capacity_per_s": round(capacity, 1),
        "elapsed_s": round(elapsed, 2),
        "kinds": kinds,
        "questions_clustered": cs["processed"],
        "embedded": cs["embedded"],
        "embed_cache_hit_rate": round(cs["cache_hits"] / max(1, cs["processed"]), 3),
        "embed_batch_ms_p95": _pct(list(room.clusterer.batch_ms), 95),
        "suggestions_received": n_received,
        "replies": replies,
        "replies_skipped": skipped,
        "cpu_s": round(cpu, 2),
        "cpu_util": round(cpu / elapsed, 2),
        "cores": os.cpu_count(),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets": {"ingested_per_s": rate, "suggestion_p95_ms": 200},
    }


def bench_danmaku(rate: int = 2000, seconds: float = 30.0, **kw) -> dict:
    return asyncio.run(run_bench(rate, seconds, **kw))


def summary(res: dict) -> str:
    lat = res["suggestion_latency_ms"]
    return (
        f"{res['sent']} danmaku at {res['offered_per_s']}/s offered → {res['ingested_per_s']}/s ingested, "
        f"{res['dropped']} dropped; {lat['n']} suggestions, latency p50 {lat['p50']} ms, p95 {lat['p95']} ms; "
        f"{res['clusters']} clusters; capacity {res['capacity_per_s']}/s; embedded {res['embedded']} texts (cache hit rate "
        f"{res['embed_cache_hit_rate']:.0%}); CPU {res['cpu_util']:.0%} of one core"
    )
