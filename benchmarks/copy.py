"""Benchmark: copy for a 5,000-viewer campaign, per viewer, grouped so similar viewers share a variant.

    python -m benchmarks.copy [--viewers 5000] [--channel push] [--no-llm] [--max-llm-groups N] [--json]

A seeded synthetic audience (sim.audience: viewers, coupon campaigns, one live session of behaviour
events → real-time profiles) in a temporary SQLite database, the demo catalog, and a pre-show campaign
for a 3-product rundown. Reports copies per second and model calls, first with templates only (the
grouping, profile, coupon, timing and storage cost), then on the configured LLM backend (the embedded
model by default). Without grouping a model call per viewer would be needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

SHOW = {
    "show_id": "bench-show",
    "start": "2030-01-01T20:00:00+08:00",
    "segments": [
        {"sku": "SK-001", "start": "2030-01-01T20:10:00+08:00"},
        {"sku": "MU-001", "start": "2030-01-01T20:40:00+08:00"},
        {"sku": "AP-001", "start": "2030-01-01T21:10:00+08:00"},
    ],
}
NOW = datetime(2030, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))


async def bench(
    viewers: int = 5000,
    channel: str = "push",
    use_llm: bool = True,
    max_llm_groups: int | None = None,
    seed: int = 7,
    workdir: Path | None = None,
) -> dict:
    from audience.service import AudienceService
    from copywriting.ab import Experiments
    from copywriting.batch import CampaignRunner, CampaignSpec
    from copywriting.generator import CopyWriter, patient
    from copywriting.store import CopyStore
    from evals.copy import demo_catalog
    from sim.audience import seed_demo

    tmp = Path(workdir or tempfile.mkdtemp(prefix="copy-bench-"))
    out: dict = {"viewers": viewers, "channel": channel, "phase": "pre", "products": 3}
    t = time.perf_counter()
    svc = AudienceService(f"sqlite:///{tmp / 'bench.db'}", synchronous="OFF")
    seeded = seed_demo(svc, viewers=viewers, seed=seed)
    out["seed_s"] = round(time.perf_counter() - t, 1)
    out["events"] = seeded.get("events")
    catalog = demo_catalog()
    writer = CopyWriter(lambda m: catalog, profiles=svc, ledger=svc, audience=svc)
    store = CopyStore(svc.engine)
    runner = CampaignRunner(writer, store, Experiments(store, svc.engine), svc)
    container = None
    try:
        tpl = await runner.run(
            CampaignSpec(campaign_id="bench-tpl", show=SHOW, channel=channel, use_llm=False), now=NOW, llm=None
        )
        out["templates"] = {k: tpl[k] for k in ("copies", "groups", "elapsed_s", "copies_per_s")}
        if use_llm:
            from core.settings import Settings
            from liveroom.container import Container

            container = Container(Settings(llm_autostart=False))
            t = time.perf_counter()
            llm = patient(await container.start_llm())
            out["llm_start_s"] = round(time.perf_counter() - t, 1)
            res = await runner.run(
                CampaignSpec(campaign_id="bench-llm", show=SHOW, channel=channel, max_llm_groups=max_llm_groups),
                now=NOW,
                llm=llm,
            )
            out["llm"] = {
                k: res[k]
                for k in (
                    "copies",
                    "groups",
                    "llm_groups",
                    "llm_calls",
                    "template_fallbacks",
                    "copies_by_source",
                    "elapsed_s",
                    "copies_per_s",
                )
            }
            out["llm"]["s_per_llm_call"] = round(res["elapsed_s"] / res["llm_calls"], 1) if res["llm_calls"] else None
            out["llm"]["calls_without_grouping"] = viewers
            groups = store.groups("demo", "bench-llm")
            out["sample"] = [
                {"viewers": g["viewers"], "angle": g["angle"], "source": g["source"], "text": g["piece"]["text"]}
                for g in sorted(groups, key=lambda g: -g["viewers"])[:8]
            ]
            out["all_compliant"] = all(g["piece"]["compliance"]["ok"] for g in groups)
    finally:
        if container is not None:
            await container.aclose()
        svc.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="copy campaign benchmark")
    ap.add_argument("--viewers", type=int, default=5000)
    ap.add_argument("--channel", default="push", choices=["push", "sms", "popup", "host"])
    ap.add_argument("--no-llm", action="store_true")
    ap.add_argument("--max-llm-groups", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = asyncio.run(bench(a.viewers, a.channel, not a.no_llm, a.max_llm_groups))
    if a.json:
        print(json.dumps(res, ensure_ascii=False))
        return 0
    print(
        f"copy benchmark: {res['viewers']} viewers, {res['channel']}, pre-show, 3 products "
        f"(seeded {res['events']} events in {res['seed_s']} s)"
    )
    t = res["templates"]
    print(
        f"  templates: {t['copies']} copies in {t['elapsed_s']} s = {t['copies_per_s']} copies/s, {t['groups']} groups"
    )
    if "llm" in res:
        lm = res["llm"]
        print(
            f"  embedded model: {lm['copies']} copies in {lm['elapsed_s']} s = {lm['copies_per_s']} copies/s; "
            f"{lm['llm_calls']} LLM calls for {lm['groups']} groups ({lm['s_per_llm_call']} s/call; "
            f"{lm['template_fallbacks']} groups fell back to templates) vs {lm['calls_without_grouping']} "
            f"calls without grouping"
        )
        for s in res["sample"]:
            print(f"    {s['viewers']:5d} viewers  {s['angle']:8s} {s['source']:8s} {s['text']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
