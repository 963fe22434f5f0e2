"""Talking-point suggestions for the host (智能话术推荐): when a question cluster turns hot, a
suggestion with the facts to say goes to the host console at once.

    "多位观众（6人）关注敏感肌适用性，建议重点讲解" + say: "玻尿酸保湿精华液：配方不含酒精和香精…" + facts

Stable API for the console::

    engine.recent(limit=20)        → list[Suggestion], newest first
    engine.hot_clusters(limit=10)  → list[ClusterView], hottest first (distinct viewers in the window)
    bus topic "suggestion"         → each new Suggestion as it is made (``HostRoom.bus.subscribe``)

``latency_ms`` on each suggestion is measured from the ingest of the message that made the
cluster cross the threshold to the suggestion's publication.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable

from host.answers import ClusterAnswerer
from host.clustering import Cluster, Clusterer
from host.frames import ClusterView, FactRef, Suggestion, Triaged
from host.pipeline import Bus

log = logging.getLogger("liveroom.host")


class SuggestionEngine:
    def __init__(
        self,
        merchant: str,
        room_id: str,
        clusterer: Clusterer,
        answerer: ClusterAnswerer,
        bus: Bus,
        clock: Callable[[], float],
        keep: int = 100,
    ):
        self.merchant, self.room_id = merchant, room_id
        self.clusterer, self.answerer, self.bus, self.clock = clusterer, answerer, bus, clock
        self._recent: deque[Suggestion] = deque(maxlen=keep)
        self._ids = itertools.count(1)
        self.latencies_ms: deque[float] = deque(maxlen=10_000)
        self.by_cluster: dict[str, Suggestion] = {}
        clusterer.on_hot.append(self.on_hot)

    def on_hot(self, cluster: Cluster, item: Triaged) -> Suggestion:
        questions = sorted(dict.fromkeys([item.text, *cluster.examples]), key=len)
        ans = self.answerer.answer(questions, cluster.topics, cluster.sku, vec=cluster.centroid)
        label = cluster.label
        if cluster.topics:
            message = f"多位观众（{cluster.heat}人）关注{label}，建议重点讲解"
        else:
            message = f"多位观众（{cluster.heat}人）在问「{label}」，建议重点讲解"
        if ans.refused or not ans.text:
            say = "资料里没有这个问题的答案，建议如实告知观众稍后由客服确认，不要现场承诺。"
        else:
            say = ans.text
        latency = (time.perf_counter() - item.msg.t_in) * 1000 if item.msg.t_in else 0.0
        s = Suggestion(
            suggestion_id=f"s{next(self._ids)}",
            merchant=self.merchant,
            room_id=self.room_id,
            cluster_id=cluster.cluster_id,
            topic=",".join(sorted(cluster.topics)) or None,
            label=label,
            message=message,
            say=say,
            facts=[FactRef(fact_id=f.id, sku=f.sku, text=f.text) for f in ans.facts],
            sku=cluster.sku,
            viewers=cluster.heat,
            examples=cluster.examples[:5],
            created_at=self.clock(),
            latency_ms=round(latency, 2),
        )
        self._recent.appendleft(s)
        self.by_cluster[cluster.cluster_id] = s
        if len(self.by_cluster) > 2000:
            for k in list(self.by_cluster)[:1000]:
                del self.by_cluster[k]
        self.latencies_ms.append(latency)
        self.bus.publish("suggestion", s)
        return s

    def recent(self, limit: int = 20) -> list[Suggestion]:
        return list(itertools.islice(self._recent, limit))

    def hot_clusters(self, limit: int = 10) -> list[ClusterView]:
        return [c.view() for c in self.clusterer.hottest(limit)]

    def for_cluster(self, cluster_id: str) -> Suggestion | None:
        return self.by_cluster.get(cluster_id)
