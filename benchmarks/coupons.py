"""Concurrent coupon claims against a budget (see sim.audience_bench.bench_coupons).

    python -m benchmarks.coupons [--claims 1000] [--budget 100] [--workers 4] [--url URL] [--json]

Without --url: a temporary SQLite file. With a PostgreSQL URL: a throwaway schema, dropped after.
Exit status 1 if more coupons than the budget were issued, any duplicate or over-limit coupon
exists, or a ledger invariant failed.
"""

from __future__ import annotations

import argparse
import json
import sys

from sim.audience_bench import bench_coupons


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4, help="processes (0 = threads in this process)")
    ap.add_argument("--threads", type=int, default=8, help="threads per worker")
    ap.add_argument("--url", default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = bench_coupons(a.claims, a.budget, a.workers, url=a.url, threads=a.threads)
    if a.json:
        print(json.dumps(res, ensure_ascii=False))
    else:
        print(
            f"{res['backend']}: {res['claims']} claims from {res['workers']} workers → issued {res['issued']}/"
            f"{res['budget']}, duplicates {res['duplicates']}, over limit {res['over_limit']}, "
            f"{res['elapsed_s']}s ({res['claims_per_s']} claims/s), ledger ok: {res['ledger_ok']}"
        )
    bad = res["issued"] > res["budget"] or res["duplicates"] or res["over_limit"] or not res["ledger_ok"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
