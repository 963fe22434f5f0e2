"""A/B experiments on copy, coupon strategy and push time.

* Assignment is deterministic and sticky: a viewer's arm is ``sha256(salt:viewer)`` mapped onto the
  weights, recorded the first time it is used; later calls return the recorded arm even if the weights
  were changed since.
* Events (the one taxonomy, ``audience/metrics.py``): exposures (a push sent, a pop-up shown) and
  clicks / conversions. Clients post them to ``POST /api/experiments/{id}/events``, or as behaviour
  events (``POST /api/events``, ``/api/rooms/{room}/room-events``): an ``exposure`` whose
  ``campaign_id`` is the experiment's tag (``ab:<id>``) is an exposure, and the exposed viewer's first
  ``product_click`` and first ``purchase`` within the attribution window after their first exposure
  are the click and the conversion (on the experiment's skus when it names any; an event carrying
  another experiment's tag in ``campaign_id`` is not counted). An ``enter`` is a visit, never a click.
* Metrics are per viewer: CTR = clicked / exposed viewers, CVR = converted / exposed viewers (and
  conversions per click for reference), each with a Wilson interval; every arm is compared with the
  control (two-proportion z-test, Newcombe interval of the difference, Holm-adjusted p) plus a chi-square
  test across all arms and a sample-ratio-mismatch check.
* Stop rule (fixed horizon with a Haybittle–Peto early stop): keep going until every arm has
  ``min_exposures``; stop early only if an arm differs from control at p < ``early_stop_p`` (0.001);
  otherwise decide when every arm reaches the planned sample size (from baseline rate, minimum lift,
  alpha, power): the best arm if its Holm-adjusted p < alpha, else "no difference". A sample-ratio
  mismatch (p < 0.001) stops the test as broken.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from audience import metrics
from copywriting import stats
from copywriting.schema import ID_PATTERN, Angle
from copywriting.store import CopyStore
from core.errors import NotFound

Kind = Literal["exposure", "click", "conversion"]


class PushTiming(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["active_hours", "fixed"] = "active_hours"
    lead_minutes: int = Field(30, ge=0, le=24 * 60)  # before the product's segment / the show


class VariantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,32}$")
    weight: float = Field(1.0, gt=0)
    angle: Angle | None = None  # copy: force this angle (None = chosen per profile)
    use_llm: bool | None = None  # copy: model-written (True) vs template (False); None = the campaign's choice
    coupon: str = Field("auto", max_length=64)  # coupon strategy: auto | none | a coupon campaign id
    push: PushTiming = Field(default_factory=PushTiming)


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment_id: str = Field(pattern=ID_PATTERN)
    merchant: str = Field("demo", pattern=ID_PATTERN)
    title: str = Field("", max_length=128)
    variants: list[VariantSpec] = Field(min_length=2, max_length=10)
    control: str | None = None  # default: the first variant
    primary_metric: Literal["ctr", "cvr"] = "ctr"
    alpha: float = Field(0.05, gt=0, lt=0.5)
    power: float = Field(0.8, gt=0.5, lt=1)
    baseline: float | None = Field(None, gt=0, lt=1)  # expected control rate (default: observed)
    min_lift: float = Field(0.2, gt=0, le=10)  # smallest relative lift worth detecting
    min_exposures: int = Field(200, ge=1)
    early_stop_p: float = Field(0.001, gt=0, lt=0.05)
    window_hours: float = Field(24.0, gt=0, le=24 * 30)
    click_events: list[str] = Field(default_factory=lambda: list(metrics.CLICK_EVENTS))
    conversion_events: list[str] = Field(default_factory=lambda: list(metrics.CONVERSION_EVENTS))
    skus: list[str] = Field(default_factory=list)
    salt: str | None = None

    @field_validator("click_events", "conversion_events")
    @classmethod
    def _taxonomy(cls, v: list[str]) -> list[str]:
        # an entry is a visit, not a click (older specs listed it: dropped, not refused, so they still load)
        v = [t for t in v if t not in (metrics.ENTER, metrics.EXPOSURE)]
        bad = sorted(set(v) - set(metrics.EVENT_TYPES))
        if bad or not v:
            raise ValueError(f"event types must be among {list(metrics.EVENT_TYPES)} (not enter/exposure), got {bad}")
        return v

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not a variant")
        return self

    @property
    def control_name(self) -> str:
        return self.control or self.variants[0].name

    def variant(self, name: str) -> VariantSpec:
        return next(v for v in self.variants if v.name == name)

    @property
    def tag(self) -> str:
        """Put this in the ``campaign_id`` of behaviour events to attribute them explicitly."""
        return f"ab:{self.experiment_id}"[:64]


def bucket(salt: str, viewer_id: str) -> float:
    """A uniform number in [0, 1) fixed by (salt, viewer)."""
    h = hashlib.sha256(f"{salt}:{viewer_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def pick(spec: ExperimentSpec, viewer_id: str) -> str:
    u = bucket(spec.salt or spec.experiment_id, viewer_id)
    total = sum(v.weight for v in spec.variants)
    acc = 0.0
    for v in spec.variants:
        acc += v.weight / total
        if u < acc:
            return v.name
    return spec.variants[-1].name


class UnknownExperiment(NotFound):
    code = "unknown_experiment"


class Experiments:
    def __init__(self, store: CopyStore, audience_engine: Any = None, clock=time.time):
        self.store = store
        self.audience_engine = audience_engine  # where behaviour events are (for attribution)
        self.clock = clock

    def create(self, spec: ExperimentSpec | dict) -> tuple[ExperimentSpec, str]:
        spec = spec if isinstance(spec, ExperimentSpec) else ExperimentSpec.model_validate(spec)
        state = self.store.put_experiment(spec.merchant, spec.experiment_id, spec.model_dump(mode="json"))
        return spec, state

    def get(self, merchant: str, eid: str) -> ExperimentSpec:
        row = self.store.get_experiment(merchant, eid)
        if row is None:
            raise UnknownExperiment(f"unknown experiment {eid!r} for merchant {merchant!r}")
        return ExperimentSpec.model_validate(row["spec"])

    def status(self, merchant: str, eid: str) -> str:
        row = self.store.get_experiment(merchant, eid)
        if row is None:
            raise UnknownExperiment(f"unknown experiment {eid!r}")
        return row["status"]

    def reweight(self, merchant: str, eid: str, weights: dict[str, float]) -> ExperimentSpec:
        """Change the split for new viewers (assigned viewers keep their arm)."""
        spec = self.get(merchant, eid)
        d = spec.model_dump(mode="json")
        for v in d["variants"]:
            if v["name"] in weights:
                v["weight"] = weights[v["name"]]
        spec = ExperimentSpec.model_validate(d)
        self.store.update_experiment(merchant, eid, spec=spec.model_dump(mode="json"))
        return spec

    def assign(
        self, merchant: str, eid: str, viewer_ids: list[str], spec: ExperimentSpec | None = None
    ) -> dict[str, str]:
        spec = spec or self.get(merchant, eid)
        known = self.store.assignments_of(merchant, eid, viewer_ids)
        new = {v: pick(spec, v) for v in viewer_ids if v not in known}
        if new:
            known.update(self.store.add_assignments(merchant, eid, new))
        return known

    def record(self, merchant: str, eid: str, events: list[dict]) -> dict:
        """Events ``{"event_id", "viewer_id", "kind": exposure|click|conversion, "ts"?, "value"?, "variant"?}``;
        idempotent by event id. The arm is the viewer's assignment (assigned now if new)."""
        spec = self.get(merchant, eid)
        errors, good = [], []
        for i, e in enumerate(events):
            if not isinstance(e, dict) or not e.get("event_id") or not e.get("viewer_id"):
                errors.append({"index": i, "error": "event_id and viewer_id are required"})
                continue
            if e.get("kind") not in ("exposure", "click", "conversion"):
                errors.append({"index": i, "error": "kind must be exposure, click or conversion"})
                continue
            good.append((i, e))
        arms = self.assign(merchant, eid, sorted({str(e["viewer_id"]) for _, e in good}), spec)
        rows = []
        for i, e in good:
            vid = str(e["viewer_id"])
            if e.get("variant") and e["variant"] != arms[vid]:
                errors.append({"index": i, "error": f"viewer {vid!r} is in arm {arms[vid]!r}, not {e['variant']!r}"})
                continue
            rows.append(
                {
                    "event_id": str(e["event_id"])[:128],
                    "experiment_id": eid,
                    "viewer_id": vid,
                    "variant": arms[vid],
                    "kind": e["kind"],
                    "ts": float(e.get("ts") or self.clock()),
                    "value": e.get("value"),
                    "source": "api",
                }
            )
        accepted = self.store.add_events(merchant, rows)
        return {"accepted": accepted, "duplicates": len(rows) - accepted, "rejected": len(errors), "errors": errors}

    # --- attribution from the behaviour events ---------------------------------------------------
    def attribute(self, merchant: str, spec: ExperimentSpec) -> int:
        """Derive click / conversion rows from the audience events of exposed viewers (idempotent)."""
        if self.audience_engine is None:
            return 0
        try:
            from audience import models as am
        except ImportError:  # pragma: no cover
            return 0
        from sqlalchemy import inspect, select

        if not inspect(self.audience_engine).has_table(am.events.name):
            return 0
        added = self._exposures_from_events(merchant, spec)
        rows = self.store.events(merchant, spec.experiment_id)
        first_exp: dict[str, tuple[float, str]] = {}
        for r in rows:
            if r.kind == "exposure" and (r.viewer_id not in first_exp or r.ts < first_exp[r.viewer_id][0]):
                first_exp[r.viewer_id] = (r.ts, r.variant)
        if not first_exp:
            return added
        win = spec.window_hours * 3600
        types = set(spec.click_events) | set(spec.conversion_events)
        e = am.events
        lo = min(t for t, _ in first_exp.values())
        hi = max(t for t, _ in first_exp.values()) + win
        ids = sorted(first_exp)
        found: dict[tuple[str, str], tuple[float, str, float | None]] = {}
        with self.audience_engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = select(
                    e.c.viewer_id, e.c.type, e.c.ts, e.c.sku, e.c.campaign_id, e.c.amount_fen, e.c.event_id
                ).where(
                    e.c.merchant == merchant,
                    e.c.viewer_id.in_(ids[i : i + 500]),
                    e.c.type.in_(sorted(types)),
                    e.c.ts >= lo,
                    e.c.ts <= hi,
                )
                for ev in conn.execute(q):
                    t0, _ = first_exp[ev.viewer_id]
                    if not (t0 <= ev.ts <= t0 + win):
                        continue
                    if ev.campaign_id and ev.campaign_id.startswith("ab:") and ev.campaign_id != spec.tag:
                        continue
                    if spec.skus and ev.type != "enter" and ev.sku not in spec.skus:
                        continue
                    kind = "conversion" if ev.type in spec.conversion_events else "click"
                    key = (ev.viewer_id, kind)
                    if key not in found or ev.ts < found[key][0]:
                        value = ev.amount_fen / 100 if ev.amount_fen is not None else None
                        found[key] = (ev.ts, ev.event_id, value)
        new = [
            {
                "event_id": f"ev:{spec.experiment_id}:{kind}:{vid}"[:128],
                "experiment_id": spec.experiment_id,
                "viewer_id": vid,
                "variant": first_exp[vid][1],
                "kind": kind,
                "ts": ts,
                "value": value,
                "source": "events",
            }
            for (vid, kind), (ts, _eid, value) in found.items()
        ]
        return added + self.store.add_events(merchant, new)

    def _exposures_from_events(self, merchant: str, spec: ExperimentSpec) -> int:
        """``exposure`` behaviour events tagged with the experiment (``campaign_id`` = its tag) are its
        exposures, each in the viewer's arm (idempotent by event id)."""
        from sqlalchemy import select

        from audience import models as am

        e = am.events
        q = select(e.c.event_id, e.c.viewer_id, e.c.ts).where(
            e.c.merchant == merchant, e.c.type == metrics.EXPOSURE, e.c.campaign_id == spec.tag
        )
        with self.audience_engine.connect() as conn:
            found = list(conn.execute(q))
        if not found:
            return 0
        arms = self.assign(merchant, spec.experiment_id, sorted({r.viewer_id for r in found}), spec)
        rows = [
            {
                "event_id": f"ev:{spec.experiment_id}:{r.event_id}"[:128],
                "experiment_id": spec.experiment_id,
                "viewer_id": r.viewer_id,
                "variant": arms[r.viewer_id],
                "kind": "exposure",
                "ts": r.ts,
                "value": None,
                "source": "events",
            }
            for r in found
        ]
        return self.store.add_events(merchant, rows)

    # --- the report ----------------------------------------------------------------------------
    def report(self, merchant: str, eid: str, attribute: bool = True) -> dict:
        spec = self.get(merchant, eid)
        attributed = self.attribute(merchant, spec) if attribute else 0
        rows = self.store.events(merchant, eid)
        exposed: dict[str, set[str]] = defaultdict(set)
        clicked: dict[str, set[str]] = defaultdict(set)
        converted: dict[str, set[str]] = defaultdict(set)
        revenue: dict[str, float] = defaultdict(float)
        for r in rows:
            {"exposure": exposed, "click": clicked, "conversion": converted}[r.kind][r.variant].add(r.viewer_id)
            if r.kind == "conversion" and r.value:
                revenue[r.variant] += r.value
        names = [v.name for v in spec.variants]
        counts = {}
        for n in names:
            ex = exposed[n]
            counts[n] = {
                "exposed": len(ex),
                "clicked": len(clicked[n] & ex),
                "converted": len(converted[n] & ex),
                "converted_after_click": len(converted[n] & clicked[n] & ex),
            }
        return build_report(spec, counts, {n: revenue[n] for n in names}, attributed, self.status(merchant, eid))

    def stop(self, merchant: str, eid: str) -> None:
        self.store.update_experiment(merchant, eid, status="stopped")


