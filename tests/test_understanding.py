"""Understanding from the catalog: a kitchen catalog none of the code was written for.

Products, categories and phrasings here appear nowhere in the code or the demo; what resolves them is
the catalog lexicon (knowledge/lexicon.py), the attribute book and the composers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.messages import ViewerMessage
from liveroom.container import Container
from tests.support.catalogs import catalog_container

KITCHEN = [
    {
        "sku": "KT-15",
        "name": "澄木 电热水壶 1.5L",
        "category": "电热水壶",
        "price": 99,
        "stock": 40,
        "specs": {"容量": "1.5L", "功率": "1500W", "重量": "900g", "材质": "304不锈钢", "保修": "1年"},
        "selling_points": ["5分钟烧开一壶水"],
        "faq": [{"q": "能烧牛奶吗", "a": "不建议，牛奶容易糊底，只建议烧水。"}],
        "suitable_for": "宿舍、办公室",
        "variants": [{"name": "奶油白", "price": 99}, {"name": "雾霾蓝", "price": 109}],
    },
    {
        "sku": "KT-17P",
        "name": "澄木 电热水壶 Pro 1.7L 恒温",
        "category": "电热水壶",
        "price": 179,
        "stock": 0,
        "specs": {"容量": "1.7L", "功率": "1800W", "重量": "1.2kg", "材质": "316不锈钢", "保修": "2年"},
        "selling_points": ["6档恒温，泡茶冲奶粉都方便"],
        "suitable_for": ["冲奶粉的新手爸妈", "泡茶"],
        "not_suitable_for": ["经常出差带着走的人"],
    },
    {
        "sku": "PAN-28",
        "name": "澄木 不粘炒锅 28cm",
        "category": "炒锅",
        "price": 159,
        "stock": 25,
        "specs": {"直径": "28cm", "重量": "1.6kg", "涂层": "麦饭石不粘涂层", "适用炉灶": "燃气灶、电磁炉"},
        "faq": [{"q": "能用铁铲吗", "a": "不建议，用木铲或硅胶铲更护涂层。"}],
    },
    {
        "sku": "PAN-32",
        "name": "澄木 不粘炒锅 32cm",
        "category": "炒锅",
        "price": 189,
        "stock": 12,
        "specs": {"直径": "32cm", "重量": "2.1kg", "涂层": "麦饭石不粘涂层", "适用炉灶": "燃气灶、电磁炉"},
    },
]


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory: pytest.TempPathFactory) -> Container:
    shipping = (
        "# 发货与快递\n\n- 下午4点前下单当天发货，默认发中通快递，满59元包邮。\n- 新疆、西藏不包邮，港澳台暂不发货。\n"
    )
    return catalog_container(tmp_path_factory.mktemp("kitchen"), "kt", KITCHEN, {"shipping.md": shipping})


def ask(c: Container, text: str, viewer: str = "v1") -> str:
    msg = ViewerMessage(merchant="kt", room_id="r1", viewer_id=viewer, text=text, channel="sim")
    return asyncio.run(c.agent.answer(msg)).answer


@pytest.mark.parametrize(
    ("question", "want", "not_want"),
    [
        ("1.7升的水壶多少钱", "179", "99"),
        ("一点五升那个壶多少", "99", "179"),
        ("雾霾蓝的水壶多少钱", "109", "179"),
        ("32的锅多重", "2.1kg", "1.6kg"),
        ("pro水壶功率多大", "1800W", "1500W"),
        ("28cm炒锅能用铁铲吗", "木铲", "32cm"),
    ],
)
def test_resolves_products_by_quantity_code_and_variant(
    kitchen: Container, question: str, want: str, not_want: str
) -> None:
    a = ask(kitchen, question)
    assert want in a and not_want not in a, a


def test_comparison_gives_both_values_and_the_winner(kitchen: Container) -> None:
    a = ask(kitchen, "28和32的锅哪个轻")
    verdict = [s for s in a.split("。") if s][-1]
    assert "1.6kg" in a and "2.1kg" in a and "28cm" in verdict and "32cm" not in verdict, a


def test_unlisted_attribute_is_answered_honestly(kitchen: Container) -> None:
    a = asyncio.run(
        kitchen.agent.answer(
            ViewerMessage(merchant="kt", room_id="r1", viewer_id="v2", text="水壶是哪里产的", channel="sim")
        )
    )
    assert a.refused and "产地" in a.answer or a.refused, a.answer


def test_store_policy_for_colloquial_question(kitchen: Container) -> None:
    assert "中通" in ask(kitchen, "发啥快递呀")
    assert "港澳台" in ask(kitchen, "能寄到香港吗") or "不发货" in ask(kitchen, "能寄到香港吗")


def test_follow_up_resolves_sibling_and_english_stays_english(kitchen: Container) -> None:
    assert "99" in ask(kitchen, "1.5L的水壶多少钱", viewer="v3")
    assert "179" in ask(kitchen, "那1.7L的呢", viewer="v3")
    en = ask(kitchen, "how heavy is the 28cm wok", viewer="v4")
    assert "1.6kg" in en and sum(c.isascii() for c in en) > 0.6 * len(en), en


def test_no_catalog_names_in_code() -> None:
    """Nothing under agent/ or knowledge/ names a product, series or category of the demo."""
    root = Path(__file__).resolve().parent.parent
    demo = json.loads((root / "knowledge" / "demo" / "products.json").read_text(encoding="utf-8"))
    items = demo if isinstance(demo, list) else demo["products"]
    names = {x for p in items for x in [p.get("category"), p.get("series")] if x and len(x) >= 2}
    code = "".join(f.read_text(encoding="utf-8") for d in ("agent", "knowledge") for f in (root / d).glob("*.py"))
    assert not [n for n in names if n in code]


def test_pinyin_initials_and_homophone_typos(kitchen: Container) -> None:
    assert "中通" in ask(kitchen, "fsmkd", viewer="p1")  # 发什么快递, typed as initials
    assert "59" in ask(kitchen, "包油吗", viewer="p2")  # 包邮吗 with a homophone typo


def test_superlative_over_a_kind_of_product_recommends_by_the_attribute(kitchen: Container) -> None:
    a = ask(kitchen, "哪个炒锅最轻", viewer="s1")
    assert "28cm" in a and "32cm" not in a, a


def test_feature_the_catalog_does_not_list_is_refused(kitchen: Container) -> None:
    a = asyncio.run(
        kitchen.agent.answer(
            ViewerMessage(merchant="kt", room_id="r1", viewer_id="f1", text="1.5L水壶有没有保温功能", channel="sim")
        )
    )
    # said honestly, with what is known instead — never a yes
    assert a.refused and a.answer.startswith("资料里没有写") and "可以保温" not in a.answer, a.answer
