"""Soak: an unattended show on an accelerated clock with the demo audience simulator, sampling RSS,
open file descriptors and asyncio task counts every show minute.

    python -m benchmarks.host_soak [--hours 1] [--speed 20] [--viewers 3000] [--json]

Runs the same code as ``liveroom host`` in a fresh data directory (the demo KB is imported there
first), then reports whether the resources stayed flat: the least-squares slope per show hour after
warm-up, and last vs first sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _prepare(data_dir: Path) -> None:
    from knowledge.embedder import UseEmbedder
    from knowledge.store import KnowledgeBase

    kb = KnowledgeBase(data_dir / "kb", UseEmbedder(threads=1))
    if kb.active_version("demo") is None:
        demo = ROOT / "knowledge" / "demo"
        files = sorted(p for p in demo.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
        kb.import_files("demo", files)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--viewers", type=int, default=3000)
    ap.add_argument("--data-dir", default=None, help="reuse a data dir (default: a fresh temp dir)")
    ap.add_argument("--rundown", default=str(ROOT / "knowledge" / "demo" / "rundown.yaml"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    data_dir = Path(a.data_dir or tempfile.mkdtemp(prefix="liveroom-soak-"))
    os.environ["LIVEROOM_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("LIVEROOM_EMBED_THREADS", "1")
    _prepare(data_dir)

    from host.rundown import check_references, load_rundown
    from liveroom.commands.host import _run_show

    rd = load_rundown(a.rundown)
    res = asyncio.run(
        _run_show(
            rd,
            Path(a.rundown).name,
            "demo",
            a.hours,
            a.speed,
            "soak",
            a.viewers,
            7,
            True,
            False,
            False,
            None,
            False,
            60.0,
            True,
            check_references,
        )
    )
    r = res["resources"]
    flat = {
        "rss_mb_growth": round(r["rss_mb"]["last"] - r["rss_mb"]["first"], 1),
        "rss_mb_slope_per_hour": r["rss_mb"]["slope_per_hour"],
        "fds_first_last_max": [r["fds"]["first"], r["fds"]["last"], r["fds"]["max"]],
        "tasks_first_last_max": [r["tasks"]["first"], r["tasks"]["last"], r["tasks"]["max"]],
        "threads_first_last_max": [r["threads"]["first"], r["threads"]["last"], r["threads"]["max"]],
    }
    out = {
        "show_hours": res["show_hours"],
        "wall_s": res["wall_s"],
        "speed": a.speed,
        "lines": res["lines"],
        "repeated_lines": res["repeated_lines"],
        "answered_clusters": res["answered_clusters"],
        "announcements": len(res["announcements"]),
        "alerts": res["alerts"],
        "reactions": res["reactions"],
        "suggestions": res["suggestions"],
        "suggestion_latency_ms": res["suggestion_latency_ms"],
        "replies": res["replies"],
        "coupons_issued": res["coupons_issued"],
        "segment_errors": res["segment_errors"],
        "danmaku": res["danmaku"],
        "funnel": res["funnel"],
        "simulator": res["simulator"],
        "flat": flat,
        "resources": r,
        "samples": [
            {k: s[k] for k in ("show_minute", "rss_mb", "fds", "tasks", "threads")} for s in res["resource_samples"]
        ],
    }
    print(json.dumps(out, ensure_ascii=False) if a.json else json.dumps(out, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