def build_report(
    spec: ExperimentSpec,
    counts: dict[str, dict[str, int]],
    revenue: dict[str, float] | None = None,
    attributed: int = 0,
    status: str = "running",
) -> dict:
    """The report from per-arm viewer counts (pure: the statistics tests call this directly)."""
    names = [v.name for v in spec.variants]
    ctrl = spec.control_name
    metric_key = {"ctr": "clicked", "cvr": "converted"}
    variants = []
    for n in names:
        c = counts.get(n, {"exposed": 0, "clicked": 0, "converted": 0, "converted_after_click": 0})
        ex = c["exposed"]
        row: dict[str, Any] = {
            "name": n,
            "control": n == ctrl,
            "exposed": ex,
            "ctr": stats.RateSummary.of(c["clicked"], ex).dump(),
            "cvr": stats.RateSummary.of(c["converted"], ex).dump(),
            "conversions_per_click": stats.RateSummary.of(c.get("converted_after_click", 0), c["clicked"]).dump(),
        }
        if revenue is not None:
            row["revenue"] = round(revenue.get(n, 0.0), 2)
        variants.append(row)
    c0 = counts.get(ctrl, {"exposed": 0, "clicked": 0, "converted": 0})
    for row in variants:
        if row["control"]:
            continue
        c = counts.get(row["name"], {"exposed": 0, "clicked": 0, "converted": 0})
        row["vs_control"] = {}
        for metric, key in metric_key.items():
            z, p = stats.ztest(c[key], c["exposed"], c0[key], c0["exposed"])
            lo, hi = stats.newcombe(c[key], c["exposed"], c0[key], c0["exposed"])
            r1 = c[key] / c["exposed"] if c["exposed"] else 0.0
            r0 = c0[key] / c0["exposed"] if c0["exposed"] else 0.0
            row["vs_control"][metric] = {
                "diff": round(r1 - r0, 6),
                "diff_ci": [round(lo, 6), round(hi, 6)],
                "lift": round((r1 - r0) / r0, 4) if r0 else None,
                "z": round(z, 4),
                "p": p,
            }
    others = [r for r in variants if not r["control"]]
    for metric in metric_key:
        adj = stats.holm([r["vs_control"][metric]["p"] for r in others])
        for r, a in zip(others, adj):
            r["vs_control"][metric]["p_holm"] = a
    primary = spec.primary_metric
    key = metric_key[primary]
    chi, chi_p = stats.chi2(
        [counts.get(n, {}).get(key, 0) for n in names], [counts.get(n, {}).get("exposed", 0) for n in names]
    )
    srm_p = stats.srm([counts.get(n, {}).get("exposed", 0) for n in names], [v.weight for v in spec.variants])
    base = spec.baseline
    if base is None:
        base = (c0[key] / c0["exposed"]) if c0["exposed"] else None
    planned = stats.sample_size(base, spec.min_lift, spec.alpha, spec.power) if base else None
    decision = stop_rule(spec, variants, planned, srm_p)
    return {
        "experiment_id": spec.experiment_id,
        "merchant": spec.merchant,
        "status": status,
        "primary_metric": primary,
        "control": ctrl,
        "variants": variants,
        "overall": {"metric": primary, "chi2": round(chi, 4), "p": chi_p},
        "sample_ratio_mismatch": {"p": srm_p, "suspect": srm_p < 0.001},
        "plan": {
            "baseline": base,
            "min_lift": spec.min_lift,
            "alpha": spec.alpha,
            "power": spec.power,
            "per_variant": planned,
            "min_exposures": spec.min_exposures,
            "early_stop_p": spec.early_stop_p,
        },
        "decision": decision,
        "attributed_events": attributed,
    }


