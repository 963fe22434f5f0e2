"""QueryEmbedder (recent vectors kept, concurrent misses in one encoder call) and the KB's search cache."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from knowledge.embedder import QueryEmbedder
from knowledge.store import KnowledgeBase
from tests.conftest import mini_products, write_json


class ScriptedEncoder:
    """Deterministic vectors; each call recorded; a call can be held open (``gate``) or made to fail."""

    name, dim = "scripted", 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.fail_next = 0

    def encode(self, texts):
        self.calls.append(list(texts))
        self.entered.set()
        if self.gate is not None:
            gate, self.gate = self.gate, None  # only the first call is held
            assert gate.wait(10)
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("encoder down")
        return np.array([[len(t), ord(t[0]), 1.0, 0.0] for t in texts], dtype=np.float32)


def _until(cond, timeout: float = 10.0) -> None:
    """Waits on a state change (not a duration): the test is not sensitive to CPU load."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def _run(fn, *args):
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except Exception as e:  # noqa: BLE001 — handed to the test
            box["error"] = e

    t = threading.Thread(target=target)
    t.start()
    return t, box


def test_concurrent_misses_share_one_encoder_call():
    inner = ScriptedEncoder()
    inner.gate = gate = threading.Event()
    q = QueryEmbedder(inner, window_ms=0)
    first, _ = _run(q.encode, ["a"])
    assert inner.entered.wait(10)  # the first caller is encoding; the next ones queue behind it
    others = [_run(q.encode, [t]) for t in ("bb", "ccc", "dddd", "bb")]
    _until(lambda: q.stats["misses"] == 5)
    gate.set()
    for t, _ in [(first, None), *others]:
        t.join(10)
    assert inner.calls[0] == ["a"]
    assert len(inner.calls) == 2 and sorted(inner.calls[1]) == ["bb", "ccc", "dddd"]  # one call, "bb" once
    for (_, box), text in zip(others, ("bb", "ccc", "dddd", "bb")):
        assert box["value"].shape == (1, 4) and box["value"][0, 0] == len(text)


def test_repeated_questions_come_from_the_cache():
    inner = ScriptedEncoder()
    q = QueryEmbedder(inner)
    a = q.encode(["小蓝瓶多少钱", "满多少包邮"])
    a[0, :] = -1  # callers get their own array, never the cache's rows
    b = q.encode(["满多少包邮", "小蓝瓶多少钱"])
    assert len(inner.calls) == 1
    assert b[1, 0] == len("小蓝瓶多少钱") and b[0, 0] == len("满多少包邮")
    assert q.stats["hits"] == 2 and q.stats["misses"] == 2


def test_an_encoder_error_reaches_its_caller_and_the_next_caller_retries():
    inner = ScriptedEncoder()
    inner.fail_next = 1
    q = QueryEmbedder(inner)
    with pytest.raises(RuntimeError, match="encoder down"):
        q.encode(["a"])
    assert q.encode(["a"])[0, 0] == 1  # nothing cached from the failure: encoded again
    assert inner.calls == [["a"], ["a"]]


def test_a_caller_waiting_on_a_failed_batch_retries_it_itself():
    inner = ScriptedEncoder()
    inner.gate = gate = threading.Event()
    inner.fail_next = 1
    q = QueryEmbedder(inner, window_ms=0)
    first, first_box = _run(q.encode, ["a"])
    assert inner.entered.wait(10)
    second, second_box = _run(q.encode, ["a"])  # the same question, arriving mid-encode
    _until(lambda: q.stats["misses"] == 2)
    gate.set()
    first.join(10)
    second.join(10)
    assert isinstance(first_box.get("error"), RuntimeError)
    assert second_box["value"][0, 0] == 1
    assert inner.calls == [["a"], ["a"]]


def test_bulk_calls_pass_straight_through():
    inner = ScriptedEncoder()
    q = QueryEmbedder(inner, bulk=8)
    texts = [f"fact {i}" for i in range(20)]
    out = q.encode(texts)
    assert inner.calls == [texts] and out.shape == (20, 4)
    assert q.stats["hits"] == q.stats["misses"] == 0  # a catalog import fills nothing
    assert q.encode([]).shape == (0, 4)


def test_search_results_are_cached_per_version_and_never_stale(tmp_path, embedder):
    kb = KnowledgeBase(tmp_path / "kb", QueryEmbedder(embedder))
    kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products(price=129))])
    v1, hits = kb.search("m1", "小蓝瓶多少钱", k=5)
    assert any("129" in h.text for h in hits if h.fact_id == "SK-001:price")
    hits[0].text = "changed by a caller"
    seen = len(embedder.texts)
    again_v, again = kb.search("m1", "小蓝瓶多少钱", k=5)
    assert again_v == v1 and len(embedder.texts) == seen  # neither encoded nor searched again
    assert again[0].text != "changed by a caller"
    assert kb.search_cache.hits >= 1

    kb.import_files("m1", [write_json(tmp_path / "p2.json", mini_products(price=99))])
    v2, fresh = kb.search("m1", "小蓝瓶多少钱", k=5)
    assert v2 != v1
    prices = {h.text for h in fresh if h.fact_id == "SK-001:price"}
    assert prices and all("99" in t and "129" not in t for t in prices)

    kb.restore("m1", v1)  # the old version is its own key: its own results again
    _, old = kb.search("m1", "小蓝瓶多少钱", k=5)
    assert any("129" in h.text for h in old if h.fact_id == "SK-001:price")


def test_search_cache_key_includes_k_and_skus(tmp_path, kb):
    kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products())])
    _, three = kb.search("m1", "保湿", k=3)
    _, eight = kb.search("m1", "保湿", k=8)
    assert len(three) <= 3 < len(eight)
    _, only = kb.search("m1", "保湿", k=8, skus={"AP-001"})
    assert only and {h.sku for h in only} <= {"AP-001"}
