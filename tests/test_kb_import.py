"""Each import format, and bad input rejected with file + row while the active version stays."""

from __future__ import annotations

import csv

import openpyxl
import pytest

from knowledge.importers import KBImportError, parse_files
from tests.conftest import mini_products, write_json


def test_product_json_becomes_atomic_facts_with_sku_and_name(tmp_path, kb):
    info = kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products(extra={"origin": "上海"}))])
    assert info.version == "v0001" and info.products == 3
    snap = kb.snapshot("m1")
    facts = snap.index.facts
    serum = [f for f in facts if f.sku == "SK-001"]
    kinds = {f.kind for f in serum}
    assert {"summary", "price", "stock", "spec", "selling_point", "faq", "suitable", "not_suitable"} <= kinds
    assert all(f.name == "暖光 玻尿酸保湿精华液 30ml" and "SK-001" in f.text for f in serum)
    assert snap.index.fact("SK-001:spec:容量").value == "30ml"
    # one fact per spec / FAQ / selling point
    assert len([f for f in serum if f.kind == "spec"]) == 2
    # unknown fields are kept
    assert snap.product("SK-001").model_extra == {"origin": "上海"}
    assert snap.catalog.merchant.name == "测试店"


def test_csv_product_sheet_with_chinese_headers(tmp_path, kb):
    p = tmp_path / "sheet.csv"
    with open(p, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "商品编码",
                "商品名称",
                "类目",
                "直播价",
                "原价",
                "库存",
                "规格:面料",
                "spec:尺码建议",
                "selling_points",
                "faq",
                "suitable_for",
                "颜色偏好",
            ]
        )
        w.writerow(
            [
                "AP-101",
                "高腰阔腿裤",
                "女装",
                "139",
                "199",
                "80",
                "冰丝",
                "160cm建议M码",
                "垂感好|不易皱",
                "会起球吗::冰丝面料不易起球|能机洗吗::建议手洗",
                "梨形身材|小个子",
                "黑色",
            ]
        )
    kb.import_files("m1", [p])
    prod = kb.snapshot("m1").product("AP-101")
    assert prod.price == 139 and prod.list_price == 199 and prod.stock == 80
    assert prod.specs == {"面料": "冰丝", "尺码建议": "160cm建议M码"}
    assert prod.selling_points == ["垂感好", "不易皱"] and prod.faq[1].q == "能机洗吗"
    assert prod.model_extra == {"颜色偏好": "黑色"}


def test_xlsx_product_sheet(tmp_path, kb):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["sku", "name", "category", "price", "list_price", "stock", "specs"])
    ws.append(["SN-201", "海盐芝士饼干 200g", "零食", 29.9, 39.9, 500, "净含量:200g|保质期:180天"])
    ws.append([None, None, None, None, None, None, None])  # blank rows are skipped
    wb.save(tmp_path / "snacks.xlsx")
    kb.import_files("m1", [tmp_path / "snacks.xlsx"])
    prod = kb.snapshot("m1").product("SN-201")
    assert prod.price == 29.9 and prod.specs["保质期"] == "180天"


def test_markdown_documents_are_chunked_with_headings(tmp_path, kb):
    body = (
        "# 退换货政策\n\n## 七天无理由\n\n"
        + "签收后7天内可申请无理由退货，商品需保持完好。" * 12
        + "\n\n## 食品例外\n\n食品类商品拆封后不支持无理由退货。\n"
    )
    (tmp_path / "returns.md").write_text(body, encoding="utf-8")
    (tmp_path / "warranty.txt").write_text("质保说明\n服装类商品有质量问题30天内可换新。", encoding="utf-8")
    kb.import_files("m1", [tmp_path / "returns.md", tmp_path / "warranty.txt"])
    facts = [f for f in kb.snapshot("m1").index.facts if f.kind == "doc"]
    returns = [f for f in facts if f.id.startswith("doc:returns:")]
    assert len(returns) >= 3  # the long section was split
    assert all(len(f.value) <= 220 for f in returns)
    assert any(f.key.endswith("食品例外") and "拆封" in f.text for f in returns)
    assert any(f.id.startswith("doc:warranty:") for f in facts)
    _, hits = kb.search("m1", "零食拆开了还能退吗", k=3)
    assert hits[0].fact_id.startswith("doc:returns:") and "拆封" in hits[0].text


def test_qa_pairs_csv_with_optional_sku(tmp_path, kb):
    kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products())])
    p = tmp_path / "qa.csv"
    p.write_text(
        "question,answer,sku\n发什么快递,默认中通，可备注顺丰到付,\n精华能和面霜一起用吗,可以，先精华后面霜,SK-001\n",
        encoding="utf-8",
    )
    info = kb.import_files("m1", [p])
    assert info.version == "v0002" and info.products == 3  # merged into the active catalog
    qa = [f for f in kb.snapshot("m1").index.facts if f.kind == "qa"]
    assert {f.sku for f in qa} == {None, "SK-001"}
    _, hits = kb.search("m1", "你们发啥快递", k=1)
    assert hits[0].fact_id == "qa:qa:0"


