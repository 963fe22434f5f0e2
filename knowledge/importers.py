"""Parse merchant files (product sheets, documents, Q&A pairs) into a validated ``Catalog`` fragment.

Every problem is collected with its file and row so a merchant can fix a sheet in one pass;
nothing is partially imported: either all files parse or ``KBImportError`` is raised.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from core.errors import BadRequest
from knowledge.schema import Catalog, Document, FAQItem, Merchant, Product, QAPair, QASet

MAX_FILE_BYTES = 50 * 1024 * 1024
DOC_SUFFIXES = {".md", ".markdown", ".txt"}
TABLE_SUFFIXES = {".csv", ".xlsx"}

# Header aliases so a merchant's Chinese spreadsheet imports as-is.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "sku": ("sku", "商品编码", "货号", "商品id"),
    "name": ("name", "商品名称", "名称", "品名"),
    "category": ("category", "类目", "分类"),
    "series": ("series", "系列"),
    "price": ("price", "直播价", "价格", "售价"),
    "list_price": ("list_price", "原价", "日常价", "划线价"),
    "stock": ("stock", "库存"),
    "specs": ("specs", "规格参数"),
    "selling_points": ("selling_points", "卖点"),
    "faq": ("faq", "常见问题"),
    "suitable_for": ("suitable_for", "适合人群", "适用"),
    "not_suitable_for": ("not_suitable_for", "不适合人群", "不适用"),
    "aliases": ("aliases", "别名", "昵称"),
    "question": ("question", "问题", "q"),
    "answer": ("answer", "答案", "回答", "a"),
}
_ALIAS_TO_FIELD = {alias.lower(): field for field, aliases in HEADER_ALIASES.items() for alias in aliases}
LIST_FIELDS = ("selling_points", "suitable_for", "not_suitable_for", "aliases")


class ImportIssue(BaseModel):
    file: str
    row: int | None = None  # 1-based data row (CSV/XLSX: sheet line number; JSON: index in "products")
    field: str | None = None
    message: str

    def __str__(self) -> str:
        where = self.file + (f" row {self.row}" if self.row is not None else "")
        where += f" [{self.field}]" if self.field else ""
        return f"{where}: {self.message}"


class KBImportError(BadRequest):
    code = "kb_import_rejected"
    http_status = 422

    def __init__(self, issues: list[ImportIssue]):
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues[:20]) + (" …" if len(issues) > 20 else ""))


def parse_files(paths: Iterable[Path]) -> Catalog:
    """Parse files into one catalog fragment; raises ``KBImportError`` listing every problem."""
    out = Catalog()
    issues: list[ImportIssue] = []
    seen_sku: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        try:
            frag, rows = _parse_one(path, issues)
        except _FileError as e:
            issues.append(ImportIssue(file=path.name, message=str(e)))
            continue
        if frag.merchant.name or frag.merchant.id:
            out.merchant = frag.merchant
        for p, row in zip(frag.products, rows):
            if p.sku in seen_sku:
                issues.append(
                    ImportIssue(
                        file=path.name,
                        row=row,
                        field="sku",
                        message=f"duplicate sku {p.sku!r} (also in {seen_sku[p.sku]})",
                    )
                )
                continue
            seen_sku[p.sku] = f"{path.name} row {row}"
            out.products.append(p)
        out.documents.extend(frag.documents)
        out.qa_sets.extend(frag.qa_sets)
    if issues:
        raise KBImportError(issues)
    return out


class _FileError(Exception):
    pass


# A parsed file: its catalog fragment and the source row of each product (for duplicate-sku errors).
_Fragment = tuple[Catalog, list[int]]


def _parse_one(path: Path, issues: list[ImportIssue]) -> _Fragment:
    if not path.is_file():
        raise _FileError("file not found")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise _FileError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _parse_product_json(path, issues)
    if suffix in TABLE_SUFFIXES:
        header, rows = _read_table(path)
        fields = [_ALIAS_TO_FIELD.get(h.strip().lower(), h.strip()) for h in header]
        rows = _without_formula_rows(path, fields, rows, issues)
        if "question" in fields and "answer" in fields:
            return _parse_qa_rows(path, fields, rows, issues)
        if "sku" not in fields:
            raise _FileError("no 'sku' column: a product sheet needs sku,name,price (or question,answer for Q&A)")
        return _parse_product_rows(path, fields, rows, issues)
    if suffix in DOC_SUFFIXES:
        return Catalog(documents=[_parse_document(path)]), []
    raise _FileError(f"unsupported file type {suffix!r} (use .json, .csv, .xlsx, .md, .txt)")


def _decode_text(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise _FileError("binary data where text was expected (corrupt or wrong file type)")
    for enc in ("utf-8-sig", "gb18030"):  # Chinese Excel exports are often GBK
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise _FileError("not valid UTF-8 or GB18030 text")


def _parse_product_json(path: Path, issues: list[ImportIssue]) -> _Fragment:
    try:
        data = json.loads(_decode_text(path))
    except json.JSONDecodeError as e:
        raise _FileError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if isinstance(data, list):
        data = {"products": data}
    if not isinstance(data, dict) or not isinstance(data.get("products"), list):
        raise _FileError('expected {"merchant": {...}, "products": [...]}')
    merchant = Merchant.model_validate(data.get("merchant") or {})
    products: list[Product] = []
    rows: list[int] = []
    for i, raw in enumerate(data["products"], start=1):
        p = _validate_product(path, i, raw, issues)
        if p is not None:
            products.append(p)
            rows.append(i)
    return Catalog(merchant=merchant, products=products), rows


def _validate_product(path: Path, row: int, raw: Any, issues: list[ImportIssue]) -> Product | None:
    if not isinstance(raw, dict):
        issues.append(ImportIssue(file=path.name, row=row, message="product must be an object"))
        return None
    if not str(raw.get("sku") or "").strip():
        issues.append(ImportIssue(file=path.name, row=row, field="sku", message="missing sku"))
        return None
    try:
        return Product.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            field = ".".join(str(x) for x in err["loc"]) or None
            msg = err["msg"]
            if err["type"].startswith("float") or err["type"].startswith("int"):
                msg = f"not a number: {err.get('input')!r}"
            issues.append(ImportIssue(file=path.name, row=row, field=field, message=msg))
        return None


# A spreadsheet formula in a cell ("=HYPERLINK(…)", "+cmd(…)", "@SUM(…)"): published, it would be repeated to
# viewers and run again in whoever opens an export. Such rows are refused with a per-row error.
_FORMULA_RE = re.compile(r"^[\s]*(=|[+\-@]\s*[A-Za-z_][A-Za-z0-9_.]*\s*\()")


def _without_formula_rows(
    path: Path, fields: list[str], rows: list[tuple[int, list[str]]], issues: list[ImportIssue]
) -> list[tuple[int, list[str]]]:
    kept = []
    for line, cells in rows:
        bad = [j for j, c in enumerate(cells) if c and _FORMULA_RE.match(c)]
        if not bad:
            kept.append((line, cells))
            continue
        for j in bad:
            field = fields[j] if j < len(fields) else None
            issues.append(
                ImportIssue(
                    file=path.name, row=line, field=field, message="formula cell: a cell may not start with '='"
                )
            )
    return kept


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Return the header and (line number, cells) rows of a CSV or the first XLSX sheet."""
    if path.suffix.lower() == ".xlsx":
        try:
            import openpyxl

            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
            raise _FileError(f"not a readable .xlsx workbook ({e.__class__.__name__})") from e
        ws = wb.worksheets[0]
        table = [["" if c is None else str(c) for c in r] for r in ws.iter_rows(values_only=True)]
        wb.close()
    else:
        text = _decode_text(path)
        try:
            table = list(csv.reader(io.StringIO(text)))
        except csv.Error as e:
            raise _FileError(f"malformed CSV: {e}") from e
    if not table or not any(c.strip() for c in table[0]):
        raise _FileError("empty sheet: no header row")
    header = table[0]
    rows = [(i, r) for i, r in enumerate(table[1:], start=2) if any(c.strip() for c in r)]
    return header, rows


