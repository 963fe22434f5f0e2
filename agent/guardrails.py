"""Checks every outgoing sentence passes, whatever produced it (fast path, LLM, host script)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agent import compliance
from agent.grounding import ungrounded_numbers
from knowledge.schema import Fact

AI_LABEL = "AI生成"


@dataclass
class SentenceCheck:
    text: str  # possibly rewritten; "" = dropped
    flags: list[str]


def check_sentence(
    sentence: str,
    facts: list[Fact],
    question: str,
    secret_texts: list[str],
    real_stock: int | None = None,
    data_texts: Sequence[str] = (),
) -> SentenceCheck:
    """``data_texts``: real data besides KB facts that may ground numbers (e.g. the coupon the ledger
    just issued)."""
    flags: list[str] = []
    text, violations = compliance.enforce(sentence, real_stock=real_stock)
    flags += [f"compliance:{v.rule}:{v.term}" for v in violations]
    if text and ungrounded_numbers(text, facts, question, data_texts):
        flags.append("ungrounded_number")
        text = ""
    if text and leaks(text, secret_texts):
        flags.append("prompt_leak")
        text = ""
    return SentenceCheck(text, flags)


def leaks(text: str, secret_texts: list[str], window: int = 12) -> bool:
    """True when ``text`` repeats any 12-character run of a secret (the system prompt)."""
    compact = "".join(text.split())
    for secret in secret_texts:
        s = "".join(secret.split())
        for i in range(0, max(0, len(s) - window) + 1, 4):
            if s[i : i + window] in compact:
                return True
    return False


class RateLimiter:
    """Token bucket per key: ``rate`` messages per ``per`` seconds, bursts up to ``burst``."""

    def __init__(self, rate: float = 5, per: float = 10.0, burst: int = 5, max_keys: int = 50_000):
        self.rate, self.per, self.burst, self.max_keys = rate, per, burst, max_keys
        self._buckets: dict[tuple[str, ...], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: tuple[str, ...]) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate / self.per)
            ok = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
            if len(self._buckets) > self.max_keys:  # forget the oldest half; they have refilled anyway
                for k in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: self.max_keys // 2]:
                    del self._buckets[k]
            return ok
