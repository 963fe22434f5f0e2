"""The cross-category attribute book (knowledge/data/attributes.json) and the quantity parser."""

from __future__ import annotations

import json

import pytest

from knowledge.attributes import DATA_PATH, AttributeBook, load_attributes, normalize, parse_quantities

REQUIRED_PRODUCT = """price stock weight dimensions length width height thickness volume_capacity battery_capacity power
voltage battery_life charge_time material origin warranty age_range shelf_life ingredients color flavor scent
net_content calories nutrition waterproof noise connectivity ports compatibility temperature speed storage screen
resolution size_fit wash_care season certification packaging quantity texture style brand model accessories usage
suitable_weight effect durability safety installation fit_gender spiciness sweetness""".split()
REQUIRED_STORE = """shipping_time shipping_carrier shipping_fee shipping_region returns exchange refund warranty_policy
invoice membership payment price_protection coupon_rules gift""".split()


@pytest.fixture(scope="module")
def book() -> AttributeBook:
    return load_attributes()


# --- the data file ---------------------------------------------------------------------------------
def test_data_file_is_valid_and_complete(book: AttributeBook) -> None:
    raw = json.loads(DATA_PATH.read_text(encoding="utf-8"))
    assert set(raw) == {"units", "attributes", "comparison_frames"}
    for rid in REQUIRED_PRODUCT:
        a = book.get(rid)
        assert a is not None and a.scope == "product", rid
    for rid in REQUIRED_STORE:
        a = book.get(rid)
        assert a is not None and a.scope == "store", rid
    assert 60 <= len(book.attributes) <= 120
    ids = [a.id for a in book.attributes]
    assert len(ids) == len(set(ids))
    dims = {u.dimension for u in book.units}
    for a in book.attributes:
        assert set(a.dimensions) <= dims, a.id
        assert len(a.names_zh) >= 5 and len(a.names_en) >= 3, a.id
        assert a.key_patterns, a.id
        for word in [*a.names_zh, *a.names_en, *a.key_patterns, *a.more_words, *a.less_words]:
            assert word == word.strip() and word, a.id


def test_unit_aliases_are_unique(book: AttributeBook) -> None:
    raw = [x for u in book.units for x in {u.symbol, *u.aliases}]
    assert len(raw) == len(set(raw))
    owner: dict[str, str] = {}
    for u in book.units:
        for alias in {normalize(x) for x in [u.symbol, *u.aliases]}:  # case/width-insensitively too
            assert owner.setdefault(alias, u.symbol) == u.symbol, (alias, owner[alias], u.symbol)
    required = {"mass", "length", "volume", "charge", "energy", "power", "voltage", "current", "time"}
    required |= {"temperature", "data", "frequency", "count", "percent", "area", "calories", "noise", "pixels"}
    assert required <= {u.dimension for u in book.units}


def test_inconsistent_data_is_refused(book: AttributeBook) -> None:
    data = book.model_dump()
    data["attributes"][0]["dimensions"] = ["no_such_dimension"]
    with pytest.raises(ValueError):
        AttributeBook.model_validate(data)
    data = book.model_dump()
    data["units"][1]["aliases"].append("G")  # "g" is already grams
    with pytest.raises(ValueError):
        AttributeBook.model_validate(data)


