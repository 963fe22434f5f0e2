"""CSV/XLSX cells that are spreadsheet formulas are refused per row (issue 14: "=…" cells were published
and repeated to viewers); ordinary text starting with + - @ is not."""

from __future__ import annotations

import pytest

from knowledge.importers import KBImportError, parse_files


def test_formula_cells_are_refused_with_their_row(tmp_path):
    p = tmp_path / "shop.csv"
    p.write_text(
        "sku,name,price,selling_points\n"
        "A-1,好商品,10,清爽\n"
        'A-2,"=HYPERLINK(""http://evil.example"",""点我领券"")",10,x\n'
        "A-3,正常,10,@SUM(1+1)\n"
        "A-4,正常,10,\t=1+1\n",
        encoding="utf-8",
    )
    with pytest.raises(KBImportError) as e:
        parse_files([p])
    rows = sorted((i.row, i.field) for i in e.value.issues if "formula" in i.message)
    assert rows == [(3, "name"), (4, "selling_points"), (5, "selling_points")]


def test_text_that_only_looks_like_a_sign_is_fine(tmp_path):
    p = tmp_path / "ok.csv"
    p.write_text(
        "sku,name,price,selling_points\nB-1,+86 客服热线,10,-面料柔软|@官方旗舰店|买二送一(限量)\n",
        encoding="utf-8",
    )
    cat = parse_files([p])
    assert cat.products[0].name == "+86 客服热线"
