"""Danmaku intelligence under load: ingest → triage → clustering → suggestions at a given rate.

    python -m benchmarks.danmaku [--rate 2000] [--seconds 30] [--json]
    (same as: liveroom bench danmaku --rate 2000 --seconds 30 --json)

Targets on a 2-core machine: ≥ 2,000 messages/s ingested without loss, suggestion p95 ≤ 200 ms.
"""

from __future__ import annotations

import argparse
import json
import sys

from sim.danmaku_bench import bench_danmaku, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--merchant", default="demo")
    ap.add_argument("--data-dir", default=None, help="LIVEROOM data dir with the merchant's KB (default: settings)")
    ap.add_argument("--unique", type=float, default=0.05, help="share of never-seen-before questions")
    ap.add_argument("--replies", type=float, default=10.0, help="individual text replies per second")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = bench_danmaku(
        a.rate, a.seconds, merchant=a.merchant, data_dir=a.data_dir, unique=a.unique, replies_per_s=a.replies
    )
    print(json.dumps(res, ensure_ascii=False) if a.json else summary(res))
    ok = (
        res["dropped"] == 0
        and res["ingested_per_s"] >= 0.99 * a.rate
        and (res["suggestion_latency_ms"]["p95"] or 0) <= 200
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
