"""Knowledge-base operations behind the console pages: staged uploads with per-row errors, fact/chunk
preview, catalog diffs between versions, inline product edits and the retrieval test.

Everything takes the merchant first and touches only that merchant's directory.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from core.errors import BadRequest
from knowledge.facts import catalog_facts, product_facts
from knowledge.importers import KBImportError, parse_files
from knowledge.schema import Catalog, Product
from knowledge.store import KnowledgeBase, merge_catalogs
from knowledge.text import normalize

ALLOWED_SUFFIXES = {".json", ".csv", ".xlsx", ".md", ".markdown", ".txt"}
MAX_UPLOAD_FILE_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_FILES = 10
MAX_UPLOAD_BODY = MAX_UPLOAD_FILES * MAX_UPLOAD_FILE_BYTES + 64 * 1024
UPLOAD_TTL_S = 24 * 3600
_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{16}$")

KIND_ZH = {
    "summary": "概要",
    "price": "价格",
    "stock": "库存",
    "spec": "规格",
    "selling_point": "卖点",
    "faq": "问答",
    "suitable": "适合",
    "not_suitable": "不适合",
    "doc": "文档片段",
    "qa": "店铺问答",
}
FIELD_ZH = {
    "sku": "商品编码",
    "name": "商品名称",
    "category": "类目",
    "series": "系列",
    "aliases": "别名",
    "price": "直播价",
    "list_price": "日常价",
    "stock": "库存",
    "specs": "规格参数",
    "selling_points": "卖点",
    "faq": "常见问题",
    "suitable_for": "适合人群",
    "not_suitable_for": "不适合人群",
}

_MESSAGES = [
    (re.compile(r"^missing sku$"), "缺少商品编码（sku）"),
    (re.compile(r"^not a number: (.*)$"), "不是有效数字：{0}"),
    (re.compile(r"^duplicate sku (.*) \(also in (.*)\)$"), "商品编码 {0} 重复（另见 {1}）"),
    (re.compile(r"^Field required$"), "必填字段缺失"),
    (re.compile(r"^Input should be greater than or equal to (.*)$"), "数值不能小于 {0}"),
    (re.compile(r"^String should have at least (\d+) characters?$"), "不能为空"),
    (re.compile(r"^String should have at most (\d+) characters?$"), "超过 {0} 个字符"),
    (re.compile(r"^product must be an object$"), "商品必须是 JSON 对象"),
    (re.compile(r"^question and answer are both required$"), "问题和答案都必须填写"),
    (re.compile(r"^cannot parse cell: (.*)$"), "单元格无法解析：{0}"),
    (
        re.compile(r"^no 'sku' column.*$"),
        "缺少 sku 列：商品表需要 sku、name、price 列（问答表需要 question、answer 列）",
    ),
    (re.compile(r"^unsupported file type (.*)$"), "不支持的文件类型 {0}"),
    (re.compile(r"^empty sheet.*$"), "空表：没有表头"),
    (re.compile(r"^empty document$"), "空文档"),
    (re.compile(r"^invalid JSON at line (\d+) column (\d+): (.*)$"), "JSON 格式错误：第{0}行第{1}列（{2}）"),
    (re.compile(r"^binary data where text was expected.*$"), "文件内容不是文本（可能已损坏或类型不对）"),
    (re.compile(r"^not valid UTF-8 or GB18030 text$"), "文本编码无法识别（请用 UTF-8 或 GBK）"),
    (re.compile(r"^not a readable \.xlsx workbook.*$"), "不是有效的 .xlsx 文件"),
    (re.compile(r"^formula cell.*$"), "单元格以 = 开头（表格公式），请改成纯文本"),
    (re.compile(r"^expected \{.*$"), 'JSON 结构应为 {"merchant": {...}, "products": [...]}'),
]


class UploadRejected(BadRequest):
    pass


def message_zh(msg: str) -> str:
    for rx, zh in _MESSAGES:
        m = rx.match(msg)
        if m:
            return zh.format(*m.groups())
    return msg


def issue_rows(e: KBImportError) -> list[dict]:
    return [
        {
            "file": i.file,
            "row": i.row,
            "field": i.field,
            "field_zh": FIELD_ZH.get((i.field or "").split(".")[0]),
            "message": message_zh(i.message),
            "raw": i.message,
        }
        for i in e.issues
    ]


def safe_filename(name: str) -> str:
    base = Path(str(name or "")).name
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise UploadRejected(f"不支持的文件类型“{suffix or '无扩展名'}”：只能上传 .json、.csv、.xlsx、.md、.txt")
    stem = re.sub(r"[^\w\-\u4e00-\u9fff]+", "_", stem).strip("._")[:60] or "file"
    return stem + suffix


# An .xlsx is a zip of XML: a 1 MB upload can inflate to gigabytes. Caps checked from the archive's
# directory (zipfile refuses to inflate a member past its declared size), then a trial parse of the first
# sheet in a child process with a time and memory limit, before the import parses it in this one.
MAX_XLSX_UNCOMPRESSED = 64 * 1024 * 1024
MAX_XLSX_RATIO = 100  # per member, for members over 1 MiB inflated
MAX_XLSX_MEMBERS = 2000
MAX_SHEET_ROWS = 100_000
MAX_SHEET_CELLS = 2_000_000
XLSX_PARSE_TIMEOUT_S = 20.0
XLSX_PARSE_MEMORY = 1024 * 1024 * 1024

_TRIAL_PARSE = r"""
import sys, openpyxl
rows = cells = 0
wb = openpyxl.load_workbook(sys.argv[1], read_only=True, data_only=True)
for r in wb.worksheets[0].iter_rows(values_only=True):
    rows += 1
    cells += len(r)
    if rows > int(sys.argv[2]) or cells > int(sys.argv[3]):
        sys.exit(3)
