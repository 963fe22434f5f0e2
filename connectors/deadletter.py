"""Dead letters: input a connector could not read, kept (never lost), viewable and replayable.

Each connector appends to ``<data_dir>/connectors/dead/<connector_id>.jsonl`` (one JSON object a line:
``{dl_id, connector_id, at, reason, raw, headers, replayed}``); the last ``keep`` stay in memory for the
console. ``raw`` is the body as received (decoded as UTF-8 with replacement, cut at 64 KiB). Replaying one
re-parses it with the connector's parser; if it parses now (the sender's mistake was fixed on our side, or
the schema relaxed) it enters the room like any event and is marked ``replayed``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

MAX_RAW = 64 * 1024


class DeadLetters:
    def __init__(self, root: Path | None, keep: int = 500):
        self.root = Path(root) if root is not None else None
        self.keep = keep
        self._mem: dict[str, deque[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _file(self, connector_id: str) -> Path | None:
        return None if self.root is None else self.root / f"{connector_id}.jsonl"

    def add(
        self, connector_id: str, reason: str, raw: bytes | str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
        entry = {
            "dl_id": "dl_" + secrets.token_hex(6),
            "connector_id": connector_id,
            "at": time.time(),
            "reason": reason[:500],
            "raw": text[:MAX_RAW],
            "truncated": len(text) > MAX_RAW,
            "headers": dict(headers or {}),
            "replayed": False,
        }
        with self._lock:
            self._mem.setdefault(connector_id, deque(maxlen=self.keep)).append(entry)
            f = self._file(connector_id)
            if f is not None:
                f.parent.mkdir(parents=True, exist_ok=True)
                with f.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return entry

    def list(self, connector_id: str, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            mem = self._mem.get(connector_id)
        if mem is None:  # a restart: read them back from the file
            mem = deque(self._read(connector_id), maxlen=self.keep)
            with self._lock:
                self._mem.setdefault(connector_id, mem)
        return list(mem)[-limit:][::-1]

    def _read(self, connector_id: str) -> list[dict[str, Any]]:
        f = self._file(connector_id)
        if f is None or not f.exists():
            return []
        out: dict[str, dict[str, Any]] = {}
        for line in f.read_text(encoding="utf-8").splitlines()[-4 * self.keep :]:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            e.pop("event", None)
            out[e["dl_id"]] = e  # a later line (replayed) updates the entry
        return list(out.values())[-self.keep :]

    def get(self, connector_id: str, dl_id: str) -> dict[str, Any] | None:
        return next((e for e in self.list(connector_id, self.keep) if e["dl_id"] == dl_id), None)

    def mark_replayed(self, connector_id: str, dl_id: str) -> None:
        e = self.get(connector_id, dl_id)
        if e is not None:
            e["replayed"] = True
            e["replayed_at"] = time.time()
            f = self._file(connector_id)
            if f is not None:
                with self._lock, f.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({**e, "event": "replayed"}, ensure_ascii=False) + "\n")

    def count(self, connector_id: str) -> int:
        return len(self.list(connector_id, self.keep))
