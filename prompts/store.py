"""Per-merchant prompt overrides: a draft, published versions, history and restore.

The shipped templates (``prompts/*.md``) are version 0 of every prompt. A merchant edits a draft,
previews it, and publishes it as version 1, 2, …; restoring an old version publishes its text again
as a new version, so history only grows and every change stays visible. A template whose variables
are wrong (missing, unknown, malformed ``$``) cannot be saved as published.

Layout under ``<data_dir>/prompts/<merchant>/``::

    <name>.json     {"versions": [{version, text, author, at, note}], "published": 3 | null, "draft": {...}}
    .lock           one writer per merchant (fcntl), across processes

Files are replaced atomically (``os.replace``); readers check the file's mtime per call (~10 µs), so a
publish in another worker takes effect everywhere without a restart.
"""

from __future__ import annotations

import json
import os
import re
import string
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from core.filelock import dir_lock
from core.ids import MERCHANT_RE
from prompts.loader import PROMPTS_DIR, REQUIRED_VARS, PromptError, variables

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
MAX_PROMPT_CHARS = 8000

# What the console calls each template (templates added to prompts/ later show under their file name).
LABELS = {
    "system": ("系统人设", "直播间AI助理的身份与规则（大模型的 system 提示词）"),
    "answer": ("回答风格", "每个观众问题交给大模型时的格式：资料、画像、历史与问题"),
    "copy_system": ("文案·写手人设", "带货文案写手的身份与合规要求"),
    "copy_user": ("文案·渠道要求", "每条文案的渠道、阶段、受众、开头与字数"),
    "host_script": ("主播口播风格", "虚拟主播讲解商品时的口播话术风格"),
    "host_system": ("主播人设", "虚拟主播的身份与说话方式"),
}


@dataclass
class PromptVersion:
    version: int
    text: str
    author: str
    at: float
    note: str = ""


@dataclass
class PromptState:
    merchant: str
    name: str
    versions: list[PromptVersion] = field(default_factory=list)
    published: int | None = None  # None: the shipped default (version 0) is in use
    draft: dict | None = None  # {"text", "author", "at"}

    def text_of(self, version: int, default: str) -> str:
        if version == 0:
            return default
        for v in self.versions:
            if v.version == version:
                return v.text
        raise PromptError(f"prompt {self.name!r} has no version {version}")

    def to_json(self) -> dict:
        return {"versions": [v.__dict__ for v in self.versions], "published": self.published, "draft": self.draft}


def known_templates() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.md") if _NAME_RE.match(p.stem))


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or not (PROMPTS_DIR / f"{name}.md").is_file():
        raise PromptError(f"unknown prompt {name!r}")
    return name


def default_text(name: str) -> str:
    return (PROMPTS_DIR / f"{check_name(name)}.md").read_text(encoding="utf-8")


def required_vars(name: str) -> set[str]:
    """The variables a template must use: the loader's list, else those of the shipped default."""
    return set(REQUIRED_VARS.get(name) or variables(default_text(name)))


def problems(name: str, text: str) -> list[str]:
    """Everything wrong with ``text`` as template ``name`` (empty list: it can be published)."""
    out: list[str] = []
    if not isinstance(text, str) or not text.strip():
        return ["提示词不能为空"]
    if len(text) > MAX_PROMPT_CHARS:
        out.append(f"提示词过长：{len(text)} 字，最多 {MAX_PROMPT_CHARS} 字")
    bad = [m.group(0) for m in string.Template.pattern.finditer(text) if m.group("invalid") is not None]
    if bad:
        pos = [m.start("invalid") for m in string.Template.pattern.finditer(text) if m.group("invalid") is not None]
        line = text.count("\n", 0, pos[0]) + 1
        out.append(f"第{line}行有不完整的变量写法“$”：变量请写成 ${{名称}}，要输出美元符号请写 $$")
    want, have = required_vars(name), variables(text)
    if want - have:
        out.append("缺少变量：" + "、".join("${" + v + "}" for v in sorted(want - have)))
    if have - want:
        out.append(
            "未知变量："
            + "、".join("${" + v + "}" for v in sorted(have - want))
            + "（可用变量："
            + "、".join("${" + v + "}" for v in sorted(want))
            + "）"
        )
    if not out:
        try:
            string.Template(text).substitute({v: "x" for v in want})
        except (KeyError, ValueError) as e:  # pragma: no cover - the checks above catch these
            out.append(f"模板无法渲染：{e}")
    return out


