"""The app's one container of long-lived services (no other global mutable state).

Built once per process (server, CLI command) and handed down explicitly; FastAPI routes get it
through dependency injection (``server.get_container``).
"""
from __future__ import annotations

from functools import cached_property

from knowledge.embedder import Embedder, UseEmbedder
from knowledge.store import KnowledgeBase
from liveroom.settings import Settings


class Container:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()

    @cached_property
    def embedder(self) -> Embedder:
        return UseEmbedder(threads=self.settings.embed_threads)

    @cached_property
    def kb(self) -> KnowledgeBase:
        return KnowledgeBase(self.settings.kb_dir(), self.embedder)

    def close(self) -> None:
        pass
