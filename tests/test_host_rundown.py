"""Rundowns: shape validation with file:line errors, references against the KB and the ledger, the
24-hour loop timeline."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from host.rundown import (
    ClosingSegment,
    OpeningSegment,
    QASegment,
    RundownError,
    Timeline,
    check_references,
    load_rundown,
    parse_rundown,
)

DEMO = Path(__file__).resolve().parent.parent / "knowledge" / "demo" / "rundown.yaml"


def issues(text: str) -> list[str]:
    with pytest.raises(RundownError) as e:
        parse_rundown(text, "show.yaml")
    return [str(i) for i in e.value.issues]


def test_the_demo_rundown_is_valid():
    rd = load_rundown(DEMO)
    assert rd.loop and rd.opening() and rd.closing()
    assert "SK-001" in rd.skus() and "DEMO-ALL20" in rd.campaigns()


def test_malformed_yaml_names_the_line():
    out = issues("title: x\nsegments:\n  - {type: product, sku: SK-001, minutes: 3\n  - {type: qa}\n")
    assert len(out) == 1 and out[0].startswith("show.yaml:4: not valid YAML")


def test_every_problem_is_reported_with_its_line_and_field():
    text = """title: 测试
segments:
  - {type: opening, minutes: 2}
  - {type: product, minutes: 0}
  - {type: dance, minutes: 3}
  - type: coupon
    campaign: "bad id!"
    minutes: 1
    colour: red
"""
    out = issues(text)
    assert "show.yaml:4: segments[1].minutes: Input should be greater than 0" in out
    assert "show.yaml:4: segments[1].sku: required field is missing" in out
    assert any(o.startswith("show.yaml:5: segments[2]: unknown segment type 'dance'") for o in out)
    assert any(o.startswith("show.yaml:7: segments[3].campaign: use 1-64 letters") for o in out)
    assert "show.yaml:9: segments[3].colour: unknown field (check the spelling)" in out


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "segments:\n  - {type: qa, minutes: 2}\n  - {type: opening, minutes: 1}\n",
            "the opening segment must come first",
        ),
        ("segments:\n  - {type: qa, minutes: 2}\n", "a rundown needs at least one product segment"),
        (
            "segments:\n  - {type: closing, minutes: 1}\n  - {type: product, sku: A, minutes: 1}\n",
            "the closing segment must come last",
        ),
        ("", "the rundown is empty"),
        ("- just a list\n", "the rundown must be a mapping with 'segments'"),
        ("segments: []\n", "segments: List should have at least 1 item"),
        (
            "hours: 100\nsegments:\n  - {type: product, sku: A, minutes: 1}\n",
            "hours: Input should be less than or equal to 72",
        ),
    ],
)
def test_structural_rules(text, message):
    assert any(message in o for o in issues(text)), issues(text)


def test_missing_file():
    with pytest.raises(RundownError, match="file not found"):
        load_rundown("/nonexistent/rundown.yaml")


def test_references_to_missing_skus_and_campaigns():
    rd = load_rundown(DEMO)
    camp = lambda status="active": SimpleNamespace(status=status)  # noqa: E731
    skus = set(rd.skus()) - {"MU-001"}
    out = check_references(rd, skus, {"DEMO-ALL20": camp(), "DEMO-NEW5": camp("ended")}, "r.yaml")
    text = [str(i) for i in out]
    assert any("no product 'MU-001' in the knowledge base" in t for t in text)
    assert any("campaign 'DEMO-NEW5' is ended" in t for t in text)
    out = check_references(rd, set(rd.skus()), {}, "r.yaml")
    assert {i.path for i in out} >= {"segments[3].campaign", "segments[7].campaign", "reserve_coupons[0]"}
    assert check_references(rd, set(rd.skus()), None) == []  # no ledger: not checked


def test_timeline_loops_the_body_for_a_24_hour_show():
    rd = load_rundown(DEMO)
    slots = Timeline(rd, 0.0, 24).slots()
    assert isinstance(slots[0].segment, OpeningSegment) and slots[0].start == 0
    assert isinstance(slots[-1].segment, ClosingSegment) and slots[-1].end == pytest.approx(24 * 3600)
    for a, b in zip(slots, slots[1:]):
        assert b.start == pytest.approx(a.end)  # no gaps, no overlaps
    body = len(rd.body())
    assert max(s.loop for s in slots) >= 24 * 60 / sum(s.minutes for s in rd.body()) - 2
    assert sum(1 for s in slots if getattr(s.segment, "sku", None) == "SK-001") >= 30
    tail = slots[-2]
    assert isinstance(tail.segment, (QASegment,)) or tail.segment in rd.body()
    assert len(slots) > 30 * body


def test_a_non_looping_rundown_plays_once():
    rd = parse_rundown(
        "loop: false\nsegments:\n  - {type: product, sku: A, minutes: 2}\n  - {type: closing, minutes: 1}\n"
    )
    slots = Timeline(rd, 100.0, 5).slots()
    assert [s.segment.type for s in slots] == ["product", "closing"]
    assert slots[-1].end == pytest.approx(100 + 180)
