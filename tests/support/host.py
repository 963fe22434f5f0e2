"""Helpers for tests and benchmarks: a seeded demo audience on any clock, a room on a virtual clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.clock import VirtualClock
from host.room import HostRoom, RoomConfig


def demo_audience(db_dir: Path, clock: Any, viewers: int = 200, campaigns: bool = True):
    """An ``AudienceService`` (SQLite in ``db_dir``) with the demo products, viewers and campaigns."""
    from audience.service import AudienceService
    from sim.audience import demo_campaigns, demo_products, gen_viewers

    svc = AudienceService(f"sqlite:///{Path(db_dir) / 'audience.db'}", clock=clock.now, synchronous="OFF")
    products = demo_products()
    svc.upsert_products("demo", products)
    if viewers:
        svc.upsert_viewers("demo", gen_viewers(viewers, 7))
    if campaigns:
        for c in demo_campaigns(products):
            svc.create_campaign("demo", c)
    return svc


def virtual_room(
    kb: Any,
    embed: Any,
    audience: Any = None,
    clock: VirtualClock | None = None,
    config: RoomConfig | None = None,
    room_id: str = "t",
) -> HostRoom:
    """A room on a virtual clock, embedding inline (deterministic, no threads)."""
    return HostRoom(
        "demo",
        room_id,
        kb=kb,
        embed=embed,
        audience=audience,
        clock=clock or VirtualClock(),
        config=config,
        inline_embed=True,
    )


def fast_embedder():
    """One single-threaded encoder per process: on a busy 2-core machine one thread answers a single
    query in ~3 ms where two threads can take 100+ ms (see knowledge.embedder)."""
    global _EMB
    if _EMB is None:
        from knowledge.embedder import UseEmbedder

        _EMB = UseEmbedder(threads=1)
    return _EMB


_EMB = None


def intent_classify(embedder: Any = None):
    """text → intent: the packaged intent model (agent.intent_model, trained once and cached on disk) over
    ``embedder`` (default: ``fast_embedder()``), as a room hands it to ``host.danmaku.DanmakuTriage``."""
    global _CLASSIFY
    if _CLASSIFY is None:
        from agent.intent_model import IntentModel
        from host.room import intent_classifier

        _CLASSIFY = intent_classifier(IntentModel.load_or_train(embedder or fast_embedder()))
    return _CLASSIFY


_CLASSIFY = None
