"""Protocol edge cases of the LLM client against a scripted OpenAI-compatible endpoint (the real
model is exercised in test_agent_model.py; this fake only scripts replies the real one can't)."""

from __future__ import annotations

import json

import httpx
import pytest

from agent.llm import LLMClient, LLMUnavailable, tool_choice_schema


def _client(handler) -> LLMClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return LLMClient("http://fake/v1", "m", http_client=http)


def _completion(message: dict) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        },
    )


async def test_native_tool_calls_are_detected_and_parsed():
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        seen.append(body)
        return _completion(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "lookup_profile", "arguments": "{}"}},
                    {"id": "2", "type": "function", "function": {"name": "get_product", "arguments": "{not json"}},
                ],
            }
        )

    c = _client(handler)
    caps = await c.capabilities()
    assert caps.native_tools and caps.json_schema == "openai"
    calls = await c.choose_tools([{"role": "user", "content": "hi"}], [])
    assert [x.name for x in calls] == ["lookup_profile"]  # the call with broken JSON arguments is dropped
    assert seen[-1]["tool_choice"] == "auto"


async def test_text_only_backend_uses_a_json_schema_for_tools():
    def handler(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        if body.get("tools"):
            return _completion({"role": "assistant", "content": '{"name": "get_time"}'})  # tool call as text
        assert body["response_format"]["type"] == "json_object" and "schema" in body["response_format"]
        return _completion(
            {
                "role": "assistant",
                "content": json.dumps({"calls": [{"name": "search_products", "arguments": {"query": "口红"}}]}),
            }
        )

    c = _client(handler)
    assert not (await c.capabilities()).native_tools
    calls = await c.choose_tools(
        [{"role": "user", "content": "推荐口红"}],
        [{"type": "function", "function": {"name": "search_products", "parameters": {"type": "object"}}}],
    )
    assert calls[0].name == "search_products" and calls[0].arguments == {"query": "口红"}


async def test_invalid_json_and_http_errors_become_llm_unavailable():
    c = _client(lambda req: _completion({"role": "assistant", "content": "not json"}))
    c._caps = None
    with pytest.raises(LLMUnavailable):
        await c.json([{"role": "user", "content": "x"}], {"type": "object"})
    down = _client(lambda req: httpx.Response(503, json={"error": {"message": "overloaded"}}))
    with pytest.raises(LLMUnavailable):
        await down.complete([{"role": "user", "content": "x"}])


def test_tool_choice_schema_only_allows_the_given_tools():
    schema = tool_choice_schema(
        [
            {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "b"}},
        ]
    )
    names = [v["properties"]["name"]["const"] for v in schema["properties"]["calls"]["items"]["anyOf"]]
    assert names == ["a", "b"] and schema["properties"]["calls"]["maxItems"] == 3
