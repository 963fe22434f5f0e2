"""Versioning: atomic switch under concurrent searches, restore, cache-backed re-imports."""

from __future__ import annotations

import subprocess
import sys
import threading

from knowledge.store import KnowledgeBase
from tests.conftest import ROOT, mini_products, write_json


def _price_text(hits) -> set[str]:
    return {h.text for h in hits if h.fact_id == "SK-001:price"}


def test_searches_during_imports_see_one_whole_version(tmp_path, kb):
    kb.import_files(
        "m1", [write_json(tmp_path / "p.json", mini_products(price=129, extra={"specs": {"容量": "40ml"}}))]
    )
    # Each version differs in every product fact of SK-001 (price and a spec), so a mix is visible.
    expected: dict[str, set[str]] = {}
    seen: list[tuple[str, list]] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.append(kb.search("m1", "小蓝瓶精华多少钱 容量多大", k=8))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            price = 100 + i
            info = kb.import_files(
                "m1",
                [
                    write_json(
                        tmp_path / f"p{i}.json", mini_products(price=price, extra={"specs": {"容量": f"{41 + i}ml"}})
                    )
                ],
            )
            expected[info.version] = {f"{price:g}元", f"{41 + i}ml"}
    finally:
        stop.set()
        for t in threads:
            t.join()
    expected["v0001"] = {"129元", "40ml"}
    assert len(seen) > 20
    versions_seen = set()
    for version, hits in seen:
        versions_seen.add(version)
        snap_facts = {f.id: f.text for f in kb._load("m1", version).index.facts}
        for h in hits:  # every hit is a fact of exactly the version the search reported
            assert snap_facts[h.fact_id] == h.text
        text = " ".join(h.text for h in hits if h.sku == "SK-001")
        want = expected[version]
        for other, vals in expected.items():
            if other != version:
                assert not any(v in text for v in vals - want), (version, other, text)
    assert len(versions_seen) >= 2


def test_switch_is_visible_to_another_process(tmp_path, kb):
    kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products(price=129))])
    assert "直播价129元" in kb.snapshot("m1").index.fact("SK-001:price").text
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, %r)\n"
        "from knowledge.store import KnowledgeBase; from knowledge.embedder import UseEmbedder\n"
        "kb = KnowledgeBase(Path(%r), UseEmbedder(threads=1))\n"
        "print(kb.import_files('m1', [Path(%r)]).version)\n"
    ) % (str(ROOT), str(tmp_path / "kb"), str(write_json(tmp_path / "p2.json", mini_products(price=88))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "v0002"
    # This process's loaded snapshot notices the new ACTIVE on its next read.
    assert "直播价88元" in kb.snapshot("m1").index.fact("SK-001:price").text


def test_restore_brings_back_the_old_version_and_keeps_history(tmp_path, kb):
    v1 = kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products(price=129))]).version
    v2 = kb.import_files("m1", [write_json(tmp_path / "p2.json", mini_products(price=99))]).version
    _, hits = kb.search("m1", "小蓝瓶多少钱", k=5)
    assert _price_text(hits) == {"暖光 玻尿酸保湿精华液 30ml（SK-001）直播价99元，日常价199元"}
    kb.restore("m1", v1)
    assert kb.active_version("m1") == v1
    _, hits = kb.search("m1", "小蓝瓶多少钱", k=5)
    assert _price_text(hits) == {"暖光 玻尿酸保湿精华液 30ml（SK-001）直播价129元，日常价199元"}
    vs = kb.versions("m1")
    assert [(v.version, v.active) for v in vs] == [(v1, True), (v2, False)]
    kb.restore("m1", v2)  # and forward again
    assert kb.active_version("m1") == v2


def test_restore_unknown_version_is_a_clear_error(tmp_path, kb):
    import pytest

    from knowledge.store import KBError, UnknownVersion

    kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products())])
    with pytest.raises(UnknownVersion):
        kb.restore("m1", "v0042")
    with pytest.raises(KBError):
        kb.restore("../etc", "v0001")


def test_unchanged_products_are_not_re_embedded(tmp_path, kb, embedder):
    first = kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products(price=129))])
    assert first.embedded == first.facts == len(set(embedder.texts))
    embedder.texts.clear()
    same = kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products(price=129))])
    assert same.embedded == 0 and embedder.texts == []
    # Change one price: only that product's price fact (and nothing else) is embedded again.
    changed = kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products(price=119))])
    assert changed.embedded == 1
    assert embedder.texts == ["暖光 玻尿酸保湿精华液 30ml（SK-001）直播价119元，日常价199元"]


def test_if_changed_creates_no_new_version(tmp_path, kb):
    p = write_json(tmp_path / "p.json", mini_products())
    v1 = kb.import_files("m1", [p])
    again = kb.import_files("m1", [p], if_changed=True)
    assert again.version == v1.version and len(kb.versions("m1")) == 1


def test_merchants_are_isolated(tmp_path, embedder):
    kb = KnowledgeBase(tmp_path / "kb", embedder)
    kb.import_files("shop-a", [write_json(tmp_path / "a.json", mini_products(price=129))])
    b = mini_products(price=1)
    b["products"] = b["products"][2:]
    kb.import_files("shop-b", [write_json(tmp_path / "b.json", b)])
    _, hits = kb.search("shop-b", "小蓝瓶精华多少钱", k=10)
    assert hits and all(h.sku in (None, "AP-001") for h in hits)
