"""The agent on the real embedded model (Qwen2.5-Coder-1.5B through llama.cpp's server).

A small sample, marked `model`: the tool call is made, the answer is grounded, and missing facts are
refused rather than invented. Skipped only if the model was not provisioned.
"""

from __future__ import annotations

import asyncio

import pytest

from agent.claims import numbers
from agent.core import AgentConfig
from agent.messages import ViewerMessage
from tests.support.model import serving_container

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def llm_container(demo_root, use_embedder):
    config = AgentConfig(planner="llm", llm_timeout_s=90, llm_writes=True)
    with serving_container(demo_root, use_embedder, config) as (c, loop):
        loop.run_until_complete(c.agent.warm_up("demo"))
        yield c, loop


def _ask(llm_container, text, viewer):
    c, loop = llm_container
    return loop.run_until_complete(c.agent.answer(ViewerMessage(merchant="demo", viewer_id=viewer, text=text)))


def test_recommendation_goes_through_the_model_with_tools_and_stays_grounded(llm_container):
    a = _ask(llm_container, "有什么适合我的口红推荐吗", "m1")
    assert a.path == "llm", a
    assert a.answer and len(a.answer) <= 100
    names = [t.name for t in a.tool_calls]
    assert names[0] == "search_products"
    # the model planned through the JSON-schema tool choice; every call it made was validated
    assert all(t.ok or "error" in t.result for t in a.tool_calls if t.by == "llm")
    c, _ = llm_container
    facts = [c.kb.snapshot("demo").fact(x.fact_id) for x in a.citations]
    assert a.citations and all(facts)
    snap_facts = [c.kb.snapshot("demo").fact(h["fact_id"]) for h in a.tool_calls[0].result["hits"]]
    allowed = set().union(*(numbers(f.text) for f in snap_facts if f))
    assert numbers(a.answer) <= allowed


def test_missing_facts_are_refused_even_with_the_model_running(llm_container):
    a = _ask(llm_container, "姜枣茶孕妇能喝吗", "m2")
    assert a.refused and "主播" in a.answer


def test_model_failure_falls_back_to_facts(llm_container):
    c, loop = llm_container
    real = c.agent.llm
    from agent.llm import LLMClient

    c.agent.llm = LLMClient("http://127.0.0.1:9/v1", "none", flavor="llama")  # nothing listens there
    try:
        a = _ask(llm_container, "有什么推荐的零食吗", "m3")
    finally:
        c.agent.llm = real
    assert a.path == "fast" and "llm_unavailable" in a.flags and a.answer


def test_embedded_server_is_restarted_when_it_dies(llm_container):
    import os
    import signal
    import time

    c, loop = llm_container
    srv = c.llm_server
    old_pid = srv.proc.pid
    os.killpg(old_pid, signal.SIGKILL)

    async def wait_restart():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if srv.proc.pid != old_pid and srv.healthy():
                return True
            await asyncio.sleep(0.5)
        return False

    assert loop.run_until_complete(wait_restart())
    assert srv.restarts >= 1
    a = _ask(llm_container, "主播好呀", "m4")  # and the agent keeps working through it
    assert a.answer
