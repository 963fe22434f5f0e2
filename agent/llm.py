"""One LLM client for every backend: the `openai` SDK speaking Chat Completions.

Capabilities differ per backend and are detected, not assumed:
- native tool calls (``tool_calls`` in the response) — OpenAI and most hosted endpoints;
- JSON-schema constrained output — llama.cpp's server (``response_format`` with a schema), which
  returns ``tool_choice="auto"`` calls as plain text, so tool calls are made through a schema instead;
- streaming — always.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from openai import APIError, AsyncOpenAI

from core.errors import Unavailable

log = logging.getLogger("liveroom.llm")


@dataclass
class Capabilities:
    native_tools: bool
    json_schema: Literal["llama", "openai", "none"]


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


class LLMUnavailable(Unavailable):
    code = "llm_unavailable"


class LLMClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "not-needed",
        timeout: float = 60.0,
        flavor: Literal["llama", "openai", "auto"] = "auto",
        http_client: Any = None,
    ):
        self.base_url, self.model = base_url, model
        # Any: we send plain-dict messages/tools to any OpenAI-compatible server (llama.cpp included);
        # the SDK's TypedDict overloads describe only OpenAI's own parameter set.
        self.client: Any = AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=1, http_client=http_client
        )
        self.flavor = flavor
        self._caps: Capabilities | None = None

    async def capabilities(self) -> Capabilities:
        if self._caps is None:
            self._caps = await self._detect()
        return self._caps

    async def _detect(self) -> Capabilities:
        if self.flavor == "llama":  # known: text-only tool calls, schema via response_format
            return Capabilities(native_tools=False, json_schema="llama")
        probe_tool = {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "Get the current time.",
                "parameters": {"type": "object", "properties": {}, "required": []},
            },
        }
        try:
            r = await self.client.chat.completions.create(
                model=self.model,
                max_tokens=30,
                temperature=0,
                messages=[{"role": "user", "content": "What time is it? Use the tool."}],
                tools=[probe_tool],
                tool_choice="auto",
            )
            native = bool(r.choices and r.choices[0].message.tool_calls)
        except APIError as e:
            log.info("tool probe failed (%s): assuming no native tools", e)
            native = False
        caps = Capabilities(native_tools=native, json_schema="openai" if self.flavor == "openai" or native else "llama")
        log.info("LLM capabilities for %s: %s", self.base_url, caps)
        return caps

    async def stream(
        self,
        messages: list[dict[str, Any]],
        max_tokens: int = 120,
        temperature: float = 0.3,
        stop: list[str] | None = None,
    ) -> AsyncIterator[str]:
        """Yield content deltas."""
        try:
            stream = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                stop=stop,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except APIError as e:
            raise LLMUnavailable(str(e)) from e
        except OSError as e:
            raise LLMUnavailable(str(e)) from e

    async def complete(self, messages: list[dict[str, Any]], max_tokens: int = 120, temperature: float = 0.3) -> str:
        parts = [d async for d in self.stream(messages, max_tokens=max_tokens, temperature=temperature)]
        return "".join(parts)

    async def json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], max_tokens: int = 120, name: str = "output"
    ) -> dict[str, Any]:
        """A JSON object that satisfies ``schema`` (grammar-constrained where the backend can)."""
        caps = await self.capabilities()
        if caps.json_schema == "openai":
            fmt: dict[str, Any] = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        else:
            fmt = {"type": "json_object", "schema": schema}
        try:
            r = await self.client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=max_tokens, temperature=0, response_format=fmt
            )
        except (APIError, OSError) as e:
            raise LLMUnavailable(str(e)) from e
        text = r.choices[0].message.content or "{}"
        try:
            parsed: dict[str, Any] = json.loads(text)
            return parsed
        except json.JSONDecodeError as e:
            raise LLMUnavailable(f"backend returned invalid JSON: {text[:200]!r}") from e

    async def choose_tools(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int = 80
    ) -> list[ToolCall]:
        """Ask the model which tools to call: native tool calls where supported, else a JSON schema
        that can only name the given tools."""
        caps = await self.capabilities()
        if caps.native_tools:
            try:
                r = await self.client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    tools=tools,
                    tool_choice="auto",
                    max_tokens=max_tokens,
                    temperature=0,
                )
            except (APIError, OSError) as e:
                raise LLMUnavailable(str(e)) from e
            calls = []
            for tc in r.choices[0].message.tool_calls or []:
                try:
                    calls.append(ToolCall(tc.function.name, json.loads(tc.function.arguments or "{}")))
                except json.JSONDecodeError:
                    log.warning("dropping tool call with invalid JSON arguments: %r", tc.function.arguments)
            return calls
        schema = tool_choice_schema(tools)
        out = await self.json(messages, schema, max_tokens=max_tokens, name="tool_calls")
        return [
            ToolCall(c["name"], c.get("arguments") or {})
            for c in out.get("calls", [])
            if isinstance(c, dict) and c.get("name")
        ]


def tool_choice_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """{"calls": [{"name": <one of the tools>, "arguments": {...}}]} — at most 3 calls."""
    variants = []
    for t in tools:
        fn = t["function"]
        params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        params.pop("description", None)
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    return {
        "type": "object",
        "properties": {"calls": {"type": "array", "items": {"anyOf": variants}, "maxItems": 3}},
        "required": ["calls"],
    }
