"""A/B testing: sticky deterministic assignment, statistics against known values (published examples
and scipy), the report and its stop rule, events and attribution from the behaviour events."""

from __future__ import annotations

import math
import time

import pytest
from scipy import stats as sst

from copywriting import stats
from copywriting.ab import Experiments, ExperimentSpec, bucket, build_report, pick
from copywriting.store import CopyStore
from tests.support.audience import backends, temp_engine, temp_service


@pytest.fixture(params=backends())
def backend(request) -> str:
    return request.param


@pytest.fixture()
def exps(backend, tmp_path):
    with temp_engine(backend, tmp_path, "copy.db") as engine:
        yield Experiments(CopyStore(engine))


def spec(**kw) -> ExperimentSpec:
    base = {"experiment_id": "exp1", "variants": [{"name": "A"}, {"name": "B"}]}
    return ExperimentSpec.model_validate({**base, **kw})


# --- assignment ------------------------------------------------------------------------------------
def test_assignment_is_deterministic_and_follows_the_weights():
    s = spec(variants=[{"name": "A", "weight": 1}, {"name": "B", "weight": 3}])
    first = {f"v{i}": pick(s, f"v{i}") for i in range(20_000)}
    assert first == {v: pick(s, v) for v in first}  # same viewer, same arm, every time
    share_b = sum(a == "B" for a in first.values()) / len(first)
    assert abs(share_b - 0.75) < 0.015
    # a different experiment (salt) splits independently of this one
    other = spec(experiment_id="exp2")
    both = sum(pick(other, v) == "A" and first[v] == "A" for v in first) / len(first)
    assert abs(both - 0.25 * 0.5) < 0.015
    assert 0 <= bucket("s", "v") < 1


def test_assignment_is_sticky_across_weight_changes(exps):
    assert exps.create(spec())[1] == "created"
    assert exps.create(spec())[1] == "exists"  # re-creating the same experiment is a no-op
    viewers = [f"v{i}" for i in range(2000)]
    before = exps.assign("demo", "exp1", viewers)
    exps.reweight("demo", "exp1", {"A": 1, "B": 9})
    after = exps.assign("demo", "exp1", viewers)
    assert after == before  # assigned viewers keep their arm
    newcomers = exps.assign("demo", "exp1", [f"n{i}" for i in range(2000)])
    assert sum(a == "B" for a in newcomers.values()) / 2000 > 0.85  # new viewers follow the new split
    with pytest.raises(ValueError):  # a different experiment under the same id is refused
        exps.create(spec(variants=[{"name": "A"}, {"name": "C"}]))


# --- statistics against known values ---------------------------------------------------------------
def test_wilson_interval_matches_newcombe_and_scipy():
    lo, hi = stats.wilson(81, 263)  # Newcombe (1998), example: 81/263 → 0.2553 to 0.3662
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    ci = sst.binomtest(81, 263).proportion_ci(method="wilson")
    assert math.isclose(lo, ci.low, rel_tol=1e-9) and math.isclose(hi, ci.high, rel_tol=1e-9)
    assert stats.wilson(0, 10)[0] == 0.0 and stats.wilson(10, 10)[1] == pytest.approx(1.0)


def test_difference_interval_matches_newcombe_method_10():
    lo, hi = stats.newcombe(56, 70, 48, 80)  # Newcombe (1998) Table II (a): 0.0524 to 0.3339
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_ztest_equals_the_chi_square_of_the_2x2_table():
    z, p = stats.ztest(56, 70, 48, 80)
    chi, pc, _, _ = sst.chi2_contingency([[56, 14], [48, 32]], correction=False)
    assert math.isclose(z * z, chi, rel_tol=1e-9) and math.isclose(p, pc, rel_tol=1e-9)
    assert round(p, 4) == 0.0080
    c3, p3 = stats.chi2([120, 150, 90], [2000, 2000, 2000])
    ref = sst.chi2_contingency([[120, 1880], [150, 1850], [90, 1910]], correction=False)
    assert math.isclose(c3, ref[0]) and math.isclose(p3, ref[1])


def test_sample_size_and_holm():
    # Cohen (1988) Table 6.4.1: h = 0.20, two-sided alpha .05, power .80 → n = 392 per group
    p1 = 0.5
    p2 = math.sin((2 * math.asin(math.sqrt(p1)) + 0.2) / 2) ** 2
    assert stats.sample_size(p1, p2 / p1 - 1) in (392, 393)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.srm([5000, 5000], [1, 1]) > 0.5 and stats.srm([5300, 4700], [1, 1]) < 1e-6


# --- the report and the stop rule ----------------------------------------------------------------
def counts(ex_a, ck_a, cv_a, ex_b, ck_b, cv_b):
    return {
        "A": {"exposed": ex_a, "clicked": ck_a, "converted": cv_a, "converted_after_click": cv_a},
        "B": {"exposed": ex_b, "clicked": ck_b, "converted": cv_b, "converted_after_click": cv_b},
    }


