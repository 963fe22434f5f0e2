"""Needs a viewer states, on a fishing catalog none of the code or the eval catalogs use: a wish that
ends in a kind of product is a recommendation within that kind, what they say they do not want counts
against a product, a sentence's last kind is the one wanted, a clause that advises against a product is
no reason to pick it, and a yes/no question about one product is never turned into a recommendation."""

from __future__ import annotations

import asyncio

import pytest

from agent.messages import AgentAnswer, ViewerMessage
from agent.understand import asks_yes_no, negated
from liveroom.container import Container
from tests.support.catalogs import catalog_container

FISHING = [
    {
        "sku": "ROD-36",
        "name": "渔乐 碳素溪流竿 3.6米",
        "category": "鱼竿",
        "price": 159,
        "stock": 20,
        "suitable_for": "溪流钓、小鱼、新手",
        "not_suitable_for": "大物（最大拉力2kg，可选5.4米台钓竿）",
        "selling_points": ["只有98g，钓一天手不酸", "收起来45cm，塞进背包"],
        "specs": {"长度": "3.6m", "重量": "98g", "收缩长度": "45cm", "最大拉力": "2kg"},
    },
    {
        "sku": "ROD-54",
        "name": "渔乐 碳素台钓竿 5.4米",
        "category": "鱼竿",
        "price": 299,
        "stock": 8,
        "suitable_for": ["水库", "大物", "黑坑"],
        "not_suitable_for": "溪流（太长）",
        "selling_points": ["腰力足，8kg大鱼也能遛"],
        "specs": {"长度": "5.4m", "重量": "186g", "收缩长度": "1.2m", "最大拉力": "8kg"},
    },
    {
        "sku": "ROD-TEL",
        "name": "渔乐 玻璃钢海竿 2.7米",
        "category": "鱼竿",
        "price": 89,
        "stock": 30,
        "suitable_for": "海边抛投、码头",
        "selling_points": ["玻璃钢不怕摔", "配纺车轮"],
        "specs": {"长度": "2.7m", "重量": "320g", "收缩长度": "65cm"},
        "faq": [{"q": "能在水库用吗", "a": "可以抛投，但水库夜钓风大浪小不建议，建议选台钓竿。"}],
    },
    {
        "sku": "BOX-E",
        "name": "渔乐 电动打窝钓箱",
        "category": "钓箱",
        "price": 399,
        "stock": 5,
        "suitable_for": "长时间野钓",
        "selling_points": ["电动打窝，一键出饵", "箱体可坐，承重150kg"],
        "specs": {"容量": "28L", "重量": "4.6kg", "供电": "内置锂电池，USB-C充电"},
    },
    {
        "sku": "BOX-M",
        "name": "渔乐 轻便钓箱",
        "category": "钓箱",
        "price": 159,
        "stock": 12,
        "suitable_for": "短途野钓、没地方充电的地方",
        "selling_points": ["不用充电，纯机械卡扣", "只有2.1kg"],
        "specs": {"容量": "18L", "重量": "2.1kg"},
    },
]


@pytest.fixture(scope="module")
def fishing(tmp_path_factory: pytest.TempPathFactory) -> Container:
    return catalog_container(tmp_path_factory.mktemp("fishing"), "fish", FISHING)


def ask(c: Container, text: str) -> AgentAnswer:
    msg = ViewerMessage(merchant="fish", room_id="r1", viewer_id=f"v-{text}", text=text, channel="sim")
    return asyncio.run(c.agent.answer(msg))


def test_the_grammar_helpers() -> None:
    assert negated("想要不用充电的钓箱") == {"充电": "不用充电"}
    assert asks_yes_no("海竿适合左手吗") and asks_yes_no("能不能放水里") and asks_yes_no("can it be washed")
    assert not asks_yes_no("溪流钓用哪根竿") and not asks_yes_no("想要轻一点的鱼竿")


def test_a_wish_with_what_the_viewer_does_not_want(fishing: Container) -> None:
    a = ask(fishing, "想要不用充电的钓箱")
    assert "轻便钓箱" in a.answer and not a.refused


def test_a_superlative_of_the_kind_named_last(fishing: Container) -> None:
    # 钓箱 is said first, 鱼竿 last: the rod is wanted, the lightest one
    a = ask(fishing, "钓箱有了 鱼竿要最轻的")
    assert "溪流竿" in a.answer and "98g" in a.answer


def test_a_clause_advising_against_is_no_reason(fishing: Container) -> None:
    # the sea rod's FAQ names 水库 but advises against it; the rod that suits 水库 wins
    a = ask(fishing, "去水库钓大鱼用哪根竿")
    assert "台钓竿" in a.answer and not a.refused


def test_a_yes_no_question_about_one_product_is_not_a_recommendation(fishing: Container) -> None:
    a = ask(fishing, "海竿能当登山杖用吗")
    assert a.refused and "推荐" not in a.answer


def test_a_products_own_faq_asked_word_for_word_names_the_product(fishing: Container) -> None:
    a = ask(fishing, "能在水库用吗")  # no product named, but only the sea rod's FAQ asks this
    assert "海竿" in a.answer and "不建议" in a.answer
    b = ask(fishing, "海竿能在水库用吗")
    assert "不建议" in b.answer and not b.refused


def test_an_alias_said_word_for_word_outranks_a_longer_name_that_contains_its_words(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    rows = [
        {"sku": "F-1", "name": "禾苗 奶粉 1段 800g", "aliases": ["1段奶粉"], "category": "奶粉", "price": 328},
        {"sku": "F-G", "name": "禾苗 羊奶粉 1段 400g", "aliases": ["1段羊奶粉"], "category": "奶粉", "price": 228},
    ]
    c = catalog_container(tmp_path_factory.mktemp("alias"), "milk", rows)
    msg = ViewerMessage(merchant="milk", room_id="r1", viewer_id="v1", text="1段奶粉多少钱", channel="sim")
    assert "328" in asyncio.run(c.agent.answer(msg)).answer


def test_whether_it_has_a_feature_needs_a_fact_naming_it(fishing: Container) -> None:
    a = ask(fishing, "电动打窝钓箱能遥控吗")
    assert a.refused and "遥控" not in a.answer.split("我能告诉你的是")[-1]
    b = ask(fishing, "轻便钓箱加了电池吗")
    assert b.refused and "库存" not in b.answer