def validate(name: str, text: str) -> None:
    errs = problems(name, text)
    if errs:
        raise PromptError("；".join(errs))


class PromptStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[tuple[str, str], tuple[int, str | None]] = {}
        self._cache_lock = threading.Lock()

    # --- paths & io --------------------------------------------------------------------------
    def _mdir(self, merchant: str) -> Path:
        if not isinstance(merchant, str) or not MERCHANT_RE.match(merchant):
            raise PromptError(f"invalid merchant id {merchant!r}")
        return self.root / merchant

    def _file(self, merchant: str, name: str) -> Path:
        return self._mdir(merchant) / f"{check_name(name)}.json"

    def _lock(self, merchant: str) -> AbstractContextManager[None]:
        return dir_lock(self._mdir(merchant))

    def state(self, merchant: str, name: str) -> PromptState:
        path = self._file(merchant, name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return PromptState(merchant, name)
        return PromptState(
            merchant,
            name,
            [PromptVersion(**v) for v in data.get("versions", [])],
            data.get("published"),
            data.get("draft"),
        )

    def _save(self, st: PromptState) -> None:
        path = self._file(st.merchant, st.name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(st.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)
        with self._cache_lock:
            self._cache.pop((st.merchant, st.name), None)

    # --- reading -----------------------------------------------------------------------------
    def published_text(self, merchant: str, name: str) -> str | None:
        """The merchant's published override, or None when the shipped default is in use."""
        try:
            path = self._file(merchant, name)
        except PromptError:
            return None
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        key = (merchant, name)
        hit = self._cache.get(key)
        if hit and hit[0] == mtime:
            return hit[1]
        st = self.state(merchant, name)
        text = None
        if st.published:
            text = st.text_of(st.published, "")
            if problems(name, text):  # a template edited on disk into something broken: ignore it
                text = None
        with self._cache_lock:
            self._cache[key] = (mtime, text)
        return text

    def effective_text(self, merchant: str, name: str) -> str:
        return self.published_text(merchant, name) or default_text(name)

    def history(self, merchant: str, name: str) -> list[dict]:
        st = self.state(merchant, name)
        cur = st.published or 0
        out = [{"version": 0, "author": "系统", "at": None, "note": "系统默认模板", "published": cur == 0}]
        out += [
            {"version": v.version, "author": v.author, "at": v.at, "note": v.note, "published": cur == v.version}
            for v in st.versions
        ]
        return list(reversed(out))

    def text(self, merchant: str, name: str, version: int) -> str:
        return self.state(merchant, name).text_of(int(version), default_text(name))

    # --- writing -----------------------------------------------------------------------------
    def save_draft(self, merchant: str, name: str, text: str, author: str) -> PromptState:
        """Drafts may be broken (they are work in progress); only publishing validates."""
        if not isinstance(text, str) or len(text) > MAX_PROMPT_CHARS * 2:
            raise PromptError("提示词过长")
        with self._lock(merchant):
            st = self.state(merchant, name)
            st.draft = {"text": text, "author": author, "at": time.time()}
            self._save(st)
            return st

    def discard_draft(self, merchant: str, name: str) -> PromptState:
        with self._lock(merchant):
            st = self.state(merchant, name)
            st.draft = None
            self._save(st)
            return st

    def publish(self, merchant: str, name: str, author: str, text: str | None = None, note: str = "") -> PromptVersion:
        """Publish ``text`` (default: the saved draft) as a new version; the draft is cleared."""
        with self._lock(merchant):
            st = self.state(merchant, name)
            if text is None:
                if not st.draft:
                    raise PromptError("没有可发布的草稿")
                text = st.draft["text"]
            validate(name, text)
            v = PromptVersion(
                max((x.version for x in st.versions), default=0) + 1, text, author, time.time(), note[:200]
            )
            st.versions.append(v)
            st.published = v.version
            st.draft = None
            self._save(st)
            return v

    def restore(self, merchant: str, name: str, version: int, author: str) -> PromptVersion:
        """Publish an old version's text again (as a new version; 0 = the shipped default)."""
        with self._lock(merchant):
            st = self.state(merchant, name)
            text = st.text_of(int(version), default_text(name))
            validate(name, text)
            v = PromptVersion(
                max((x.version for x in st.versions), default=0) + 1,
                text,
                author,
                time.time(),
                f"恢复自 v{int(version)}",
            )
            st.versions.append(v)
            st.published = v.version
            self._save(st)
            return v
