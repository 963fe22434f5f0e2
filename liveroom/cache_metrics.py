"""Prometheus counters of the answer path's caches (whole answers, search results, query vectors, intent predictions):
the share of a live room's repeated questions that cost nothing (benchmarks/ws_load reads them)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from knowledge.embedder import QueryEmbedder
from liveroom.container import Container


class CacheCollector(Collector):
    def __init__(self, container: Container):
        self.c = container

    def collect(self) -> Iterator[CounterMetricFamily]:
        fam = CounterMetricFamily("liveroom_cache_lookups", "Answer-path cache lookups", labels=["cache", "result"])
        built = self.c.__dict__  # read only what exists: collecting must not build the KB or the models
        counts: dict[str, tuple[int, int]] = {}
        if "kb" in built:
            sc = self.c.kb.search_cache
            counts["search"] = (sc.hits, sc.misses)
        if isinstance(emb := built.get("embedder"), QueryEmbedder):
            counts["query_vector"] = (emb.stats["hits"], emb.stats["misses"])
        if "agent" in built and (ac := self.c.agent.answer_cache) is not None:
            counts["answer"] = (ac.hits, ac.misses)
        if "intent_model" in built:
            memo = self.c.intent_model.memo
            counts["intent"] = (memo.hits, memo.misses)
        for cache, (hits, misses) in counts.items():
            fam.add_metric([cache, "hit"], hits)
            fam.add_metric([cache, "miss"], misses)
        yield fam