"""


def check_xlsx(path: Path) -> None:
    """Refuse an .xlsx whose archive is a bomb, or whose first sheet is too big or too slow to read."""
    import subprocess
    import sys
    import zipfile

    name = path.name
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UploadRejected(f"{name}：不是有效的 .xlsx 文件") from None
    if len(infos) > MAX_XLSX_MEMBERS:
        raise UploadRejected(f"{name}：压缩包内文件过多（上限 {MAX_XLSX_MEMBERS}）")
    total = sum(i.file_size for i in infos)
    if total > MAX_XLSX_UNCOMPRESSED:
        raise UploadRejected(f"{name}：解压后超过 {MAX_XLSX_UNCOMPRESSED // (1024 * 1024)} MB 上限")
    for i in infos:
        if i.file_size > 1024 * 1024 and i.file_size > MAX_XLSX_RATIO * max(1, i.compress_size):
            raise UploadRejected(f"{name}：压缩比异常（{i.filename}），疑似压缩炸弹，超过上限")

    def limits() -> None:  # in the child: no more memory than this, no more CPU than the timeout
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (XLSX_PARSE_MEMORY, XLSX_PARSE_MEMORY))
        cpu = int(XLSX_PARSE_TIMEOUT_S) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

    try:
        r = subprocess.run(
            [sys.executable, "-c", _TRIAL_PARSE, str(path), str(MAX_SHEET_ROWS), str(MAX_SHEET_CELLS)],
            capture_output=True,
            timeout=XLSX_PARSE_TIMEOUT_S,
            preexec_fn=limits,  # noqa: PLW1509 - no threads are started between fork and exec
        )
    except subprocess.TimeoutExpired:
        raise UploadRejected(f"{name}：表格解析超时（{XLSX_PARSE_TIMEOUT_S:g} 秒），超过上限") from None
    if r.returncode == 3:
        raise UploadRejected(f"{name}：表格超过 {MAX_SHEET_ROWS} 行或 {MAX_SHEET_CELLS} 个单元格的上限")
    if r.returncode != 0:
        raise UploadRejected(f"{name}：不是有效的 .xlsx 文件（无法解析）")


def sniff(name: str, head: bytes) -> None:
    """The content must match the extension (an .xlsx is a zip; everything else is text)."""
    if name.endswith(".xlsx"):
        if not head.startswith(b"PK\x03\x04"):
            raise UploadRejected(f"{name}：不是有效的 .xlsx 文件")
    elif b"\x00" in head[:4096]:
        raise UploadRejected(f"{name}：文件内容不是文本")


def _own_option_follows(old: Product, data: dict) -> dict:
    """An option the product's own name names ("精华液 30ml" with options 30ml / 50ml), priced and stocked
    as the product was, is the product itself: when the edit changes the product's price or stock and
    leaves the options as they were, that option follows (otherwise viewers asking for "精华液 30ml"
    keep hearing the old price from the option). The preview shows the option's fact changed too."""
    raw = (old.model_extra or {}).get("variants")
    if not isinstance(raw, list) or data.get("variants") != raw:
        return data
    name = normalize(str(data.get("name") or old.name)).replace(" ", "")
    moved = {f: data[f] for f in ("price", "stock") if _number(data.get(f)) and not _same(data[f], getattr(old, f))}
    if not moved:
        return data
    items = []
    for v in raw:
        if isinstance(v, dict) and v.get("name") and normalize(str(v["name"])).replace(" ", "") in name:
            v = dict(v) | {f: val for f, val in moved.items() if _same(v.get(f), getattr(old, f))}
        items.append(v)
    return data | {"variants": items}


