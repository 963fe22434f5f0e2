"""Online clustering of viewers' questions in a sliding window.

Each question is embedded (USE multilingual, cached by its normalized key: copy-pasted and
re-typed questions cost nothing) and joins the closest compatible cluster, or starts one:

- compatible = same product (unless the topic is about the shop: shipping, returns, coupons) and,
  when both sides have lexicon topics, overlapping topics (``host.topics``);
- close = topics overlap (then clustering needs no vector: the message counts at once), or cosine to
  the cluster centroid ≥ ``sim_plain`` when neither has topics, ``sim_one_sided`` when only one has.

A cluster's heat is the number of distinct viewers who asked within ``window_s``. When it reaches
``min_viewers`` the cluster turns hot and ``on_hot(cluster, crossing_item)`` fires (suggestions, the
host loop). Embedding runs in micro-batches off the event loop, so ingest never waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from host.frames import ClusterView, Triaged
from host.topics import is_store_topic, label_for

log = logging.getLogger("liveroom.host")


def _dim(vec: np.ndarray | None) -> int:
    return int(vec.shape[0]) if vec is not None else 512


@dataclass
class ClusterConfig:
    window_s: float = 120.0
    min_viewers: int = 5  # distinct viewers in the window → hot
    sim_topic: float = 0.0  # topics overlap: they decide (the lexicon is precise; see tests)
    sim_plain: float = 0.60  # no topics on either side: must be close in meaning
    sim_one_sided: float = 0.82
    reanswer_after_s: float = 180.0  # an answered cluster can turn hot again after this
    max_pending: int = 50_000  # questions waiting for embedding; beyond this they are dropped (counted)
    batch: int = 64
    cache_size: int = 5_000  # normalized key → vector (2 KB each)
    max_clusters: int = 2_000
    examples: int = 5


@dataclass(eq=False)
class Cluster:
    cluster_id: str
    topics: frozenset[str]
    sku: str | None
    centroid: np.ndarray
    n_vec: int = 1
    members: deque = field(default_factory=deque)  # (ts, viewer_id, text)
    viewers: dict[str, int] = field(default_factory=dict)  # viewer → messages in window
    examples: list[str] = field(default_factory=list)
    first_at: float = 0.0
    last_at: float = 0.0
    hot: bool = False
    hot_at: float | None = None
    answered_at: float | None = None
    keys: set = field(default_factory=set)
    intent: str = "other"
    topic_counts: dict[str, int] = field(default_factory=dict)
    n_topical: int = 0

    def add_vector(self, vec: np.ndarray) -> None:
        if self.centroid.shape != vec.shape:
            self.centroid = np.zeros(vec.shape, dtype=np.float32)
        self.centroid = self.centroid * self.n_vec + vec
        self.n_vec += 1
        self.centroid /= max(float(np.linalg.norm(self.centroid)), 1e-9)

    def add_topics(self, topics: frozenset[str]) -> None:
        """A cluster's topics are those most of its topical members share: one message asking two
        things ("160/110斤穿什么码") must not bridge two questions into one cluster."""
        if not topics:
            return
        self.n_topical += 1
        for t in topics:
            self.topic_counts[t] = self.topic_counts.get(t, 0) + 1
        top = max(self.topic_counts.values())
        self.topics = frozenset(t for t, n in self.topic_counts.items() if n == top or n * 2 > self.n_topical)

    @property
    def heat(self) -> int:
        return len(self.viewers)

    @property
    def label(self) -> str:
        return label_for(self.topics) or (min(self.examples, key=len) if self.examples else "")

    @property
    def store_level(self) -> bool:
        return is_store_topic(self.topics)

    def view(self) -> ClusterView:
        return ClusterView(
            cluster_id=self.cluster_id,
            label=self.label,
            topic=",".join(sorted(self.topics)) or None,
            sku=self.sku,
            viewers=self.heat,
            messages=len(self.members),
            examples=self.examples[:5],
            first_at=self.first_at,
            last_at=self.last_at,
            hot=self.hot,
            answered_at=self.answered_at,
        )


class Clusterer:
    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray],
        config: ClusterConfig | None = None,
        clock: Callable[[], float] = time.time,
        inline: bool = False,
    ):
        """``embed``: texts → L2-normalized vectors. ``inline``: embed on the loop (tests with a virtual
        clock) instead of in a worker thread."""
        self.embed = embed
        self.cfg = config or ClusterConfig()
        self.clock = clock
        self.inline = inline
        self.clusters: dict[str, Cluster] = {}
        self._by_key: dict[tuple[str, str | None], str] = {}  # (normalized key, scope) → cluster id
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: deque[tuple[Triaged, str | None]] = deque()
        self._queued: set[str] = set()  # keys of clustered-by-topic items waiting for their vector
        self._wake = asyncio.Event()
        self._ids = itertools.count(1)
        self.on_hot: list[Callable[[Cluster, Triaged], None]] = []
        self.on_update: list[Callable[[Cluster, Triaged], None]] = []
        self.dropped = 0
        self.processed = 0
        self.embedded = 0
        self.cache_hits = 0
        self.batch_ms: deque[float] = deque(maxlen=1000)

    # --- ingest (synchronous, O(1)) -----------------------------------------------------------
    def submit(self, item: Triaged) -> bool:
        """Cluster ``item`` now when possible: its text was embedded before (most danmaku repeat), or it
        has lexicon topics (topic overlap decides; its vector refines the centroid later). Only
        topic-less new texts wait for the embedding worker."""
        vec = self._cache.get(item.key)
        if vec is not None:
            self.cache_hits += 1
            self._assign(item, self.clock(), vec)
            self.processed += 1
            return True
        if len(self._pending) >= self.cfg.max_pending:
            self.dropped += 1
            return False
        cid = None
        if item.topics:
            cid = self._assign(item, self.clock(), None).cluster_id
            self.processed += 1
            if item.key in self._queued:
                return True  # its text is already waiting for the embedder
            self._queued.add(item.key)
        self._pending.append((item, cid))
        self._wake.set()
        return True

    @property
    def backlog(self) -> int:
        return len(self._pending)

    # --- the worker -----------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            await self.drain_once()
            await asyncio.sleep(0)

    async def drain_once(self) -> int:
        batch: list[tuple[Triaged, str | None]] = []
        while self._pending and len(batch) < self.cfg.batch:
            batch.append(self._pending.popleft())
        if not batch:
            return 0
        t0 = time.perf_counter()
        todo = list(dict.fromkeys(it.key for it, _ in batch if it.key not in self._cache))
        if todo:
            vecs = self.embed(todo) if self.inline else await asyncio.to_thread(self.embed, todo)
            self.embedded += len(todo)
            for k, v in zip(todo, vecs):
                self._cache[k] = np.asarray(v, dtype=np.float32)
        for it, _ in batch:
            self._queued.discard(it.key)
        now = self.clock()
        self.expire(now)
        for it, cid in batch:
            vec = self._cache.get(it.key)
            if vec is None:  # evicted already (tiny cache): embed alone
                vec = np.asarray(self.embed([it.key])[0], dtype=np.float32)
            if cid is None:
                self._assign(it, now, vec)
                self.processed += 1
            elif (c := self.clusters.get(cid)) is not None:
                c.add_vector(vec)  # clustered on arrival by topic; now its meaning refines the centroid
        while len(self._cache) > self.cfg.cache_size:
            self._cache.popitem(last=False)
        self.batch_ms.append((time.perf_counter() - t0) * 1000)
        return len(batch)

    async def flush(self) -> None:
        """Process everything pending (tests, shutdown)."""
        while self._pending:
            await self.drain_once()

    # --- assignment -----------------------------------------------------------------------------
    def _scope(self, it: Triaged) -> str | None:
        return None if is_store_topic(it.topics) else it.sku

    def _compatible(self, c: Cluster, it: Triaged, scope: str | None) -> bool:
        if scope is not None and c.sku is not None and c.sku != scope and not c.store_level:
            return False
        if scope is None and c.sku is not None and not c.store_level and it.topics:
            return False  # a shop question doesn't join a product's cluster
        if it.topics and c.topics:
            return bool(it.topics & c.topics)
        return True

    def _threshold(self, c: Cluster, it: Triaged) -> float:
        if it.topics and c.topics:
            return self.cfg.sim_topic
        if it.topics or c.topics:
            return self.cfg.sim_one_sided
        return self.cfg.sim_plain

    def _assign(self, it: Triaged, now: float, vec: np.ndarray | None) -> Cluster:
        scope = self._scope(it)
        cid = self._by_key.get((it.key, scope))
        c = self.clusters.get(cid) if cid else None
        if c is None:
            best, best_score = None, -1e9
            for cand in self.clusters.values():
                if not self._compatible(cand, it, scope):
                    continue
                topical = bool(it.topics and cand.topics)
                known = vec is not None and cand.n_vec > 0
                if not topical and not known:
                    continue  # nothing to compare on yet
                s = float(cand.centroid @ vec) if known else 0.0
                if known and s < self._threshold(cand, it):
                    continue
                score = s + 0.5 * len(it.topics & cand.topics)
                if score > best_score:
                    best, best_score = cand, score
            c = best
        if c is None:
            if len(self.clusters) >= self.cfg.max_clusters:  # keep memory bounded: forget the coldest
                coldest = min(self.clusters.values(), key=lambda x: (x.heat, x.last_at))
                self._remove(coldest)
            c = Cluster(
                cluster_id=f"c{next(self._ids)}",
                topics=it.topics,
                sku=scope,
                centroid=np.zeros(_dim(vec), dtype=np.float32),
                n_vec=0,
                first_at=it.msg.ts,
                intent=it.intent,
            )
            self.clusters[c.cluster_id] = c
        if vec is not None:
            c.add_vector(vec)
        c.add_topics(it.topics)
        if (it.key, scope) not in self._by_key:
            self._by_key[(it.key, scope)] = c.cluster_id
            c.keys.add((it.key, scope))
        c.members.append((it.msg.ts, it.msg.viewer_id, it.text))
        c.viewers[it.msg.viewer_id] = c.viewers.get(it.msg.viewer_id, 0) + 1
        c.last_at = max(c.last_at, it.msg.ts)
        if len(c.examples) < self.cfg.examples and it.text not in c.examples:
            c.examples.append(it.text[:60])
        for fn in self.on_update:
            fn(c, it)
        if (
            not c.hot
            and c.heat >= self.cfg.min_viewers
            and (c.answered_at is None or now - c.answered_at >= self.cfg.reanswer_after_s)
        ):
            c.hot, c.hot_at = True, now
            for fn in self.on_hot:
                try:
                    fn(c, it)
                except Exception:  # a failing listener must not stop clustering
                    log.exception("on_hot listener failed")
        return c

    # --- window ---------------------------------------------------------------------------------
    def expire(self, now: float) -> None:
        horizon = now - self.cfg.window_s
        for c in list(self.clusters.values()):
            while c.members and c.members[0][0] < horizon:
                _, v, _ = c.members.popleft()
                n = c.viewers.get(v, 0) - 1
                if n <= 0:
                    c.viewers.pop(v, None)
                else:
                    c.viewers[v] = n
            if not c.members:
                self._remove(c)
            elif c.hot and c.heat < self.cfg.min_viewers and c.answered_at is not None:
                c.hot = False  # answered and cooled down

    def _remove(self, c: Cluster) -> None:
        self.clusters.pop(c.cluster_id, None)
        for k in c.keys:
            if self._by_key.get(k) == c.cluster_id:
                del self._by_key[k]

    # --- reading --------------------------------------------------------------------------------
    def cluster_of(self, it: Triaged) -> Cluster | None:
        cid = self._by_key.get((it.key, self._scope(it)))
        return self.clusters.get(cid) if cid else None

    def mark_answered(self, cluster_id: str, now: float) -> None:
        c = self.clusters.get(cluster_id)
        if c is not None:
            c.answered_at = now
            c.hot = False
            c.viewers.clear()  # heat restarts: only new askers count towards the next crossing
            c.members.clear()
            c.members.append((now, "", ""))  # keep the cluster (and its answered_at) for the window

    def hottest(self, limit: int = 10, unanswered: bool = False, min_viewers: int = 1) -> list[Cluster]:
        cs = [
            c
            for c in self.clusters.values()
            if c.heat >= min_viewers
            and (not unanswered or c.answered_at is None or (c.hot and c.hot_at and c.hot_at > c.answered_at))
        ]
        cs.sort(key=lambda c: (-c.heat, -c.last_at))
        return cs[:limit]

    def stats(self) -> dict:
        return {
            "clusters": len(self.clusters),
            "processed": self.processed,
            "dropped": self.dropped,
            "embedded": self.embedded,
            "cache_hits": self.cache_hits,
            "backlog": len(self._pending),
        }
