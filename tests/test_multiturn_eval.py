"""The multi-turn eval's data set is sound and its harness runs end to end (no LLM, no accuracy asserted:
the agent's figures are the eval's output, not this test's)."""

from __future__ import annotations

import copy
from collections import Counter
from types import SimpleNamespace

import pytest

from evals import multiturn as mt


@pytest.fixture(scope="module")
def exchanges() -> list[dict]:
    return mt.load()


def test_data_validates(exchanges):
    assert mt.validate(exchanges) == []


def test_size_and_coverage(exchanges):
    assert len(exchanges) >= 60
    per_catalog = Counter(ex["catalog"] for ex in exchanges)
    assert per_catalog["gadgets"] >= 24 and per_catalog["demo"] >= 20 and per_catalog["pets"] >= 20
    assert min(per_catalog.values()) >= 15
    per_kind = Counter(ex["kind"] for ex in exchanges)
    assert set(per_kind) == set(mt.KINDS)
    assert min(per_kind.values()) >= 8, per_kind
    assert all(2 <= len(ex["turns"]) <= 3 for ex in exchanges)
    assert any(len(ex["turns"]) == 3 for ex in exchanges)
    turns = [t for ex in exchanges for t in ex["turns"]]
    assert sum(t["lang"] == "en" for t in turns) >= 10
    assert sum(bool(t.get("must_refuse")) for t in turns) >= 3
    assert sum(t.get("source") == "policy" for t in turns) >= 8
    assert sum(bool(t.get("context_sku")) for t in turns) >= 4
    # a named product must win over the one on screen: some follow-ups name a product other than context_sku
    assert any(t.get("context_sku") and t.get("sku") and t["sku"] != t["context_sku"] for t in turns)


def test_every_language_switch_switches(exchanges):
    for ex in exchanges:
        if ex["kind"] == "language_switch":
            assert len({t["lang"] for t in ex["turns"]}) == 2, ex["id"]


def test_validator_catches_bad_data(exchanges):
    ex = copy.deepcopy(next(e for e in exchanges if e["id"] == "g-01"))
    ex["turns"][0]["expect"] = ["89"]  # not this product's price
    ex["turns"][1]["sku"] = "PB-99"  # no such sku
    bad = copy.deepcopy(next(e for e in exchanges if e["id"] == "g-07"))
    bad["id"], bad["viewer"] = "g-x", "v-x"
    bad["turns"][1]["confusable"] = ["79"]  # PB-10's own white/black price: a right answer may say it
    problems = "\n".join(mt.validate([ex, bad]))
    assert "expected '89' not in the data" in problems
    assert "sku PB-99 not in catalog" in problems
    assert "confusable '79' is in the answer's own data" in problems


def _ans(text: str, refused: bool = False) -> SimpleNamespace:
    return SimpleNamespace(answer=text, refused=refused, path="fast", lang="zh")


def test_judge_turn():
    nouns = mt.proper_nouns(mt.catalog_data("gadgets")["products"].values())
    t = {"q": "紫色的呢", "expect": ["85"], "confusable": ["59"], "lang": "zh"}
    assert mt.judge_turn(t, _ans("薰衣草紫的85元"), nouns)["ok"]
    assert not mt.judge_turn(t, _ans("薰衣草紫的185元"), nouns)["ok"]  # strict numbers
    assert not mt.judge_turn(t, _ans("85元，mini款59元"), nouns)["ok"]  # confusable
    assert not mt.judge_turn(t, _ans("It's ¥85 for the purple one"), nouns)["ok"]  # wrong language
    en = {"q": "how much is it?", "expect": ["199"], "lang": "en"}
    assert mt.judge_turn(en, _ans("极电 Air Pro 主动降噪蓝牙耳机 is ¥199 tonight."), nouns)["ok"]
    assert not mt.judge_turn(en, _ans("About 极电 Air Pro 主动降噪蓝牙耳机: 今晚直播价199元。"), nouns)["ok"]
    refuse = {"q": "它有背光吗", "must_refuse": True, "lang": "zh"}
    assert mt.judge_turn(refuse, _ans("这个问题我先记下，稍后请主播帮你确认哦～", refused=True), nouns)["ok"]
    assert mt.judge_turn(refuse, _ans("详情里没有写背光的信息，我帮你问一下主播"), nouns)["ok"]
    assert not mt.judge_turn(refuse, _ans("有的，RGB背光"), nouns)["ok"]
    assert not mt.judge_turn(en, _ans("", refused=True), nouns)["ok"]


def test_lang_of():
    assert mt.lang_of("这款今晚79元") == "zh"
    assert mt.lang_of("It is 79 yuan tonight") == "en"
    assert mt.lang_of("极电 磁吸充电宝 10000mAh is ¥79", ["极电 磁吸充电宝 10000mAh"]) == "en"
    assert mt.lang_of("About 磁吸宝: 重量是198g。", ["磁吸宝"]) == "zh"


async def test_harness_runs_three_exchanges(exchanges):
    picked = [ex for ex in exchanges if ex["catalog"] == "gadgets"][:3]
    results = await mt.run(picked, use_llm=False, progress=False)
    assert [r["id"] for r in results] == [ex["id"] for ex in picked]
    for r, ex in zip(results, picked, strict=True):
        assert len(r["turns"]) == len(ex["turns"])
        assert all(t["answer"].strip() and t["path"] in ("fast", "llm") for t in r["turns"])
        assert r["ok"] == all(t["ok"] for t in r["turns"])
    rep = mt.report(results)
    assert rep["exchanges"]["n"] == 3 and rep["turns"]["n"] == sum(len(ex["turns"]) for ex in picked)
    assert set(rep["by_catalog"]) == {"gadgets"} and rep["llm_answers"] == 0
