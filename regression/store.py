"""Where a merchant's regression set lives, with the KB (``<data_dir>/kb/<merchant>/``):

versions/v0007/regression.json   the cases generated from that version's catalog when it was built
                                 (``write_generated`` is a KnowledgeBase build hook)
regression/cases.json            hand-added cases and corrected reviews (kept across versions)
regression/runs/<run_id>.json    finished runs (what a publish was checked against)
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from core.filelock import dir_lock
from knowledge.attributes import AttributeBook, load_attributes
from knowledge.schema import Catalog
from knowledge.store import KnowledgeBase
from regression.cases import Case, generate

GENERATED = "regression.json"
_RUN_ID = re.compile(r"^[0-9a-f]{16}$")


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


class CaseStore:
    def __init__(self, kb: KnowledgeBase, book: AttributeBook | None = None):
        self.kb = kb
        self._book = book
        self._generated: dict[tuple[str, str], list[Case]] = {}

    @property
    def book(self) -> AttributeBook:
        if self._book is None:
            self._book = load_attributes()
        return self._book

    # --- generated with each version ----------------------------------------------------------
    def write_generated(self, merchant: str, catalog: Catalog, build_dir: Path) -> None:
        """The KB build hook: the version's own cases, written beside its catalog."""
        cases = generate(catalog, self.book)
        (build_dir / GENERATED).write_text(
            json.dumps([c.model_dump() for c in cases], ensure_ascii=False), encoding="utf-8"
        )

    def generated(self, merchant: str, version: str) -> list[Case]:
        key = (merchant, version)
        if key not in self._generated:
            path = self.kb.version_dir(merchant, version) / GENERATED
            try:
                cases = [Case.model_validate(x) for x in json.loads(path.read_text(encoding="utf-8"))]
            except FileNotFoundError:  # a version built before regression sets existed
                cases = generate(self.kb.catalog(merchant, version), self.book)
            self._generated[key] = cases
            while len(self._generated) > 16:
                self._generated.pop(next(iter(self._generated)))
        return self._generated[key]

    # --- reviews and hand-added cases -----------------------------------------------------------
    def _dir(self, merchant: str) -> Path:
        return self.kb.merchant_dir(merchant) / "regression"

    def extra(self, merchant: str) -> list[Case]:
        try:
            raw = json.loads((self._dir(merchant) / "cases.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return [Case.model_validate(x) for x in raw]

    def add(self, merchant: str, case: Case) -> Case:
        d = self._dir(merchant)
        with dir_lock(d):
            cases = [c for c in self.extra(merchant) if c.id != case.id]
            case = case.model_copy(update={"at": case.at or time.time()})
            cases.append(case)
            _write_json(d / "cases.json", [c.model_dump() for c in cases])
        return case

    def delete(self, merchant: str, case_id: str) -> bool:
        d = self._dir(merchant)
        with dir_lock(d):
            cases = self.extra(merchant)
            keep = [c for c in cases if c.id != case_id]
            if len(keep) == len(cases):
                return False
            _write_json(d / "cases.json", [c.model_dump() for c in keep])
        return True

    def cases(self, merchant: str, version: str) -> list[Case]:
        """The set as of ``version``: its generated cases, then reviews and hand-added ones."""
        return list(self.generated(merchant, version)) + self.extra(merchant)

    # --- runs ------------------------------------------------------------------------------------
    def save_run(self, merchant: str, report: dict[str, Any]) -> None:
        _write_json(self._dir(merchant) / "runs" / f"{report['run_id']}.json", report)
        runs = sorted((self._dir(merchant) / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in runs[:-50]:  # keep the last 50
            old.unlink(missing_ok=True)

    def load_run(self, merchant: str, run_id: str) -> dict[str, Any] | None:
        if not _RUN_ID.match(run_id or ""):
            return None
        try:
            report: dict[str, Any] = json.loads(
                (self._dir(merchant) / "runs" / f"{run_id}.json").read_text(encoding="utf-8")
            )
        except FileNotFoundError:
            return None
        return report

    def runs(self, merchant: str, limit: int = 20) -> list[dict[str, Any]]:
        d = self._dir(merchant) / "runs"
        files = sorted(d.glob("*.json"), key=lambda p: -p.stat().st_mtime)[:limit] if d.exists() else []
        out = []
        for f in files:
            try:
                r = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            out.append({k: r.get(k) for k in SUMMARY_KEYS})
        return out


SUMMARY_KEYS = (
    "run_id",
    "merchant",
    "target",
    "version",
    "base_version",
    "prompt",
    "state",
    "cases",
    "passed",
    "failed",
    "refusals_ok",
    "blocked",
    "regressed",
    "started",
    "finished",
    "elapsed_s",
)