def _number(a: object) -> bool:
    return _same(a, a)


def _same(a: object, b: object) -> bool:
    try:
        return a is not None and b is not None and float(a) == float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


STAGE_ZH = {
    "parsing": "解析文件",
    "embedding": "计算向量",
    "indexing": "建立索引",
    "building": "生成草稿索引",
    "before": "发布检查：在已发布版本上回答",
    "after": "发布检查：在草稿上回答",
}


@dataclass
class Job:
    job_id: str
    merchant: str
    kind: str
    state: str = "running"  # running | done | failed
    stage: str = "parsing"
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    result: dict | None = None
    error: str | None = None
    issues: list[dict] | None = None
    ended: threading.Event = field(default_factory=threading.Event, repr=False)  # set once state is final

    def view(self) -> dict:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "state": self.state,
            "stage": self.stage,
            "stage_zh": STAGE_ZH.get(self.stage, self.stage),
            "done": self.done,
            "total": self.total,
            "result": self.result,
            "error": self.error,
            "issues": self.issues,
            "elapsed_s": round((self.finished or time.time()) - self.started, 2),
        }


class KBConsole:
    def __init__(self, kb: KnowledgeBase, staging_root: Path):
        self.kb = kb
        self.staging_root = Path(staging_root)
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()

    # --- staging -----------------------------------------------------------------------------
    def _sdir(self, merchant: str, upload_id: str) -> Path:
        if not _UPLOAD_ID_RE.match(upload_id or ""):
            raise KeyError(upload_id)
        return self.staging_root / merchant / upload_id

    def new_upload(self, merchant: str) -> tuple[str, Path]:
        root = self.staging_root / merchant
        root.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in root.iterdir():  # forget abandoned uploads
            try:
                if now - old.stat().st_mtime > UPLOAD_TTL_S:
                    shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:
                pass
        uid = secrets.token_hex(8)
        d = root / uid
        d.mkdir()
        return uid, d

    def upload_files(self, merchant: str, upload_id: str) -> list[Path]:
        d = self._sdir(merchant, upload_id)
        if not d.is_dir():
            raise KeyError(upload_id)
        return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in ALLOWED_SUFFIXES)

    def discard(self, merchant: str, upload_id: str) -> None:
        shutil.rmtree(self._sdir(merchant, upload_id), ignore_errors=True)

    def preview(self, merchant: str, upload_id: str) -> dict:
        """Parse the staged files; raises KBImportError (per-row issues) or returns what would change."""
        files = self.upload_files(merchant, upload_id)
        fragment = parse_files(files)
        active = self.kb.active_version(merchant)
        base = self.kb.catalog(merchant, active) if active else Catalog()
        merged = merge_catalogs(base, fragment)
        diff = catalog_diff(base, merged)
        facts = catalog_facts(fragment)
        changed = {p["sku"] for p in diff["products"]["added"]} | {p["sku"] for p in diff["products"]["changed"]}
        return {
            "upload_id": upload_id,
            "files": [p.name for p in files],
            "active_version": active,
            "counts": {
                "products": len(fragment.products),
                "documents": len(fragment.documents),
                "qa": sum(len(q.pairs) for q in fragment.qa_sets),
                "facts": len(facts),
            },
            "diff": diff,
            "facts": [fact_view(f) | {"changed": f.sku in changed if f.sku else True} for f in facts[:400]],
            "facts_truncated": max(0, len(facts) - 400),
        }

    # --- jobs --------------------------------------------------------------------------------
    def start_job(self, merchant: str, kind: str, work) -> Job:
        job = Job(uuid.uuid4().hex[:16], merchant, kind)
        with self._lock:
            self._jobs[(merchant, job.job_id)] = job
            if len(self._jobs) > 200:
                for k in sorted(self._jobs, key=lambda k: self._jobs[k].started)[:100]:
                    if self._jobs[k].state != "running":
                        del self._jobs[k]

        def progress(stage: str, done: int, total: int) -> None:
            job.stage, job.done, job.total = stage, done, total

        def run() -> None:
            try:
                job.result = work(progress)
                job.state = "done"
            except KBImportError as e:
                job.issues, job.error, job.state = issue_rows(e), "文件校验未通过", "failed"
            except Exception as e:  # noqa: BLE001 - reported to the page
                job.error, job.state = f"{type(e).__name__}: {e}", "failed"
            finally:
                job.finished = time.time()
                job.ended.set()

        threading.Thread(target=run, name=f"kb-job-{job.job_id}", daemon=True).start()
        return job

    def job(self, merchant: str, job_id: str) -> Job | None:
        return self._jobs.get((merchant, job_id))

    # --- products ----------------------------------------------------------------------------
    def products(self, merchant: str, q: str = "") -> list[dict]:
        cat = self.kb.catalog(merchant)
        q = q.strip().lower()
        out = []
        for p in cat.products:
            if q and q not in p.sku.lower() and q not in p.name.lower() and q not in p.category.lower():
                continue
            out.append(
                {
                    "sku": p.sku,
                    "name": p.name,
                    "category": p.category,
                    "price": p.price,
                    "list_price": p.list_price,
                    "stock": p.stock,
                    "facts": len(product_facts(p)),
                }
            )
        return out

    def product(self, merchant: str, sku: str) -> Product | None:
        return self.kb.catalog(merchant).product(sku)

    def edited_catalog(self, merchant: str, sku: str, data: dict) -> tuple[Catalog, Product, Product]:
        """The active catalog with product ``sku`` replaced (validated); raises KeyError / ValidationError."""
        cat = self.kb.catalog(merchant)
        old = cat.product(sku)
        if old is None:
            raise KeyError(sku)
        data = _own_option_follows(old, {**data, "sku": sku})
        new = Product.model_validate(data)
        products = [new if p.sku == sku else p for p in cat.products]
        return cat.model_copy(update={"products": products}), old, new

    def retrieval_test(self, merchant: str, query: str, k: int = 8) -> dict:
        t0 = time.perf_counter()
        version, hits = self.kb.search(merchant, query, k=k)
        return {
            "version": version,
            "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1),
            "hits": [
                {
                    "rank": i + 1,
                    "fact_id": h.fact_id,
                    "sku": h.sku,
                    "name": h.name,
                    "kind": h.kind,
                    "kind_zh": KIND_ZH.get(h.kind, h.kind),
                    "text": h.text,
                    "score": h.score,
                    "dense_rank": h.dense_rank,
                    "bm25_rank": h.bm25_rank,
                    "product_boost": h.product_boost,
                }
                for i, h in enumerate(hits)
            ],
        }

    def versions_diff(self, merchant: str, version: str, against: str | None) -> dict:
        versions = [v.version for v in self.kb.versions(merchant)]
        if version not in versions:
            raise KeyError(version)
        if against is None:
            i = versions.index(version)
            against = versions[i - 1] if i > 0 else None
        elif against not in versions:
            raise KeyError(against)
        new = self.kb.catalog(merchant, version)
        old = self.kb.catalog(merchant, against) if against else Catalog()
        d = catalog_diff(old, new)
        d["version"], d["against"] = version, against
        old_f = {f.id: f.text for f in catalog_facts(old)}
        new_f = {f.id: f.text for f in catalog_facts(new)}
        lines = []
        for fid in sorted(old_f.keys() | new_f.keys()):
            a, b = old_f.get(fid), new_f.get(fid)
            if a == b:
                continue
            if a is not None:
                lines.append({"op": "-", "fact_id": fid, "text": a})
            if b is not None:
                lines.append({"op": "+", "fact_id": fid, "text": b})
        d["facts"] = {
            "added": sum(1 for f in new_f if f not in old_f),
            "removed": sum(1 for f in old_f if f not in new_f),
            "changed": sum(1 for f in new_f if f in old_f and old_f[f] != new_f[f]),
            "lines": lines[:600],
            "truncated": max(0, len(lines) - 600),
        }
        return d


