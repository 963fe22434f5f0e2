"""Copy on the real embedded model (Qwen2.5-Coder-1.5B via llama.cpp): a small sample, marked `model`.

Whatever the model writes, what comes out is checked: within the channel's limits, no compliance
violation, facts cited; a draft that fails twice is replaced by the template.
"""

from __future__ import annotations

import pytest

from copywriting import channels
from copywriting.schema import CopyRequest, Segment
from tests.support.model import serving_container

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def copy_service(demo_root, use_embedder):
    from copywriting.service import service_for

    with serving_container(demo_root, use_embedder) as (c, loop):
        yield service_for(c), loop


@pytest.mark.parametrize(
    "sku,segment,channel,angle",
    [
        ("SK-001", {"price_sensitivity": "high"}, "push", "price"),
        ("AP-004", {"price_sensitivity": "low", "spending_power": "high"}, "popup", "quality"),
    ],
)
def test_model_copy_is_checked_and_grounded(copy_service, sku, segment, channel, angle):
    svc, loop = copy_service
    p = loop.run_until_complete(
        svc.copy(CopyRequest(merchant="demo", sku=sku, segment=Segment(**segment), phase="pre", channel=channel))
    )
    assert p.angle == angle and p.attempts >= 1  # the model was asked
    assert p.compliance.ok and p.citations
    title = p.title if channel == "push" else None
    body = p.body if channel == "push" else p.text
    assert channels.length_issues(channel, "暖光优选", title, body) == []
    print(f"\n[{p.source}] {p.text!r} issues={p.issues}")