def test_report_numbers_and_decisions():
    s = spec(min_exposures=500, baseline=0.05, min_lift=0.3)
    r = build_report(s, counts(2000, 100, 20, 2000, 100, 21))
    a, b = r["variants"]
    assert a["ctr"]["rate"] == 0.05 and a["ctr"]["ci"] == pytest.approx(list(stats.wilson(100, 2000)), abs=1e-6)
    assert b["vs_control"]["ctr"]["p"] == pytest.approx(1.0)
    assert r["plan"]["per_variant"] == stats.sample_size(0.05, 0.3)
    assert not r["decision"]["stop"] and r["decision"]["reason"] == "collecting"

    assert build_report(s, counts(100, 5, 1, 100, 30, 2))["decision"]["reason"] == "collecting"  # < min_exposures
    early = build_report(s, counts(1000, 50, 5, 1000, 110, 9))["decision"]
    assert early["stop"] and early["reason"] == "early_significant" and early["winner"] == "B"
    n = r["plan"]["per_variant"]
    done = build_report(s, counts(n, int(n * 0.05), 0, n, int(n * 0.066), 0))["decision"]
    assert done["stop"] and done["reason"] == "significant" and done["winner"] == "B"
    flat = build_report(s, counts(n, int(n * 0.05), 0, n, int(n * 0.051), 0))["decision"]
    assert flat["stop"] and flat["reason"] == "no_difference" and flat["winner"] is None
    srm = build_report(s, counts(3000, 150, 0, 2000, 100, 0))
    assert srm["sample_ratio_mismatch"]["suspect"] and srm["decision"]["reason"] == "sample_ratio_mismatch"
    cvr = build_report(spec(primary_metric="cvr", min_exposures=10), counts(1000, 100, 10, 1000, 100, 40))
    assert cvr["decision"]["winner"] == "B" and cvr["overall"]["metric"] == "cvr"


def test_events_and_report_end_to_end(exps):
    exps.create(spec(min_exposures=50))
    viewers = [f"v{i}" for i in range(400)]
    arms = exps.assign("demo", "exp1", viewers)
    now = time.time()
    evs = [{"event_id": f"x{v}", "viewer_id": v, "kind": "exposure", "ts": now} for v in viewers]
    evs += [
        {"event_id": f"c{v}", "viewer_id": v, "kind": "click", "ts": now + 5}
        for i, v in enumerate(viewers)
        if i % (4 if arms[v] == "B" else 10) == 0
    ]
    res = exps.record("demo", "exp1", evs)
    assert res["accepted"] == len(evs) and res["rejected"] == 0
    again = exps.record(
        "demo",
        "exp1",
        evs[:10]
        + [
            {"event_id": "bad", "viewer_id": "v1", "kind": "view"},
            {"event_id": "w", "viewer_id": "v1", "kind": "click", "variant": "B" if arms["v1"] == "A" else "A"},
        ],
    )
    assert again["duplicates"] == 10 and again["rejected"] == 2
    rep = exps.report("demo", "exp1")
    a, b = rep["variants"]
    assert a["exposed"] + b["exposed"] == 400
    assert b["ctr"]["rate"] > a["ctr"]["rate"]
    assert rep["status"] == "running"
    exps.stop("demo", "exp1")
    assert exps.report("demo", "exp1")["status"] == "stopped"


def test_clicks_and_conversions_are_attributed_from_behaviour_events(backend, tmp_path):
    with temp_service(backend, tmp_path, synchronous="OFF") as svc:
        ex = Experiments(CopyStore(svc.engine), svc.engine)
        ex.create(spec(experiment_id="att", window_hours=2, skus=["SK-001"]))
        now = time.time()
        vids = ["a1", "a2", "a3", "a4"]
        ex.record(
            "demo", "att", [{"event_id": f"x{v}", "viewer_id": v, "kind": "exposure", "ts": now - 3600} for v in vids]
        )
        svc.ingest(
            "demo",
            [
                # every viewer enters the room after the exposure: a visit, never a click (issue 19)
                *({"event_id": f"in-{v}", "viewer_id": v, "type": "enter", "ts": now - 7300} for v in vids),
                *({"event_id": f"in2-{v}", "viewer_id": v, "type": "enter", "ts": now - 3100} for v in vids),
                {"event_id": "e1", "viewer_id": "a1", "type": "product_click", "sku": "SK-001", "ts": now - 3000},
                {
                    "event_id": "e2",
                    "viewer_id": "a1",
                    "type": "purchase",
                    "sku": "SK-001",
                    "amount": 129,
                    "ts": now - 2900,
                },
                # before the exposure
                {"event_id": "e3", "viewer_id": "a2", "type": "product_click", "sku": "SK-001", "ts": now - 7200},
                {"event_id": "e4", "viewer_id": "a3", "type": "product_click", "sku": "SK-001", "ts": now - 3000},
                {
                    "event_id": "e5",
                    "viewer_id": "a3",
                    "type": "purchase",
                    "sku": "SK-999",
                    "amount": 9,
                    "ts": now - 2900,
                },
                {
                    "event_id": "e6",
                    "viewer_id": "a4",
                    "type": "product_click",
                    "sku": "SK-001",
                    "ts": now - 3000,
                    "campaign_id": "ab:other",
                },
            ],
        )
        rep = ex.report("demo", "att")
        assert rep["attributed_events"] == 3  # a1 click + conversion, a3 click (other sku's purchase not counted)
        tot = {k: sum(v[k]["count"] for v in rep["variants"]) for k in ("ctr", "cvr")}
        assert tot == {"ctr": 2, "cvr": 1}
        assert sum(v["revenue"] for v in rep["variants"]) == 129
        assert ex.report("demo", "att")["attributed_events"] == 0  # idempotent
