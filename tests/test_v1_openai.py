"""/v1 speaks OpenAI's wire (issue 19): ``usage`` on every completion (and on the stream when asked),
an unknown model refused with OpenAI's error shape, and the served model listed at /v1/models."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from liveroom.openai_compat import count_tokens, usage
from tests.support.access import agent_key
from tests.support.console import console_app, make_container

A = "demo"
ASK = {"messages": [{"role": "user", "content": "包邮吗"}]}


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_root, use_embedder):
    c = make_container(tmp_path_factory.mktemp("v1"), demo_root, use_embedder)
    for k in ("questions_per_ip", "questions_per_room"):
        setattr(c.settings.access, k, 0)
    app = console_app(c)
    with TestClient(app) as client:
        yield client, agent_key(app, A)


def test_token_count_is_cjk_aware():
    assert count_tokens("包邮吗") == 3
    assert count_tokens("SPF50 防晒 ok?") == 5
    assert usage("包邮吗", "包邮") == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_models_lists_the_served_model(world):
    client, key = world
    r = client.get("/v1/models", headers=key)
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == ["liveroom"]
    assert all(m["object"] == "model" for m in r.json()["data"])


def test_completion_has_usage(world):
    client, key = world
    r = client.post("/v1/chat/completions", headers=key, json=ASK | {"model": "liveroom"})
    assert r.status_code == 200, r.text
    body = r.json()
    u = body["usage"]
    reply = body["choices"][0]["message"]["content"]
    assert u["prompt_tokens"] == 3
    assert u["completion_tokens"] == count_tokens(reply) > 0
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert body["model"] == "liveroom"


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_refused_openai_style(world, stream):
    client, key = world
    r = client.post("/v1/chat/completions", headers=key, json=ASK | {"model": "gpt-4o", "stream": stream})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found"
    assert err["type"] == "invalid_request_error"
    assert err["param"] == "model"
    assert "gpt-4o" in err["message"]


def test_stream_usage_chunk_when_asked(world):
    client, key = world
    body = ASK | {"stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", headers=key, json=body) as r:
        assert r.status_code == 200
        lines = [ln[6:] for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == count_tokens(text) > 0
    # without the option no usage chunk (OpenAI's default)
    with client.stream("POST", "/v1/chat/completions", headers=key, json=ASK | {"stream": True}) as r:
        plain = [json.loads(ln[6:]) for ln in r.iter_lines() if ln.startswith("data: {")]
    assert all("usage" not in c for c in plain)
