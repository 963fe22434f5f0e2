"""A .xlsx upload is a zip: archive caps (inflated size, ratio, member count) and a time- and
memory-limited trial parse in a child process (issue 14: a 1 MB sheet inflating to 1 GiB hung an upload
thread for minutes). Unit-level on ``console.kb.check_xlsx`` and through the console upload route."""

from __future__ import annotations

import io
import time
import zipfile

import openpyxl
import pytest
from fastapi.testclient import TestClient

from console import kb as kbmod
from console.service import get_console
from tests.support.console import console_app, login, make_container


def good_xlsx(path, rows: int = 3):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["sku", "name", "price", "stock"])
    for i in range(rows):
        ws.append([f"XL-{i:03d}", f"测试商品{i}", 10 + i, 5])
    wb.save(path)
    return path


def bomb_xlsx(path, inflated: int = 200 * 1024 * 1024):
    """A workbook whose sheet XML inflates to ``inflated`` bytes from a few hundred KB."""
    good = good_xlsx(path.with_name("base.xlsx"))
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                zi = zipfile.ZipInfo(info.filename)
                zi.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(zi, "w", force_zip64=True) as out:
                    out.write(data[: data.index(b"<sheetData>") + len(b"<sheetData>")])
                    chunk = b"<row><c><v>1</v></c></row>" * 40_000
                    for _ in range(inflated // len(chunk)):
                        out.write(chunk)
                    out.write(b"</sheetData></worksheet>")
            else:
                dst.writestr(info, data)
    return path


def test_archive_caps_refuse_a_bomb_from_its_directory_in_milliseconds(tmp_path):
    bomb = bomb_xlsx(tmp_path / "bomb.xlsx")
    assert bomb.stat().st_size < 2 * 1024 * 1024
    t0 = time.perf_counter()
    with pytest.raises(kbmod.UploadRejected, match="上限"):
        kbmod.check_xlsx(bomb)
    assert time.perf_counter() - t0 < 1.0


def test_ratio_cap_and_a_good_sheet(tmp_path, monkeypatch):
    small_bomb = bomb_xlsx(tmp_path / "ratio.xlsx", inflated=20 * 1024 * 1024)  # under the size cap
    with pytest.raises(kbmod.UploadRejected, match="压缩比"):
        kbmod.check_xlsx(small_bomb)
    kbmod.check_xlsx(good_xlsx(tmp_path / "ok.xlsx"))  # passes
    monkeypatch.setattr(kbmod, "MAX_SHEET_ROWS", 10)
    with pytest.raises(kbmod.UploadRejected, match="行"):
        kbmod.check_xlsx(good_xlsx(tmp_path / "long.xlsx", rows=50))


def test_trial_parse_is_time_limited(tmp_path, monkeypatch):
    monkeypatch.setattr(kbmod, "XLSX_PARSE_TIMEOUT_S", 0.05)  # less than the child needs to start
    t0 = time.perf_counter()
    with pytest.raises(kbmod.UploadRejected, match="超时"):
        kbmod.check_xlsx(good_xlsx(tmp_path / "slow.xlsx"))
    assert time.perf_counter() - t0 < 2.0


def test_console_upload_refuses_the_bomb_and_takes_a_good_sheet(tmp_path, demo_root, use_embedder):
    c = make_container(tmp_path / "data", demo_root, use_embedder)
    with TestClient(console_app(c)) as client:
        get_console(client.app).accounts.create_user("demo", "ops1", "correct-horse-1", "operator")
        csrf = login(client, "ops1", "correct-horse-1")
        url = "/console/api/m/demo/kb/uploads"
        t0 = time.perf_counter()
        bomb = bomb_xlsx(tmp_path / "bomb.xlsx").read_bytes()
        r = client.post(
            url,
            files=[("files", ("bomb.xlsx", io.BytesIO(bomb), "application/octet-stream"))],
            headers={"X-CSRF-Token": csrf},
        )
        assert len(bomb) < kbmod.MAX_UPLOAD_FILE_BYTES  # a small upload: refused for what it inflates to
        assert r.status_code == 413 and "解压后" in r.json()["detail"]
        assert time.perf_counter() - t0 < 10
        good = good_xlsx(tmp_path / "good.xlsx").read_bytes()
        r = client.post(
            url,
            files=[("files", ("good.xlsx", io.BytesIO(good), "application/octet-stream"))],
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 200, r.text
        assert r.json()["counts"]["products"] == 3
