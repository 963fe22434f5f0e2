"""What the viewer spells and how a store document is laid out, on a garden catalog none of the code or
the eval catalogs use: a spec key written whole or by its head is the spec asked, "多少" next to a spec
is not the price unless money is said, a bare adjective after "哪个" compares, a rate is no weight, a
number asked in the spec's own unit finds it, and a policy sentence is read with its section heading."""

from __future__ import annotations

import asyncio

import pytest

from agent.messages import ViewerMessage
from knowledge.attributes import load_attributes
from liveroom.container import Container
from tests.support.catalogs import catalog_container

GARDEN = [
    {
        "sku": "HOSE-15",
        "name": "青禾 伸缩水管 15米",
        "category": "水管",
        "price": 89,
        "stock": 20,
        "specs": {"长度": "15m", "出水流量": "12L/min", "重量": "0.9kg", "喷头档位": "7档", "接口": "4分通用"},
    },
    {
        "sku": "HOSE-30",
        "name": "青禾 伸缩水管 30米",
        "category": "水管",
        "price": 129,
        "stock": 12,
        "specs": {"长度": "30m", "出水流量": "12L/min", "重量": "1.6kg", "喷头档位": "7档", "接口": "4分通用"},
    },
    {
        "sku": "SHEAR-1",
        "name": "青禾 修枝剪",
        "category": "园艺剪",
        "price": 59,
        "stock": 30,
        "specs": {"刀片": "SK5钢", "剪切直径": "最大22mm", "重量": "230g", "锁扣": "单手锁"},
        "faq": [{"q": "能剪多粗的树枝", "a": "最粗能剪22mm的树枝，再粗建议用高枝锯。"}],
    },
    {
        "sku": "SPRAY-2",
        "name": "青禾 气压喷壶 2L",
        "category": "喷壶",
        "price": 39,
        "stock": 0,
        "specs": {"容量": "2L", "喷雾模式": "雾状/柱状两种", "定时": "每天最多3次自动喷洒"},
    },
]

SHIPPING = """# 配送说明

## 发货时效

- 付款后48小时内发货；每天16:00前付款的当天发出。

## 到货时间

- 江浙沪一般1-2天到，其他地区3-5天到。

## 运费

- 单笔实付满59元包邮，不满收运费6元。
"""


@pytest.fixture(scope="module")
def garden(tmp_path_factory: pytest.TempPathFactory) -> Container:
    return catalog_container(tmp_path_factory.mktemp("garden"), "gd", GARDEN, {"shipping.md": SHIPPING})


def ask(c: Container, text: str, viewer: str = "") -> str:
    msg = ViewerMessage(merchant="gd", room_id="r1", viewer_id=viewer or f"v-{text}", text=text, channel="sim")
    return asyncio.run(c.agent.answer(msg)).answer


def test_a_spec_key_spelled_by_its_head_is_the_spec_asked(garden: Container) -> None:
    assert "12L/min" in ask(garden, "15米水管出水多少")  # 出水 → 出水流量, not the price
    assert "SK5" in ask(garden, "修枝剪刀片啥做的")


def test_how_much_next_to_a_spec_is_that_spec_unless_money_is_said(garden: Container) -> None:
    assert "0.9kg" in ask(garden, "how much does the 15m hose weigh")
    assert "89" in ask(garden, "15米水管多少钱")


def test_a_bare_adjective_after_which_compares_on_its_attribute(garden: Container) -> None:
    out = ask(garden, "两款水管哪个轻")
    assert "0.9kg" in out and "1.6kg" in out


def test_a_rate_is_not_a_weight() -> None:
    book = load_attributes()
    assert "weight" not in book.for_spec("出水流量", "12L/min")
    assert "weight" not in book.for_spec("透湿指数", "5000g/m²/24h")


def test_a_number_asked_in_the_specs_own_unit_finds_it(garden: Container) -> None:
    assert load_attributes().asked_units("一天能喷几次") == {"次"} or "3次" in ask(garden, "喷壶一天能喷几次")
    assert "3次" in ask(garden, "喷壶一天能喷几次")


def test_a_policy_sentence_is_read_with_its_section_heading(garden: Container) -> None:
    assert "3-5天" in ask(garden, "几天能到啊")
    assert "59" in ask(garden, "包邮吗")
