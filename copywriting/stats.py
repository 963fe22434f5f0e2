"""Statistics for A/B tests on rates (CTR, CVR), on scipy.

* ``wilson``: Wilson score interval for one proportion (good at small counts and rates near 0);
* ``newcombe``: Newcombe's hybrid score interval for a difference of two proportions (method 10);
* ``ztest``: two-sided pooled two-proportion z-test (equal to the 2×2 chi-square without continuity
  correction);
* ``chi2``: k×2 chi-square test of homogeneity across all variants;
* ``holm``: Holm–Bonferroni adjusted p-values for the comparisons against the control;
* ``sample_size``: viewers per variant to detect a relative lift at alpha / power (arcsine / Cohen's h);
* ``srm``: sample-ratio-mismatch test of the exposure split against the planned weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sst

from audience import metrics


def wilson(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """The audience layer's Wilson interval (one definition for funnel and A/B) at ``conf``."""
    return metrics.wilson(k, n, float(sst.norm.ppf(1 - (1 - conf) / 2)))


def newcombe(k1: int, n1: int, k2: int, n2: int, conf: float = 0.95) -> tuple[float, float]:
    """CI of p1 − p2 from the two Wilson intervals (Newcombe 1998, method 10)."""
    if n1 <= 0 or n2 <= 0:
        return (-1.0, 1.0)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, conf)
    l2, u2 = wilson(k2, n2, conf)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (lo, hi)


def ztest(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) for H0: p1 == p2, pooled variance."""
    if n1 <= 0 or n2 <= 0:
        return (0.0, 1.0)
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return (0.0, 1.0)
    z = (k1 / n1 - k2 / n2) / se
    return (z, float(2 * sst.norm.sf(abs(z))))


def chi2(successes: list[int], totals: list[int]) -> tuple[float, float]:
    """(statistic, p) of the k×2 test that all variants share one rate."""
    rows = [[k, n - k] for k, n in zip(successes, totals) if n > 0]
    if len(rows) < 2:
        return (0.0, 1.0)
    col = [sum(r[0] for r in rows), sum(r[1] for r in rows)]
    if 0 in col:
        return (0.0, 1.0)
    res = sst.chi2_contingency(rows, correction=False)
    return (float(res[0]), float(res[1]))


def holm(pvalues: list[float]) -> list[float]:
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adj[i] = running
    return adj


def cohens_h(p1: float, p2: float) -> float:
    return 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))


def sample_size(baseline: float, lift: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Viewers per variant to detect ``baseline`` → ``baseline·(1+lift)`` (two-sided, equal groups)."""
    p2 = min(0.999, baseline * (1 + lift))
    h = abs(cohens_h(baseline, p2))
    if h == 0:
        return 10**9
    za, zb = float(sst.norm.ppf(1 - alpha / 2)), float(sst.norm.ppf(power))
    return math.ceil(2 * ((za + zb) / h) ** 2)


def srm(observed: list[int], weights: list[float]) -> float:
    """p-value of a chi-square goodness-of-fit of the exposure counts to the planned split."""
    total = sum(observed)
    if total == 0 or len(observed) < 2:
        return 1.0
    w = sum(weights)
    expected = [total * x / w for x in weights]
    return float(sst.chisquare(observed, expected).pvalue)


@dataclass
class RateSummary:
    k: int
    n: int
    rate: float
    ci: tuple[float, float]

    @classmethod
    def of(cls, k: int, n: int, conf: float = 0.95) -> RateSummary:
        return cls(k, n, k / n if n else 0.0, wilson(k, n, conf))

    def dump(self) -> dict:
        return {
            "count": self.k,
            "n": self.n,
            "rate": round(self.rate, 6),
            "ci": [round(self.ci[0], 6), round(self.ci[1], 6)],
        }
