"""Runtime configuration: every knob is an env var with the `LIVEROOM_` prefix."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache() -> Path:
    return Path.home() / ".cache" / "liveroom"


def _default_data() -> Path:
    return Path.home() / ".local" / "share" / "liveroom"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVEROOM_", env_file=".env", extra="ignore")

    # Where provisioned model files live (assembled GGUF, Whisper), and where merchant data lives.
    cache_dir: Path = Field(default_factory=_default_cache)
    data_dir: Path = Field(default_factory=_default_data)

    # LLM backend: `embedded` starts llama.cpp's OpenAI-compatible server as a child process;
    # `openai` talks to any OpenAI-compatible endpoint (base_url + model + api_key).
    llm_backend: Literal["embedded", "openai"] = "embedded"
    llm_base_url: str | None = None
    llm_model: str = "qwen2.5-coder-1.5b"
    llm_api_key: str = "not-needed"
    embedded_model: Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"] = "qwen2.5-coder-1.5b"
    llm_threads: int = 2
    llm_ctx: int = 4096
    llm_port: int = 0  # 0 = pick a free loopback port
    llm_vision: bool = False  # the OpenAI-compatible endpoint accepts image_url content
    llm_autostart: bool = True  # the server starts the LLM backend in the background at start-up

    # Sentence encoder threads. One: whenever another process (the LLM server) holds a core, a second
    # encoder thread spin-waits and a single query goes from ~1.7 ms to ~130 ms.
    embed_threads: int = 1

    host: str = "127.0.0.1"
    port: int = 8000
    default_merchant: str = "demo"

    def kb_dir(self) -> Path:
        return self.data_dir / "kb"


def get_settings() -> Settings:
    return Settings()
