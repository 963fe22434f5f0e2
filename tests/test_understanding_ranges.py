"""Understanding that comes from the catalog's own numbers and lists, and English over Chinese names.

A baby-gear catalog none of the code or the eval catalogs use: a viewer's own numbers ("宝宝8个月",
"孩子15kg") meet the ranges products state, a size word names the biggest/smallest sibling, the catalog's
"A、B等C" lists say what things are, the kind of quantity asked picks the fact, and English words name
products through the dictionary (CC-CEDICT)."""

from __future__ import annotations

import asyncio

import pytest

from agent.messages import ViewerMessage
from knowledge.attributes import value_ranges
from liveroom.container import Container
from tests.support.catalogs import catalog_container

BABY = [
    {
        "sku": "SEAT-0",
        "name": "小象 婴儿安全座椅 0-4岁",
        "category": "安全座椅",
        "price": 899,
        "stock": 10,
        "specs": {"适用年龄": "0-4岁", "适用体重": "0-18kg", "重量": "9.5kg", "接口": "ISOFIX"},
        "suitable_for": "新生儿、小月龄宝宝等低龄宝宝",
    },
    {
        "sku": "SEAT-9",
        "name": "小象 儿童安全座椅 9-12岁",
        "category": "安全座椅",
        "price": 699,
        "stock": 8,
        "specs": {"适用年龄": "9-12岁", "适用体重": "25-36kg", "重量": "6.8kg", "接口": "ISOFIX"},
        "suitable_for": ["大童"],
    },
    {
        "sku": "BOT-160",
        "name": "小象 玻璃奶瓶 160ml",
        "category": "奶瓶",
        "price": 69,
        "stock": 50,
        "specs": {"容量": "160ml", "材质": "高硼硅玻璃", "奶嘴": "S号 0-3个月"},
    },
    {
        "sku": "BOT-240",
        "name": "小象 玻璃奶瓶 240ml",
        "category": "奶瓶",
        "price": 79,
        "stock": 40,
        "specs": {"容量": "240ml", "材质": "高硼硅玻璃", "奶嘴": "M号 3-6个月"},
    },
    {
        "sku": "STR-1",
        "name": "小象 轻便婴儿推车",
        "category": "推车",
        "price": 1299,
        "stock": 5,
        "specs": {"重量": "5.8kg", "承重": "最高22kg", "折叠尺寸": "45×30×55cm", "刹车": "脚刹"},
        "faq": [{"q": "能上飞机吗", "a": "折叠后可以登机。"}],
    },
]


@pytest.fixture(scope="module")
def baby(tmp_path_factory: pytest.TempPathFactory) -> Container:
    return catalog_container(tmp_path_factory.mktemp("baby"), "bb", BABY)


def ask(c: Container, text: str, viewer: str = "v1") -> str:
    msg = ViewerMessage(merchant="bb", room_id="r1", viewer_id=viewer, text=text, channel="sim")
    return asyncio.run(c.agent.answer(msg)).answer


def test_value_ranges_read_what_merchants_write() -> None:
    assert value_ranges("15-30kg") == [(15000.0, 30000.0, "mass")]
    assert value_ranges("7岁以上")[0][:2] == (7.0, float("inf"))
    assert value_ranges("10kg以内") == [(0.0, 10000.0, "mass")]
    assert value_ranges("最高22kg") == [(0.0, 22000.0, "mass")]


def test_viewer_numbers_meet_the_ranges_products_state(baby: Container) -> None:
    assert "9-12岁" in ask(baby, "孩子10岁了选哪个安全座椅")
    assert "0-4岁" in ask(baby, "宝宝2岁用哪个安全座椅")


def test_size_word_names_the_sibling(baby: Container) -> None:
    assert "69" in ask(baby, "160ml的奶瓶多少钱", viewer="s1")
    assert "79" in ask(baby, "大的呢", viewer="s1")


def test_kind_of_quantity_asked_picks_the_fact(baby: Container) -> None:
    assert "22kg" in ask(baby, "推车能坐多重的孩子")  # right after a car-seat question: the one 推车 is named
    assert "5.8kg" in ask(baby, "推车重不重")


def test_english_names_a_chinese_product(baby: Container) -> None:
    assert "79" in ask(baby, "how much is the glass feeding bottle 240ml?", viewer="e1")
    assert "899" in ask(baby, "how much is the baby seat?", viewer="e2")
