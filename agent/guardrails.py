"""Checks every outgoing sentence passes, whatever produced it (fast path, LLM, host script).

``check_sentence`` is the historical entry point; it delegates to the one claim checker,
``agent.claims.ClaimChecker`` (compliance, actions, echo, contact, medical, ranking, products, numbers,
politics/religion, other viewers, prompt leaks). Pass ``ctx`` to give it the whole turn; without it the
context is built from the positional arguments.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agent.claims import ClaimChecker, ClaimContext, default_checker
from agent.claims import leaks as _leaks
from agent.messages import ToolCallRecord
from knowledge.schema import Fact

AI_LABEL = "AI生成"
_COMPLIANCE_RULES = ("absolute", "medical", "scarcity", "price")


@dataclass
class SentenceCheck:
    text: str  # possibly rewritten; "" = dropped
    flags: list[str]


def data_records(data_texts: Sequence[str]) -> list[ToolCallRecord]:
    """Tool records from the JSON texts callers used to pass as ``data_texts`` (ledger results become
    ``issue_coupon`` records, so a coupon the ledger really issued backs "已经给你发了")."""
    out: list[ToolCallRecord] = []
    for t in data_texts:
        try:
            obj = json.loads(t)
        except (TypeError, ValueError):
            obj = None
        if isinstance(obj, dict) and "code" in obj and "ok" in obj:
            out.append(ToolCallRecord(name="issue_coupon", arguments={}, result=obj, ok=True))
        else:
            out.append(ToolCallRecord(name="data", arguments={}, result=t, ok=True))
    return out


def check_sentence(
    sentence: str,
    facts: Sequence[Fact] = (),
    question: str = "",
    secret_texts: Sequence[str] = (),
    real_stock: int | None = None,
    data_texts: Sequence[str] = (),
    *,
    ctx: ClaimContext | None = None,
    checker: ClaimChecker | None = None,
) -> SentenceCheck:
    """``data_texts``: real data besides KB facts that may ground numbers (e.g. the coupon the ledger
    just issued). ``ctx`` (the whole turn) replaces the positional arguments when given."""
    if ctx is None:
        ctx = ClaimContext(
            question=question,
            facts=tuple(facts),
            tool_calls=data_records(data_texts),
            secrets=tuple(secret_texts),
            real_stock=real_stock,
        )
    v = (checker or default_checker()).check(sentence, ctx)
    flags = list(v.flags)
    for f in v.flags:  # the flag names earlier callers and dashboards know
        parts = f.split(":", 2)
        if len(parts) == 3 and parts[1] in _COMPLIANCE_RULES and parts[2] and not parts[2].startswith("cure"):
            flags.append(f"compliance:{parts[1]}:{parts[2]}")
        elif parts[1:2] == ["number"]:
            flags.append("ungrounded_number")
        elif parts[1:2] == ["prompt_leak"]:
            flags.append("prompt_leak")
    return SentenceCheck(v.text, list(dict.fromkeys(flags)))


def leaks(text: str, secret_texts: list[str], window: int = 12) -> bool:
    """True when ``text`` repeats any 12-character run of a secret (the system prompt)."""
    return _leaks(text, secret_texts, window)


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
