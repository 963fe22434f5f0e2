"""The compliance checker every output path uses: price claims, fake scarcity, merchant word lists,
and precision / recall on the corpus of good and bad lines (evals/compliance.py)."""

from __future__ import annotations

import pytest

from agent import compliance
from agent.compliance import ComplianceRules, CouponTerms, PriceFacts

SERUM = PriceFacts(price=129, list_price=199, variant_prices=[129, 189])
SERUM_C10 = PriceFacts(price=129, list_price=199, coupons=[CouponTerms("amount", amount=10, threshold=99)])


def rules_of(text, **kw):
    return sorted({v.rule for v in compliance.check(text, **kw)})


def test_existing_signatures_still_work():
    assert compliance.check("仅剩3件，马上抢光！", compliance.DEFAULT_RULES, 300)
    text, v = compliance.enforce("全网最低价，保湿效果好。", compliance.DEFAULT_RULES, None)
    assert v and "全网最低" not in text
    assert compliance.check("库存还剩12件。", real_stock=12) == []
    # without the real figures there is nothing to check a price claim against
    assert compliance.check("原价999元，今晚9.9元。") == []


@pytest.mark.parametrize("text", ["原价299元，今晚129元。", "日常价250元", "划线价¥299"])
def test_list_price_that_is_not_the_list_price(text):
    vs = compliance.check(text, prices=SERUM)
    assert [v.rule for v in vs] == ["price"]
    assert "199" in vs[0].detail


@pytest.mark.parametrize(
    "text,ok",
    [
        ("原价199元，直播价129元。", True),
        ("直播价99元。", False),
        ("今晚只要129元！", True),
        ("到手价119元", False),
        ("6.5折入手", True),
        ("6折入手", False),
        ("5折", False),
        ("半价", False),
        ("立省70元", True),
        ("省100元", False),
        ("直降70元", True),
        ("¥79带走", False),
        ("50ml只要189元", True),
        ("30ml，2-3滴就够全脸", True),
    ],
)
def test_wrong_price_and_discount_claims(text, ok):
    assert (rules_of(text, prices=SERUM) == []) == ok, compliance.check(text, prices=SERUM)


def test_coupon_claims_must_match_a_real_coupon():
    assert rules_of("满99减10券，到手119元。", prices=SERUM_C10) == []
    assert rules_of("券后只要119元", prices=SERUM_C10) == []
    assert rules_of("用券后约6折", prices=SERUM_C10) == []  # 119/199 = 0.598
    assert rules_of("满99减30", prices=SERUM_C10) == ["price"]
    assert rules_of("领50元无门槛券", prices=SERUM_C10) == ["price"]
    assert rules_of("到手109元", prices=SERUM_C10) == ["price"]
    # a coupon the copy cites from a policy document is supported by citing it
    fan = PriceFacts(price=129, list_price=199, fact_texts=["铁粉每场直播可以领一张铁粉专属券（满199减20）"])
    assert rules_of("铁粉专属券满199减20", prices=fan) == []
    assert rules_of("铁粉专属券满199减30", prices=fan) == ["price"]
    # a number elsewhere in a cited fact ("30ml") doesn't back a saving of 30 yuan
    named = PriceFacts(price=129, list_price=199, fact_texts=["玻尿酸保湿精华液 30ml直播价129元，日常价199元"])
    assert rules_of("比日常价省30元", prices=named) == ["price"] and rules_of("比日常价省70元", prices=named) == []


def test_fake_scarcity_against_real_stock():
    assert rules_of("仅剩3件，快下单", real_stock=320) == ["scarcity"]
    assert rules_of("仅剩15件", real_stock=15) == []
    assert rules_of("库存紧张，喜欢的早点下单", real_stock=320) == ["scarcity"]
    assert rules_of("库存紧张，喜欢的早点下单", real_stock=12) == []  # true: at or below low_stock (20)
    assert rules_of("库存紧张", real_stock=None) == ["scarcity"]  # unknown stock can't back the claim
    assert rules_of("库存不多", real_stock=0) == ["scarcity"]
    assert rules_of("马上抢光，手慢无", real_stock=5) == ["scarcity"]  # hype stays hype
    assert rules_of("库存还有320件", real_stock=320) == []


def test_every_violation_names_its_rule_and_term():
    vs = compliance.check("全网最低价，能祛痘，仅剩3件，原价299元！", real_stock=320, prices=SERUM)
    by_rule = {v.rule: v for v in vs}
    assert set(by_rule) == {"absolute", "medical", "scarcity", "price"}
    assert by_rule["absolute"].term == "全网最低" and by_rule["medical"].term == "祛痘"
    assert by_rule["price"].term.startswith("原价299")


def test_merchants_extend_the_word_lists(tmp_path):
    rules = ComplianceRules.from_overrides(
        {"absolute": ["天花板"], "medical": ["美白"], "scarcity": [r"限量\d+份"], "allow": ["最新款"], "low_stock": 5}
    )
    assert rules_of("口红天花板", rules=rules) == ["absolute"]
    assert rules_of("美白精华", rules=rules) == ["medical"]
    assert rules_of("限量100份", rules=rules) == ["scarcity"]
    assert rules_of("库存紧张", rules=rules, real_stock=12) == ["scarcity"]  # 12 > 5 for this merchant
    assert rules_of("天花板", rules=compliance.DEFAULT_RULES) == []  # defaults untouched
    assert rules_of("最新款上架", rules=rules) == []
    p = tmp_path / "demo.json"
    p.write_text('{"absolute": ["天花板"]}', encoding="utf-8")
    assert rules_of("天花板", rules=ComplianceRules.load(p)) == ["absolute"]
    assert ComplianceRules.load(tmp_path / "missing.json") is compliance.DEFAULT_RULES
    with pytest.raises(ValueError):
        ComplianceRules.from_overrides({"absolute": "天花板"})
    with pytest.raises(ValueError):
        ComplianceRules.from_overrides({"scarcity": ["(unclosed"]})
    with pytest.raises(ValueError):
        ComplianceRules.from_overrides({"colour": []})
    # the old positional form keeps working
    assert "天花板" in compliance.DEFAULT_RULES.extended(["天花板"]).absolute


def test_enforce_drops_wrong_price_sentences():
    text, vs = compliance.enforce("原价299元。三重玻尿酸补水。", prices=SERUM)
    assert text == "三重玻尿酸补水。" and vs[0].rule == "price"


def test_corpus_precision_and_recall(capsys):
    from evals.compliance import evaluate, main

    res = evaluate()
    assert res["lines"] >= 100 and res["good_lines"] >= 40 and res["bad_lines"] >= 60
    main([])  # prints the table (visible with -s)
    printed = capsys.readouterr().out
    assert "precision" in printed and "recall" in printed
    ll = res["line_level"]
    assert ll["precision"] >= 0.95 and ll["recall"] >= 0.85, ll
    for rule, v in res["per_rule"].items():
        assert v["precision"] >= 0.9 and v["recall"] >= 0.85, (rule, v)
    # the lines the rules were written against are all right; misses are the paraphrase ("hard") lines
    from evals.compliance import load_corpus

    hard = {x["text"] for x in load_corpus() if x.get("hard")}
    assert all(e["text"] in hard for e in res["errors"]), res["errors"]