def fact_view(f) -> dict:
    return {
        "fact_id": f.id,
        "kind": f.kind,
        "kind_zh": KIND_ZH.get(f.kind, f.kind),
        "sku": f.sku,
        "name": f.name,
        "key": f.key,
        "text": f.text,
    }


def _pdump(p: Product) -> dict:
    return json.loads(p.model_dump_json())


def catalog_diff(old: Catalog, new: Catalog) -> dict:
    op = {p.sku: p for p in old.products}
    np_ = {p.sku: p for p in new.products}
    changed = []
    for sku in np_:
        if sku in op and op[sku] != np_[sku]:
            a, b = _pdump(op[sku]), _pdump(np_[sku])
            fields = [
                {"field": k, "field_zh": FIELD_ZH.get(k, k), "before": a.get(k), "after": b.get(k)}
                for k in sorted(a.keys() | b.keys())
                if a.get(k) != b.get(k)
            ]
            changed.append({"sku": sku, "name": np_[sku].name, "fields": fields})
    od = {d.doc_id: d for d in old.documents}
    nd = {d.doc_id: d for d in new.documents}
    oq = {q.source: q for q in old.qa_sets}
    nq = {q.source: q for q in new.qa_sets}
    return {
        "products": {
            "added": [{"sku": s, "name": np_[s].name} for s in np_ if s not in op],
            "removed": [{"sku": s, "name": op[s].name} for s in op if s not in np_],
            "changed": changed,
            "unchanged": sum(1 for s in np_ if s in op and op[s] == np_[s]),
        },
        "documents": {
            "added": [{"doc_id": d, "title": nd[d].title} for d in nd if d not in od],
            "removed": [{"doc_id": d, "title": od[d].title} for d in od if d not in nd],
            "changed": [{"doc_id": d, "title": nd[d].title} for d in nd if d in od and od[d] != nd[d]],
        },
        "qa": {
            "added": [{"source": s, "pairs": len(nq[s].pairs)} for s in nq if s not in oq],
            "removed": [{"source": s, "pairs": len(oq[s].pairs)} for s in oq if s not in nq],
            "changed": [{"source": s, "pairs": len(nq[s].pairs)} for s in nq if s in oq and oq[s] != nq[s]],
        },
    }


def validation_issues(e: ValidationError) -> list[dict]:
    out = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"]
        if err["type"].startswith(("float", "int")):
            msg = f"not a number: {err.get('input')!r}"
        out.append({"field": loc, "field_zh": FIELD_ZH.get(loc.split(".")[0], loc), "message": message_zh(msg)})
    return out