def _split_list(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        try:
            return [str(x) for x in json.loads(value)]
        except json.JSONDecodeError:
            pass
    return [x.strip() for x in re.split(r"[|\n；;]", value) if x.strip()]


def _parse_specs(value: str) -> dict[str, str]:
    value = value.strip()
    if value.startswith("{"):
        return {str(k): str(v) for k, v in json.loads(value).items()}
    specs = {}
    for part in re.split(r"[|\n；;]", value):
        if not part.strip():
            continue
        m = re.match(r"\s*([^:：]+)[:：](.*)", part)
        if not m:
            raise ValueError(f"spec {part!r} is not 'name:value'")
        specs[m.group(1).strip()] = m.group(2).strip()
    return specs


def _parse_faq(value: str) -> list[FAQItem]:
    value = value.strip()
    if value.startswith("["):
        return [FAQItem.model_validate(x) for x in json.loads(value)]
    items = []
    for part in re.split(r"[|\n]", value):
        if not part.strip():
            continue
        if "::" not in part:
            raise ValueError(f"FAQ {part!r} is not 'question::answer'")
        q, a = part.split("::", 1)
        items.append(FAQItem(q=q.strip(), a=a.strip()))
    return items


def _parse_product_rows(
    path: Path, fields: list[str], rows: list[tuple[int, list[str]]], issues: list[ImportIssue]
) -> _Fragment:
    products, ok_rows = [], []
    for line, cells in rows:
        raw: dict[str, Any] = {}
        specs: dict[str, str] = {}
        try:
            for field, cell in zip(fields, cells):
                cell = cell.strip()
                if not field or cell == "":
                    continue
                if field.lower().startswith(("spec:", "spec.", "规格:", "规格.")):
                    specs[re.split(r"[:.]", field, maxsplit=1)[1]] = cell
                elif field == "specs":
                    specs.update(_parse_specs(cell))
                elif field == "faq":
                    raw["faq"] = _parse_faq(cell)
                elif field in LIST_FIELDS:
                    raw[field] = _split_list(cell)
                else:
                    raw[field] = cell
        except (ValueError, json.JSONDecodeError, ValidationError) as e:
            issues.append(ImportIssue(file=path.name, row=line, message=f"cannot parse cell: {e}"))
            continue
        raw["specs"] = specs
        p = _validate_product(path, line, raw, issues)
        if p is not None:
            products.append(p)
            ok_rows.append(line)
    return Catalog(products=products), ok_rows


def _parse_qa_rows(
    path: Path, fields: list[str], rows: list[tuple[int, list[str]]], issues: list[ImportIssue]
) -> _Fragment:
    pairs = []
    for line, cells in rows:
        rec = {f: c.strip() for f, c in zip(fields, cells)}
        if not rec.get("question") or not rec.get("answer"):
            issues.append(ImportIssue(file=path.name, row=line, message="question and answer are both required"))
            continue
        pairs.append(QAPair(question=rec["question"], answer=rec["answer"], sku=rec.get("sku") or None))
    return Catalog(qa_sets=[QASet(source=path.stem, pairs=pairs)]), []


def _parse_document(path: Path) -> Document:
    text = _decode_text(path).strip()
    if not text:
        raise _FileError("empty document")
    first = text.splitlines()[0].lstrip("# ").strip()
    return Document(doc_id=path.stem, title=first[:80] or path.stem, text=text)