def stop_rule(spec: ExperimentSpec, variants: list[dict], planned: int | None, srm_p: float) -> dict:
    metric = spec.primary_metric
    n_min = min(r["exposed"] for r in variants)
    ctrl_rate = next(r for r in variants if r["control"])[metric]["rate"]
    others = [r for r in variants if not r["control"]]
    if n_min >= spec.min_exposures and srm_p < 0.001:
        return {
            "stop": True,
            "reason": "sample_ratio_mismatch",
            "winner": None,
            "detail": "exposures don't match the planned split; check assignment and logging",
        }
    if n_min < spec.min_exposures:
        return {
            "stop": False,
            "reason": "collecting",
            "winner": None,
            "detail": f"{n_min} < {spec.min_exposures} exposures in the smallest arm",
        }
    best = max(others, key=lambda r: r[metric]["rate"])
    bp = best["vs_control"][metric]
    early = [r for r in others if r["vs_control"][metric]["p"] < spec.early_stop_p]
    if early:
        top = max(early, key=lambda r: abs(r[metric]["rate"] - ctrl_rate))
        better = top[metric]["rate"] > ctrl_rate
        return {
            "stop": True,
            "reason": "early_significant",
            "winner": top["name"] if better else spec.control_name,
            "detail": f"{top['name']} vs control p={top['vs_control'][metric]['p']:.2g} < {spec.early_stop_p}",
        }
    if planned is not None and n_min >= planned:
        if bp["p_holm"] < spec.alpha and best[metric]["rate"] > ctrl_rate:
            return {
                "stop": True,
                "reason": "significant",
                "winner": best["name"],
                "detail": f"planned sample reached; {best['name']} p_holm={bp['p_holm']:.3g}",
            }
        worse = [r for r in others if r["vs_control"][metric]["p_holm"] < spec.alpha]
        if worse and all(r[metric]["rate"] < ctrl_rate for r in worse):
            return {
                "stop": True,
                "reason": "significant",
                "winner": spec.control_name,
                "detail": "planned sample reached; the control beats the other arms",
            }
        return {
            "stop": True,
            "reason": "no_difference",
            "winner": None,
            "detail": "planned sample reached without a significant difference",
        }
    return {
        "stop": False,
        "reason": "collecting",
        "winner": None,
        "detail": f"{n_min} of {planned or '?'} planned exposures per arm",
    }
