"""Publish-with-proof figures (docs/regression.md).

    python -m benchmarks.regression [--products 0|2000] [--all] [--json]
    python -m benchmarks.regression --load [--viewers 100] [--seconds 30] [--pace 1.0] [--rounds 2] [--json]

Without ``--load``: generate the regression set of the demo catalog (``--products 0``) or of a synthetic
catalog of N products (the demo products re-combined under new names and skus, as benchmarks/retrieval.py
does; facts embedded with its ScaleEmbedder), then run it on the active version (one pass) and on a
draft that changes one price (the published side is cached, so only the draft is answered). Prints
cases, seconds and cases/s of each step. A big set is bounded like the console's runs (3000 cases:
everything the draft touches plus a fixed sample); ``--all`` runs every case.

With ``--load``: the WebSocket load benchmark (benchmarks/ws_load.py) against a real ``liveroom serve``,
in alternating windows — alone, then while the server runs the demo set through the console API (at
``--pace``) — and the ratio of the live answers' first-token latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def synthetic_products(n: int, seed: int = 7):
    from benchmarks.retrieval import ADJ
    from knowledge.schema import Catalog

    base = Catalog.model_validate_json((ROOT / "knowledge" / "demo" / "products.json").read_text("utf-8"))
    rnd = random.Random(seed)
    products = []
    for i in range(n):
        src = base.products[i % len(base.products)]
        tag = f"{rnd.choice(ADJ)}{rnd.choice(ADJ)}"
        products.append(
            src.model_copy(
                update={
                    "sku": f"SY-{i:06d}",
                    "name": f"{tag} {src.name}",
                    "aliases": [],
                    "price": round(src.price * rnd.uniform(0.6, 1.4), 1),
                    "list_price": None,
                    "stock": rnd.randint(0, 999),
                }
            )
        )
    return Catalog(merchant=base.merchant, products=products)


def bench_set(products: int, all_cases: bool) -> dict:
    from agent.core import AgentConfig
    from core.settings import Settings
    from knowledge.importers import parse_files
    from liveroom.container import Container
    from regression.cases import generate

    with tempfile.TemporaryDirectory() as tmp:
        c = Container(Settings(data_dir=Path(tmp), llm_autostart=False), AgentConfig(rate=(10**6, 1.0)))
        if products:
            from benchmarks.retrieval import ScaleEmbedder

            c.__dict__["embedder"] = ScaleEmbedder(c.embedder)
            catalog = synthetic_products(products)
        else:
            from evals.retrieval import DEMO

            catalog = parse_files(sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"}))
        m = "bench"
        t0 = time.perf_counter()
        c.kb.publish_catalog(m, catalog, "bench")  # writes the version's regression set (the build hook)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cases = generate(catalog, c.regression_cases.book)
        gen_s = time.perf_counter() - t0
        c.agent.prepare_sync(m)
        bound = None if all_cases else "default"
        t0 = time.perf_counter()
        active = c.regression.run(m, pace=0, max_cases=bound)
        run_s = time.perf_counter() - t0
        p = catalog.products[len(catalog.products) // 2]
        edited = catalog.model_copy(
            update={
                "products": [
                    x.model_copy(update={"price": round(x.price * 0.9, 1)}) if x.sku == p.sku else x
                    for x in catalog.products
                ]
            }
        )
        t0 = time.perf_counter()
        info = c.kb.build_draft(m, edited, "bench draft")
        draft_build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        draft = c.regression.run(m, info.version, pace=0, max_cases=bound)
        draft_s = time.perf_counter() - t0
        kinds: dict[str, int] = {}
        for x in cases:
            kinds[x.kind] = kinds.get(x.kind, 0) + 1
        return {
            "catalog": f"synthetic {products} products" if products else "demo",
            "products": len(catalog.products),
            "cases": len(cases),
            "by_kind": kinds,
            "build_s": round(build_s, 2),
            "generate_s": round(gen_s, 3),
            "generate_cases_per_s": round(len(cases) / gen_s) if gen_s else None,
            "run_active": {
                "cases": active["cases"],
                "sampled": active["sampled"],
                "seconds": round(run_s, 1),
                "cases_per_s": round(active["cases"] / run_s, 1),
                "accuracy": active["after"]["accuracy"],
                "refusals_ok": f"{active['refusals_ok']}/{active['after']['probes']}",
            },
            "run_draft_one_price": {
                "build_s": round(draft_build_s, 2),
                "cases": draft["cases"],
                "sampled": draft["sampled"],
                "seconds": round(draft_s, 1),
                "cases_per_s": round(draft["cases"] / draft_s, 1),
                "changed": sorted(x["id"] for x in draft["changed"]),
                "blocked": draft["blocked"],
            },
        }


# --- live answers while a run goes on ------------------------------------------------------------
async def _load(port: int, viewers: int, seconds: float, think: float) -> dict:
    from benchmarks.ws_load import pct, viewer

    url = f"ws://127.0.0.1:{port}/ws/rooms/bench"
    out: list = []
    errors: list = []
    ready: list[float] = []
    t0 = time.monotonic()
    until = t0 + seconds
    await asyncio.gather(*[viewer(url, i, until, think, 0.0, out, errors, ready) for i in range(viewers)])
    # as ws_load: the rate over the window after the last viewer connected (connecting is not answering)
    start = max(ready) if ready else t0
    steady = [a for a in out if start <= a[4] <= until]
    firsts = [a[1] for a in out if a[0] == "fast"]
    return {
        "answers": len(out),
        "answers_per_s": round(len(steady) / max(until - start, 1e-9), 1),
        "errors": len(errors),
        "busy": sum(1 for e in errors if e == "busy"),
        "p50_ms": pct(firsts, 50),
        "p95_ms": pct(firsts, 95),
        "mean_ms": round(sum(firsts) / len(firsts), 1) if firsts else None,
    }


def bench_load(viewers: int, seconds: float, think: float, pace: float, rounds: int = 2) -> dict:
    """``rounds`` × (live load alone, then the same load while a run goes on): alternating windows, so a
    neighbour's job on a shared machine lands on both sides as often as on one."""
    import os
    import statistics

    import httpx

    from agent.embedded import free_port
    from benchmarks.ws_load import start_server

    port = free_port()
    pairs: list[tuple[dict, dict, bool]] = []
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LIVEROOM_DATA_DIR": tmp}
        proc = start_server(Path(tmp), port, False)
        try:
            tok = subprocess.run(
                [sys.executable, "-m", "liveroom.cli", "console", "add-token", "--merchant", "demo"]
                + ["--name", "bench", "--role", "operator"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            token = next(w for w in tok.split() if len(w) > 30)
            api = f"http://127.0.0.1:{port}/console/api/m/demo"
            h = {"Authorization": f"Bearer {token}"}

            def job_state(job_id: str) -> dict:
                return httpx.get(f"{api}/regression/jobs/{job_id}", headers=h, timeout=30).json()

            # warm both sides (the first answers load the lexicon and the intent model)
            asyncio.run(_load(port, 10, 5, think))
            first = httpx.post(f"{api}/regression/runs", json={"pace": 0}, headers=h, timeout=30).json()
            while job_state(first["job_id"])["state"] == "running":
                time.sleep(0.5)  # caches the published version's answers: a run is one pass of the set
            for _ in range(rounds):
                alone = asyncio.run(_load(port, viewers, seconds, think))
                job = httpx.post(f"{api}/regression/runs", json={"pace": pace}, headers=h, timeout=30).json()
                t0 = time.monotonic()
                during = asyncio.run(_load(port, viewers, seconds, think))
                j = job_state(job["job_id"])
                pairs.append((alone, during, j["state"] == "running"))
                while j["state"] == "running":
                    time.sleep(0.5)
                    j = job_state(job["job_id"])
                runs.append(
                    {
                        "state": j["state"],
                        "cases": (j.get("result") or {}).get("cases"),
                        "seconds": round(time.monotonic() - t0, 1),
                    }
                )
        finally:
            proc.terminate()
            proc.wait(timeout=20)

    def ratio(k: str) -> float | None:
        rs = [d[k] / a[k] for a, d, _ in pairs if a.get(k) and d.get(k)]
        return round(statistics.median(rs), 3) if rs else None

    return {
        "viewers": viewers,
        "offered_per_s": round(viewers / think, 1),
        "seconds": seconds,
        "pace": pace,
        "rounds": [{"alone": a, "during_run": d, "run_still_going_at_end": g} for a, d, g in pairs],
        "runs": runs,
        "slowdown_p50": ratio("p50_ms"),  # median over the rounds of during / alone
        "slowdown_p95": ratio("p95_ms"),
        "slowdown_mean": ratio("mean_ms"),
        "throughput_ratio": ratio("answers_per_s"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=0, help="0: the demo catalog; N: a synthetic one")
    ap.add_argument("--all", action="store_true", help="run every case (no bound)")
    ap.add_argument("--load", action="store_true", help="live answers alone vs during a run")
    ap.add_argument("--viewers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--think", type=float, default=2.0)
    ap.add_argument("--pace", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=2, help="--load: alternating alone / during-a-run windows")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = bench_load(a.viewers, a.seconds, a.think, a.pace, a.rounds) if a.load else bench_set(a.products, a.all)
    print(json.dumps(res, ensure_ascii=False, indent=None if a.json else 1))


if __name__ == "__main__":
    main()
