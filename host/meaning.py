"""What the host has already said, by meaning: a sentence whose embedding is within ``threshold`` cosine
of one said before is a repeat, whatever its lead-in ("这是X的特点" / "X的亮点之一：" over the same
selling point). Uses the project's sentence encoder (the room's ``embed``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

REPEAT_COS = 0.9


class MeaningMemory:
    def __init__(self, embed: Callable[[list[str]], np.ndarray], threshold: float = REPEAT_COS, keep: int = 4000):
        self.embed, self.threshold, self.keep = embed, threshold, keep
        self._vecs: list[np.ndarray] = []

    def _vec(self, text: str) -> np.ndarray:
        v = np.asarray(self.embed([text])[0], dtype=np.float32)
        return v / (float(np.linalg.norm(v)) + 1e-9)

    def repeats(self, text: str) -> bool:
        if not self._vecs:
            return False
        return bool(float(np.max(np.stack(self._vecs) @ self._vec(text))) >= self.threshold)

    def add(self, text: str) -> None:
        self._vecs.append(self._vec(text))
        del self._vecs[: -self.keep]
