"""The learned intent classifier (agent/intent_model.py): trained once per module on the packaged
labelled set with the real USE encoder, then asked questions from a category the set has none of
(汽车用品, car accessories), asked for directions, and reloaded from its cache."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agent.intent_model import INTENTS, IntentModel, LabelledRow, load_labelled

ROOT = Path(__file__).resolve().parent.parent

CATEGORIES = {
    "美妆护肤", "服装鞋包", "零食食品", "数码配件", "家用电器", "厨房用品",
    "母婴用品", "家居日用", "运动户外", "酒水饮料", "个护清洁", "图书文具",
}  # fmt: skip
ATTRIBUTES = set(
    """price stock weight dimensions length width height thickness volume_capacity battery_capacity power voltage
    battery_life charge_time material origin warranty age_range shelf_life ingredients color flavor scent net_content
    calories nutrition waterproof noise connectivity ports compatibility temperature speed storage screen resolution
    size_fit wash_care season certification packaging quantity texture style brand model accessories usage
    suitable_weight effect durability safety installation fit_gender spiciness sweetness shipping_time
    shipping_carrier shipping_fee shipping_region returns exchange refund warranty_policy invoice membership payment
    price_protection coupon_rules gift""".split()
)

# A category the labelled set does not have, in the room's mix of Chinese, English and both.
UNSEEN = {
    "price": ["行车记录仪多少钱", "座椅套今天什么价", "how much is the car vacuum"],
    "stock": ["黑色脚垫还有吗", "is the dash cam in stock", "轮胎打气泵卖完了吗"],
    "detail": ["记录仪是几K的 夜视清楚吗", "打气泵充一次能打几个胎", "does the phone mount fit air vents"],
    "suitability": ["新手司机适合用这个吗", "SUV能用吗 七座的", "is it ok for a small car"],
    "compare": ["这两个记录仪有啥区别", "哪个吸尘器吸力大", "磁吸和夹子的支架哪个好"],
    "recommend": ["新车推荐装点啥", "送老公买什么车载好物", "what dash cam would you recommend"],
    "policy": ["能上门安装吗 要收费吗", "发货快吗 几天到", "can i return it if it doesn't fit"],
    "coupon": ["主播给张优惠券", "有没有红包 领一个", "coupon pls"],
    "greeting": ["主播好 开车路过", "good night all", "谢谢主播"],
    "chitchat": ["主播会开车吗", "今天堵车堵死了", "哈哈哈太搞笑了"],
    "profile": ["我积分多少了", "我是什么会员等级"],
    "noise": ["呃 那个 嗯", "额额额", "uh um"],
}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("intent-cache")


@pytest.fixture(scope="module")
def model(use_embedder, cache_dir) -> IntentModel:
    m = IntentModel.load_or_train(use_embedder, cache_dir=cache_dir)
    assert not m.loaded_from_cache  # an empty cache: trained here
    return m


def test_labelled_set_shape():
    rows = load_labelled()
    by_cat = Counter(r.category for r in rows)
    assert set(by_cat) == CATEGORIES
    assert min(by_cat.values()) >= 70 and len(rows) >= 850
    assert {r.intent for r in rows} == set(INTENTS)
    for cat in CATEGORIES:  # the product intents in every category
        have = {r.intent for r in rows if r.category == cat}
        assert {"price", "stock", "detail", "suitability", "compare", "recommend", "policy"} <= have, cat
    assert all(r.attribute is None or r.attribute in ATTRIBUTES for r in rows)
    assert all(r.direction in (None, "more", "less") for r in rows)
    assert {r.lang for r in rows} == {"zh", "en", "mixed"}
    keys = [unicodedata.normalize("NFKC", r.text).lower() for r in rows]
    assert len(keys) == len(set(keys)), "duplicate texts"


def test_labelled_set_keeps_pets_and_eval_questions_out():
    rows = load_labelled()
    pet = ("宠物", "猫", "狗", "犬", "猫粮", "狗粮", "pet", "puppy", "kitten", " dog", " cat")
    assert not [r.text for r in rows if any(w in f" {r.text.lower()}" for w in pet)]
    evals = list((ROOT / "evals" / "data" / "catalogs").glob("*/questions.jsonl"))
    evals.append(ROOT / "evals" / "data" / "answer_questions.jsonl")
    seen: set[str] = set()
    for path in evals:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    d = json.loads(line)
                    q = d.get("q") or d.get("text") or d.get("question") or ""
                    seen.add(unicodedata.normalize("NFKC", str(q)).lower().strip())
    assert len(seen) > 100  # the check compared against something
    assert not [r.text for r in rows if unicodedata.normalize("NFKC", r.text).lower().strip() in seen]


@pytest.mark.parametrize("intent", list(UNSEEN))
def test_unseen_category_phrasings(model, intent):
    got = {q: model.predict(q).intent for q in UNSEEN[intent]}
    assert all(g == intent for g in got.values()), got


def test_prediction_shape(model, use_embedder):
    p = model.predict("这个行车记录仪多少钱")
    assert p.intent == "price" and set(p.proba) == set(INTENTS)
    assert abs(sum(p.proba.values()) - 1.0) < 1e-4 and p.confidence == max(p.proba.values())
    assert p.direction is None  # not a comparison
    vec = use_embedder.encode(["这个行车记录仪多少钱"])[0]
    assert model.predict("这个行车记录仪多少钱", vec=vec).proba == pytest.approx(p.proba, abs=1e-5)
    many = model.predict_many(["这个行车记录仪多少钱", "有券吗"])
    assert [m.intent for m in many] == ["price", "coupon"]
    assert many[0].proba == pytest.approx(p.proba, abs=1e-5)
    assert model.predict_many([]) == []


@pytest.mark.parametrize(
    ("text", "direction"),
    [
        ("哪个更轻", "less"),
        ("which lasts longer", "more"),
        ("哪个续航长", "more"),
        ("哪个便宜", "less"),
        ("哪个吸力更大", "more"),
        ("which one is lighter", "less"),
        ("这两个有什么区别", None),
        ("发什么快递", None),
    ],
)
def test_directions(model, text, direction):
    assert model.predict(text).direction == direction


def test_cache_round_trip(model, use_embedder, cache_dir):
    files = list(cache_dir.glob("intent-*.npz"))
    assert len(files) == 1
    again = IntentModel.load_or_train(use_embedder, cache_dir=cache_dir)
    assert again.loaded_from_cache
    texts = [q for qs in UNSEEN.values() for q in qs] + ["哪个更轻", "which lasts longer"]
    vecs = use_embedder.encode(texts)
    for a, b in zip(model.predict_many(texts, vecs=vecs), again.predict_many(texts, vecs=vecs)):
        assert a.intent == b.intent and a.direction == b.direction
        assert a.proba == pytest.approx(b.proba, abs=1e-5)


def test_cache_key_follows_data(use_embedder, tmp_path):
    rows = [r for r in load_labelled() if r.category == "图书文具"]
    data = tmp_path / "small.jsonl"
    data.write_text(
        "".join(json.dumps({"text": r.text, "intent": r.intent, "direction": r.direction}) + "\n" for r in rows),
        encoding="utf-8",
    )
    first = IntentModel.load_or_train(use_embedder, cache_dir=tmp_path / "c", data=data)
    assert not first.loaded_from_cache
    assert IntentModel.load_or_train(use_embedder, cache_dir=tmp_path / "c", data=data).loaded_from_cache
    with data.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"text": "多少钱一本", "intent": "price"}) + "\n")
    assert not IntentModel.load_or_train(use_embedder, cache_dir=tmp_path / "c", data=data).loaded_from_cache
    assert len(list((tmp_path / "c").glob("intent-*.npz"))) == 2
    for f in (tmp_path / "c").glob("intent-*.npz"):
        f.write_bytes(b"not an npz")  # a torn cache file is retrained over, not an error
    assert not IntentModel.load_or_train(use_embedder, cache_dir=tmp_path / "c", data=data).loaded_from_cache


def test_train_rejects_empty(use_embedder):
    with pytest.raises(ValueError):
        IntentModel.train([], use_embedder)
    rows = [LabelledRow("多少钱", "price"), LabelledRow("有货吗", "stock")]
    m = IntentModel.train(rows, use_embedder)  # a single direction class still trains
    assert m.predict("多少钱啊").direction is None
    assert np.isclose(sum(m.predict("有货吗").proba.values()), 1.0)