# --- mentioned -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("这个多少钱", "price"),
        ("还有货吗", "stock"),
        ("多重啊", "weight"),
        ("How much does it weigh?", "weight"),
        ("续航多久", "battery_life"),
        ("how long does the battery last", "battery_life"),
        ("充电宝多少毫安的", "battery_capacity"),
        ("几瓦的", "power"),
        ("充满要多久", "charge_time"),
        ("是纯棉的吗", "material"),
        ("is this real leather", "material"),
        ("哪里产的", "origin"),
        ("保修几年", "warranty"),
        ("几岁的宝宝能玩", "age_range"),
        ("保质期多久", "shelf_life"),
        ("配料表干净吗", "ingredients"),
        ("有几个颜色", "color"),
        ("什么口味好吃", "flavor"),
        ("留香久吗", "scent"),
        ("热量高吗", "calories"),
        ("蛋白质含量多少", "nutrition"),
        ("is it waterproof", "waterproof"),
        ("吵不吵", "noise"),
        ("蓝牙能连手机吗", "connectivity"),
        ("ＷＩＦＩ有吗", "connectivity"),
        ("有几个口", "ports"),
        ("这个锅电磁炉能用吗", "compatibility"),
        ("身高165体重110斤穿什么码", "size_fit"),
        ("这个size偏大吗", "size_fit"),
        ("能机洗吗", "wash_care"),
        ("有礼盒装吗", "packaging"),
        ("一盒几片", "quantity"),
        ("辣不辣", "spiciness"),
        ("does it come with a charger", "accessories"),
        ("承重多少", "suitable_weight"),
        ("甲醛超标吗", "safety"),
        ("要打孔吗", "installation"),
        ("屏幕多大", "screen"),
        ("内存多大", "storage"),
        ("几天发货", "shipping_time"),
        ("发什么快递", "shipping_carrier"),
        ("包邮吗", "shipping_fee"),
        ("新疆发吗", "shipping_region"),
        ("拆封了能退吗", "returns"),
        ("能换码吗", "exchange"),
        ("退款多久到账", "refund"),
        ("坏了怎么办", "warranty_policy"),
        ("能开发票吗", "invoice"),
        ("会员积分怎么用", "membership"),
        ("可以用花呗吗", "payment"),
        ("降价补差吗", "price_protection"),
        ("券能叠加吗", "coupon_rules"),
        ("有赠品吗", "gift"),
        ("do you ship to the US", "shipping_region"),
    ],
)
def test_mentioned_best(book: AttributeBook, text: str, expected: str) -> None:
    got = book.mentioned(text)
    assert got and got[0][0] == expected, got
    assert all(0 < s <= 1 for _, s in got)


def test_mentioned_longest_match_and_ambiguity(book: AttributeBook) -> None:
    # "续航" is battery life, not a stray "电"/"时间"; several attributes come back, strongest first
    assert book.mentioned("续航时间多长")[0][0] == "battery_life"
    got = dict(book.mentioned("这个充电宝能用多久"))  # genuinely ambiguous: both come back, equally
    assert {"battery_life", "durability"} <= set(got)
    assert got["battery_life"] == got["durability"]
    got = dict(book.mentioned("多重，什么颜色"))
    assert {"weight", "color"} <= set(got)
    assert book.mentioned("今天天气不错") == []
    assert [a for a, _ in book.mentioned("portable speaker")] != ["ports"]  # word boundaries: "port" ≠ "portable"


# --- direction -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("哪个更轻", ("weight", "less")),
        ("哪个最轻", ("weight", "less")),  # 最X reads as 更X
        ("which one is lighter", ("weight", "less")),
        ("哪个续航长", ("battery_life", "more")),
        ("哪个续航时间更长", ("battery_life", "more")),  # generic 更长 goes to the attribute named
        ("which has longer battery life", ("battery_life", "more")),
        ("哪个更大", ("dimensions", "more")),  # a bare 更大/bigger is about size
        ("哪个电池容量更大", ("battery_capacity", "more")),
        ("which has a bigger battery", ("battery_capacity", "more")),
        ("哪个屏幕更大", ("screen", "more")),
        ("哪个更便宜", ("price", "less")),
        ("哪个价格更低", ("price", "less")),
        ("which is cheaper", ("price", "less")),
        ("哪个充电更快", ("charge_time", "less")),
        ("充电速度哪个更快", ("charge_time", "less")),
        ("哪个发货更快", ("shipping_time", "less")),
        ("哪个更安静", ("noise", "less")),
        ("which is quieter", ("noise", "less")),
        ("哪个更甜", ("sweetness", "more")),
        ("哪个承重更大", ("suitable_weight", "more")),
    ],
)
def test_direction(book: AttributeBook, text: str, expected: tuple[str, str]) -> None:
    assert book.direction(text)[0] == expected, book.direction(text)


def test_direction_several_and_none(book: AttributeBook) -> None:
    assert book.direction("哪个更大更轻") == [("dimensions", "more"), ("weight", "less")]
    assert book.direction("哪个更长，哪个更轻") == [("length", "more"), ("weight", "less")]
    assert book.direction("多少钱") == []
    assert book.mentioned("哪个更轻")[0][0] == "weight"  # a comparative is also a mention