@pytest.mark.parametrize(
    "name, content, expect",
    [
        ("broken.json", '{"products": [ {"sku": "A"', "invalid JSON at line 1"),
        ("nosku.json", '{"products": [{"name": "x", "price": 1}]}', "row 1 [sku]: missing sku"),
        ("price.json", '{"products": [{"sku": "A", "name": "x", "price": "十九块"}]}', "row 1 [price]: not a number"),
        (
            "dup.json",
            '{"products": [{"sku": "A", "name": "x", "price": 1}, {"sku": "A", "name": "y", "price": 2}]}',
            "row 2 [sku]: duplicate sku 'A'",
        ),
        ("sheet.csv", "sku,name,price\nA,x,1\n,y,2\nC,z,abc\n", "row 3 [sku]: missing sku"),
        ("garbage.csv", b"\x00\x01\x02PK\x03\x04", "binary data"),
        ("broken.xlsx", b"PK\x03\x04 not really a zip", "not a readable .xlsx"),
        ("image.png", b"\x89PNG\r\n", "unsupported file type"),
        ("empty.md", "", "empty document"),
        ("noheader.csv", "name,price\nx,1\n", "no 'sku' column"),
    ],
)
def test_bad_input_is_rejected_naming_file_and_row_and_active_version_is_untouched(tmp_path, kb, name, content, expect):
    good = kb.import_files("m1", [write_json(tmp_path / "p.json", mini_products())])
    _, before = kb.search("m1", "小蓝瓶多少钱", k=3)
    bad = tmp_path / name
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(KBImportError) as exc:
        # A good file alongside the bad one is not imported either: all or nothing.
        kb.import_files("m1", [write_json(tmp_path / "p2.json", mini_products(price=1)), bad])
    assert expect in str(exc.value) and name in str(exc.value)
    assert kb.active_version("m1") == good.version
    assert [v.version for v in kb.versions("m1")] == [good.version]
    _, after = kb.search("m1", "小蓝瓶多少钱", k=3)
    assert [h.text for h in after] == [h.text for h in before]


def test_duplicate_sku_across_files_and_csv_non_numeric_price_report_every_row(tmp_path):
    a = write_json(tmp_path / "a.json", {"products": [{"sku": "X1", "name": "a", "price": 1}]})
    b = tmp_path / "b.csv"
    b.write_text("sku,name,price,stock\nX1,b,2,1\nX2,c,abc,1\nX3,d,3,-4\n", encoding="utf-8")
    with pytest.raises(KBImportError) as exc:
        parse_files([a, b])
    msgs = [str(i) for i in exc.value.issues]
    assert any("b.csv row 2 [sku]: duplicate sku 'X1'" in m for m in msgs)
    assert any("b.csv row 3 [price]: not a number" in m for m in msgs)
    assert any("b.csv row 4 [stock]" in m for m in msgs)


def test_list_fields_given_as_one_string_import_like_lists(tmp_path, kb):
    """Merchants write `suitable_for` both ways: a list, or one string with 、，,;；| between items."""
    rows = [
        {
            "sku": "P-1",
            "name": "冻干双拼狗粮 2kg",
            "price": 129,
            "suitable_for": "大型犬、中型犬，成犬",
            "not_suitable_for": "幼犬;肾病犬",
            "aliases": "双拼|冻干粮",
            "selling_points": "鲜肉含量 70%，冻干颗粒；无谷配方",
        },
        {
            "sku": "P-2",
            "name": "猫砂 6L",
            "price": 39,
            "suitable_for": ["长毛猫", " 短毛猫 "],
            "not_suitable_for": "",
            "selling_points": "结团快",
        },
        {"sku": "P-3", "name": "牵引绳", "price": 59, "suitable_for": None},
    ]
    info = kb.import_files("m1", [write_json(tmp_path / "p.json", {"merchant": {"name": "宠物店"}, "products": rows})])
    assert info.products == 3
    snap = kb.snapshot("m1")
    p1, p2, p3 = snap.product("P-1"), snap.product("P-2"), snap.product("P-3")
    assert p1.suitable_for == ["大型犬", "中型犬", "成犬"]
    assert p1.not_suitable_for == ["幼犬", "肾病犬"]
    assert p1.aliases == ["双拼", "冻干粮"]
    # selling points are sentences: commas inside one are kept, ；separates them
    assert p1.selling_points == ["鲜肉含量 70%，冻干颗粒", "无谷配方"]
    assert (p2.suitable_for, p2.not_suitable_for, p2.selling_points) == (["长毛猫", "短毛猫"], [], ["结团快"])
    assert p3.suitable_for == []
    suitable = {f.text for f in snap.index.facts if f.sku == "P-1" and f.kind == "suitable"}
    assert any("中型犬" in t for t in suitable)


def test_list_field_of_the_wrong_type_is_still_a_row_error(tmp_path, kb):
    bad = write_json(tmp_path / "p.json", {"products": [{"sku": "A", "name": "x", "price": 1, "suitable_for": 5}]})
    with pytest.raises(KBImportError) as exc:
        kb.import_files("m1", [bad])
    assert "row 1 [suitable_for]" in str(exc.value)
