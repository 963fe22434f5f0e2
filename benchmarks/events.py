"""Event ingest throughput with real-time tag updates, and event→tag latency under load.

python -m benchmarks.events [--events 50000] [--viewers 2000] [--batch 500] [--url URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from sim.audience_bench import bench_events


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--viewers", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--url", default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = bench_events(a.events, a.viewers, a.batch, url=a.url, probes=a.probes)
    if a.json:
        print(json.dumps(res, ensure_ascii=False))
    else:
        print(
            f"{res['backend']}: {res['events']} events in {res['elapsed_s']}s = {res['events_per_s']} events/s "
            f"(batches of {res['batch']}, p95 {res['batch_ms_p95']} ms); event→tag p50 "
            f"{res['event_to_tag_ms_p50']} ms, p95 {res['event_to_tag_ms_p95']} ms under load"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