def test_better(book: AttributeBook) -> None:
    better = {a.id: a.better for a in book.attributes}
    assert (better["battery_life"], better["price"], better["color"]) == ("more", "less", None)
    assert book.get("no_such_attribute") is None


# --- for_spec --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("容量", "10000mAh", "battery_capacity"),  # the value's unit picks among the key's readings
        ("容量", "50ml", "volume_capacity"),
        ("能量", "38.5Wh", "battery_capacity"),
        ("能量", "2000kJ", "calories"),
        ("净含量", "500g", "net_content"),
        ("规格", "500g*2袋", "net_content"),
        ("最大输出", "65W", "power"),
        ("额定功率", "2200W", "power"),
        ("续航", "单次9小时", "battery_life"),
        ("充电时间", "约2小时", "charge_time"),
        ("面料", "棉95%", "material"),  # the key decides even though 95% is a percentage
        ("单耳重量", "4.5g", "weight"),
        ("参数", "198g", "weight"),  # an odd key: the unit decides
        ("尺寸", "10.4×6.8×1.7cm", "dimensions"),
        ("屏幕尺寸", "6.1英寸", "screen"),
        ("运行内存", "8GB", "storage"),
        ("适用年龄", "3-6岁", "age_range"),
        ("适用月龄", "6-12个月", "age_range"),
        ("保质期", "18个月", "shelf_life"),
        ("保修", "1年", "warranty"),
        ("颜色分类", "雾霾蓝", "color"),
        ("噪音", "≤45dB", "noise"),
        ("承重", "150kg", "suitable_weight"),
        ("适用面积", "20-30㎡", "area_coverage"),
        ("主要成分", "玻尿酸、泛醇", "ingredients"),
        ("质地", "清透水感凝露", "texture"),
        ("适用肤质", "干皮", "skin_type"),
        ("包装清单", "主机×1 数据线×1", "accessories"),
        ("接口", "USB-C", "ports"),
        ("蓝牙版本", "5.3", "connectivity"),
        ("产地", "浙江杭州", "origin"),
        ("发货时间", "48小时内", "shipping_time"),
    ],
)
def test_for_spec(book: AttributeBook, key: str, value: str, expected: str) -> None:
    got = book.for_spec(key, value)
    assert got and got[0] == expected, got


def test_for_spec_narrows_and_falls_back(book: AttributeBook) -> None:
    assert book.for_spec("容量", "10000mAh") == ["battery_capacity"]
    assert set(book.for_spec("容量", "大容量")) == {"battery_capacity", "volume_capacity"}
    assert book.for_spec("其他", "无") == []


# --- parse_quantities ------------------------------------------------------------------------------
def q1(text: str) -> tuple[float, str, str, float]:
    (q,) = parse_quantities(text)
    return q.value, q.unit, q.dimension, q.base


@pytest.mark.parametrize(
    "text, value, unit, dim, base",
    [
        ("22.5W", 22.5, "W", "power", 22.5),
        ("1.2m", 1.2, "m", "length", 1200),
        ("19.9", 19.9, "", "", 19.9),
        ("两万毫安", 20000, "mAh", "charge", 20000),
        ("一万", 10000, "", "", 10000),
        ("五千毫安", 5000, "mAh", "charge", 5000),
        ("1万mAh", 10000, "mAh", "charge", 10000),
        ("2万", 20000, "", "", 20000),
        ("一万五", 15000, "", "", 15000),
        ("1.5万", 15000, "", "", 15000),
        ("十五瓦", 15, "W", "power", 15),
        ("三个小时", 3, "h", "time", 10800),
        ("半小时", 0.5, "h", "time", 1800),
        ("一个半小时", 1.5, "h", "time", 5400),
        ("一米五", 1.5, "m", "length", 1500),
        ("两斤", 2, "斤", "mass", 1000),
        ("三两", 3, "两", "mass", 150),
        ("1.5L", 1.5, "L", "volume", 1500),
        ("10000mAh", 10000, "mAh", "charge", 10000),
        ("65W", 65, "W", "power", 65),
        ("5年", 5, "year", "time", 5 * 365 * 86400),
        ("38.5Wh", 38.5, "Wh", "energy", 38.5),
        ("24个月", 24, "month", "time", 24 * 30 * 86400),
        ("6.1英寸", 6.1, "inch", "length", 6.1 * 25.4),
        ("15.6寸", 15.6, "inch", "length", 15.6 * 25.4),
        ("9块9", 9.9, "元", "currency", 9.9),
        ("¥19.9", 19.9, "元", "currency", 19.9),
        ("38℃", 38, "°C", "temperature", 38),
        ("零下5度", -5, "°C", "temperature", -5),
        ("百分之五十", 50, "%", "percent", 50),
        ("4800万像素", 48_000_000, "px", "pixels", 48_000_000),
        ("120Hz", 120, "Hz", "frequency", 120),
        ("45dB", 45, "dB", "noise", 45),
        ("256GB", 256, "GB", "data", 256),
        ("300kcal", 300, "kcal", "calories", 300),
        ("20㎡", 20, "㎡", "area", 20),
        ("10 hours", 10, "h", "time", 36000),
        ("１０００ｍＡｈ", 1000, "mAh", "charge", 1000),  # full-width
    ],
)
def test_parse_one(text: str, value: float, unit: str, dim: str, base: float) -> None:
    got = q1(text)
    assert got[1:3] == (unit, dim)
    assert got[0] == pytest.approx(value) and got[3] == pytest.approx(base)


