"""Tool definitions: pydantic argument schemas → OpenAI tool schemas (via langchain-core), and a
registry that validates model-produced arguments before anything runs.

The viewer id and merchant are never tool arguments: they come from the request context, so a
model (or a viewer's injected text) cannot ask for someone else's profile or coupons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ValidationError

from core.errors import BadRequest
from core.ids import is_anonymous


@dataclass(frozen=True)
class ToolContext:
    merchant: str
    viewer_id: str
    room_id: str = "default"
    request_id: str = ""
    # Whether the channel verified who the viewer is (a signed viewer token). None = the caller did not
    # say: then only a server-assigned anonymous id (core.ids.ANON_PREFIX) counts as unverified.
    verified: bool | None = None
    lang: str = "zh"  # the room's language, for the tools' viewer-facing messages

    @property
    def is_verified(self) -> bool:
        """May this viewer's own data (profile, coupons, memory) be used? Only for a verified viewer."""
        if self.verified is not None:
            return self.verified and not is_anonymous(self.viewer_id)
        return not is_anonymous(self.viewer_id)


class ToolError(BadRequest):
    code = "tool_error"


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    fn: Callable[[ToolContext, Any], Any]  # called with an instance of `args`

    def openai_schema(self) -> dict[str, Any]:
        schema = convert_to_openai_tool(self.args)
        schema["function"]["name"] = self.name
        schema["function"]["description"] = self.description
        return schema


class ToolRegistry:
    def __init__(self, tools: list[Tool]):
        self._tools = {t.name: t for t in tools}

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def replaced(self, tools: list[Tool]) -> ToolRegistry:
        """A registry with the same tools but ``tools`` in place of those of the same name."""
        return ToolRegistry(list({**self._tools, **{t.name: t for t in tools}}.values()))

    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.openai_schema() for t in self._tools.values()]

    def run(self, ctx: ToolContext, name: str, arguments: dict[str, Any] | str | None) -> Any:
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}")
        try:
            args = (
                tool.args.model_validate_json(arguments)
                if isinstance(arguments, str)
                else tool.args.model_validate(arguments or {})
            )
        except ValidationError as e:
            raise ToolError(f"bad arguments for {name}: {e.errors(include_url=False)[:3]}") from e
        return tool.fn(ctx, args)
