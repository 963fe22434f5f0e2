"""The embedded model, started once for a test module (skipped when it was not provisioned)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.core import AgentConfig
from core.provision import is_installed
from core.settings import Settings


@contextmanager
def serving_container(
    data_dir: Path, embedder: Any, config: AgentConfig | None = None
) -> Iterator[tuple[Any, asyncio.AbstractEventLoop]]:
    """(container with the LLM serving, the loop it runs on); closed afterwards."""
    from liveroom.container import Container

    settings = Settings(data_dir=data_dir, llm_autostart=False)
    if not is_installed(settings, settings.embedded_model):
        pytest.skip("embedded model not provisioned (run `liveroom models install`)")
    c = Container(settings, config)
    c.__dict__["embedder"] = embedder
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(c.start_llm())
        yield c, loop
    finally:
        loop.run_until_complete(c.aclose())
        loop.close()