def test_parse_ranges_and_products() -> None:
    qs = parse_quantities("3-6个月")
    assert [(q.value, q.unit) for q in qs] == [(3, "month"), (6, "month")]
    assert [(q.value, q.unit) for q in parse_quantities("两三天")] == [(2, "day"), (3, "day")]
    assert [(q.value, q.unit) for q in parse_quantities("3到5天发货")] == [(3, "day"), (5, "day")]
    assert [(q.value, q.unit) for q in parse_quantities("100-240V")] == [(100, "V"), (240, "V")]
    qs = parse_quantities("尺寸：10.4×6.8×1.7cm")
    assert [(q.value, q.unit, q.dimension) for q in qs] == [
        (10.4, "cm", "length"),
        (6.8, "cm", "length"),
        (1.7, "cm", "length"),
    ]
    assert [q.base for q in qs] == pytest.approx([104, 68, 17])
    # only a length is shared across ×: "2×500g" is two bags of 500 g
    assert [(q.value, q.unit) for q in parse_quantities("2×500g")] == [(2, ""), (500, "g")]
    assert [(q.value, q.unit) for q in parse_quantities("500g*2袋")] == [(500, "g"), (2, "袋")]


def test_parse_counts_keep_their_classifier() -> None:
    assert [(q.value, q.unit, q.dimension) for q in parse_quantities("3个口")] == [(3, "口", "count")]
    assert [(q.value, q.unit, q.dimension) for q in parse_quantities("5片")] == [(5, "片", "count")]
    assert [(q.value, q.unit) for q in parse_quantities("99元3件")] == [(99, "元"), (3, "件")]


def test_parse_spans_and_mixed_text() -> None:
    text = "这款10000mAh的，22.5W快充，重198g"
    qs = parse_quantities(text)
    assert [(q.text, q.unit) for q in qs] == [("10000mAh", "mAh"), ("22.5W", "W"), ("198g", "g")]
    for q in qs:
        assert text[q.span[0] : q.span[1]] == q.text
    text = "温度40℃左右"  # ℃ becomes two characters when normalised; spans stay in the original
    (q,) = parse_quantities(text)
    assert q.text == "40℃" and text[q.span[0] : q.span[1]] == "40℃"
    (q,) = parse_quantities("5000的充电宝")
    assert (q.value, q.unit, q.dimension, q.text) == (5000, "", "", "5000")


def test_parse_leaves_codes_and_words_alone() -> None:
    assert parse_quantities("K84") == []
    assert parse_quantities("SK-001") == []
    assert parse_quantities("iPhone 15") == []
    assert parse_quantities("4K屏幕") == []
    assert parse_quantities("看一下") == []  # a lone 一 is not a number
    assert parse_quantities("十分好用") == []  # 十分 = "very", not 10 minutes
    assert [q.value for q in parse_quantities("K84能充iPhone 15吗，20W")] == [20]
    assert [(q.value, q.unit) for q in parse_quantities("battery 5000mAh")] == [(5000, "mAh")]


def test_parse_with_explicit_book(book: AttributeBook) -> None:
    assert parse_quantities("65W", book)[0].unit == "W"
