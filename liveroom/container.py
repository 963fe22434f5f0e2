"""The app's one container of long-lived services (no other global mutable state).

Built once per process (server, CLI command) and handed down explicitly; FastAPI routes get it
through dependency injection (``server.get_container``).
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

import redis

from agent.answer_cache import AnswerCache
from agent.bus import AnswerBus
from agent.claims import checker_for
from agent.core import Agent, AgentConfig
from agent.embedded import EmbeddedLLMServer
from agent.intent_model import IntentModel
from agent.llm import LLMClient
from agent.memory import ConversationMemory, Memory
from agent.memory_redis import RedisMemory
from agent.style import StyleCache
from audience.access import ViewerAccess
from audience.identity import ViewerTokens
from audience.rooms import RoomRegistry
from audience.service import AudienceService
from console.answer_log_redis import RedisAnswerLog
from console.auth import LoginLimiter
from console.live import AnswerLog
from core.admission import Admission
from core.settings import Settings
from knowledge.embedder import Embedder, QueryEmbedder, UseEmbedder
from knowledge.store import KnowledgeBase
from prompts.store import PromptStore
from prompts.styles import StyleStore
from regression.runner import RegressionRunner
from regression.store import CaseStore
from state.dedup import RedisDedup
from state.limits import RedisLoginLimiter, RedisRateLimiter
from state.redis_client import connect
from tools.audience_tools import audience_tools
from tools.catalog import catalog_tools
from tools.contracts import CouponLedger, ProfileStore
from tools.registry import ToolRegistry
from vision import ImageStore, VisionService

log = logging.getLogger("liveroom")


class Container:
    def __init__(self, settings: Settings | None = None, agent_config: AgentConfig | None = None):
        self.settings = settings or Settings()
        self.agent_config = agent_config or AgentConfig()
        self.llm: LLMClient | None = None
        self.llm_server: EmbeddedLLMServer | None = None

    @cached_property
    def embedder(self) -> Embedder:
        # live questions repeat: recent vectors are kept and concurrent misses share one encoder call
        return QueryEmbedder(UseEmbedder(threads=self.settings.embed_threads))

    @cached_property
    def shared_redis(self) -> redis.Redis | None:
        """The shared-state client when ``LIVEROOM_REDIS_URL`` is set (several workers), else None."""
        return connect(self.settings.redis_url) if self.settings.redis_url else None

    def login_limiter(self, per_ip: int, per_user: int) -> LoginLimiter | RedisLoginLimiter:
        """The console's login limiter: in Redis with several workers (a guesser is counted once)."""
        if self.shared_redis is not None:
            return RedisLoginLimiter(self.shared_redis, per_ip=per_ip, per_user=per_user)
        return LoginLimiter(per_ip=per_ip, per_user=per_user)

    @cached_property
    def admission(self) -> Admission:
        """Beyond this process's capacity a question gets ``busy`` at once, not an answer seconds late."""
        # an answered danmaku should show within ~150 ms: a question that already waited 100 ms for the loop
        # gets busy (with 250 ms every answer under overload waited at least that long)
        return Admission(max_wait_ms=100.0)

    @cached_property
    def kb(self) -> KnowledgeBase:
        kb = KnowledgeBase(self.settings.kb_dir(), self.embedder)
        # each version keeps the regression set generated from its catalog
        kb.on_build.append(
            lambda merchant, catalog, build: self.regression_cases.write_generated(merchant, catalog, build)
        )
        return kb

    @cached_property
    def regression_cases(self) -> CaseStore:
        """Each merchant's regression set (generated per version, reviews, hand-added), with the KB."""
        return CaseStore(self.kb)

    @cached_property
    def regression(self) -> RegressionRunner:
        """Runs the regression set on a draft through this container's agent (regression/runner.py)."""
        return RegressionRunner(self.kb, lambda: self.agent, self.regression_cases)

    @cached_property
    def audience(self) -> AudienceService:
        """The SQL-backed viewer, event, profile and coupon service."""
        return AudienceService.from_settings(self.settings)

    @cached_property
    def rooms(self) -> RoomRegistry:
        """Live rooms and their merchants (created in the console or with `liveroom rooms create`)."""
        return RoomRegistry(self.audience.engine)

    @cached_property
    def viewer_tokens(self) -> ViewerTokens:
        """Per-merchant viewer-token secrets: who may vouch for a viewer."""
        a = self.settings.access
        return ViewerTokens(
            self.audience.engine, grace_s=a.secret_grace_s, max_ttl_s=a.token_max_ttl_s, leeway_s=a.token_leeway_s
        )

    @cached_property
    def access(self) -> ViewerAccess:
        """The public channels' gate: the room's merchant, the viewer (verified or anonymous), abuse limits."""
        return ViewerAccess(self.rooms, self.viewer_tokens, self.audience, self.settings.access)

    @cached_property
    def intent_model(self) -> IntentModel:
        """The learned question classifier, trained from the packaged labelled set (cached on disk)."""
        return IntentModel.load_or_train(self.embedder, cache_dir=self.settings.cache_dir / "intent")

    @cached_property
    def profiles(self) -> ProfileStore:
        return self.audience

    @cached_property
    def ledger(self) -> CouponLedger:
        return self.audience

    @cached_property
    def tools(self) -> ToolRegistry:
        return ToolRegistry(catalog_tools(self.kb) + audience_tools(self.profiles, self.ledger))

    @cached_property
    def prompts(self) -> PromptStore:
        """Merchants' prompt drafts and published overrides (one store per app)."""
        return PromptStore(self.settings.data_dir.resolve() / "prompts")

    @cached_property
    def styles(self) -> StyleStore:
        """Merchants' published answer styles (agent/style.py applies them), versioned."""
        return StyleStore(self.settings.data_dir.resolve() / "styles")

    @cached_property
    def memory(self) -> ConversationMemory:
        """Viewers' conversation memory: in Redis with several workers (a follow-up may reach another one)."""
        if self.shared_redis is not None:
            return RedisMemory(self.shared_redis)
        return Memory()

    @cached_property
    def answer_log(self) -> AnswerLog | RedisAnswerLog:
        """The console's live answer log: in Redis with several workers (the dashboard shows all of theirs)."""
        if self.shared_redis is not None:
            return RedisAnswerLog(self.shared_redis)
        return AnswerLog()

    @cached_property
    def connector_dedup(self) -> RedisDedup | None:
        """Connector message de-duplication across workers (None: each hub keeps its own recent ids)."""
        return RedisDedup(self.shared_redis) if self.shared_redis is not None else None

    @cached_property
    def vision(self) -> VisionService:
        """Offline picture understanding (OCR, product-image matching, colour) per room."""
        return VisionService(self.kb, ImageStore(self.settings.data_dir / "images"))

    @cached_property
    def answer_bus(self) -> AnswerBus:
        """Every finished answer of every agent of this app (viewer channels and the host), for the
        metrics and the console's live answer log to subscribe to."""
        return AnswerBus()

    @cached_property
    def agent(self) -> Agent:
        if self.settings.llm_writes:
            self.agent_config.llm_writes = True
        if self.settings.llm_vision:
            self.agent_config.vision_model = True
        agent = Agent(
            self.kb, self.tools, self.llm, self.memory, self.agent_config, vision=self.vision, answers=self.answer_bus
        )
        agent.prompt_store = self.prompts  # merchants' published prompt overrides
        agent.intent_model = self.intent_model
        if self.shared_redis is not None:  # several workers: a viewer's bucket follows them to any worker
            lim = agent.limiter
            agent.limiter = RedisRateLimiter(self.shared_redis, rate=lim.rate, per=lim.per, burst=lim.burst)
        overrides = self.settings.data_dir / "compliance"
        files: dict[str, Path] = {}  # asked per answer: the path is built once per merchant
        agent.claims_for = lambda merchant: checker_for(
            files.get(merchant) or files.setdefault(merchant, overrides / f"{merchant}.json")
        )
        agent.style_for = StyleCache(self.styles.published, agent.claims_for)
        # the same few questions over and over: a composed answer is replayed (keyed by KB version and claims)
        agent.answer_cache = AnswerCache()
        return agent

    async def start_llm(self) -> LLMClient:
        """Start the configured LLM backend (the embedded server as a supervised child)."""
        s = self.settings
        if s.llm_backend == "embedded":
            from core.provision import model_path

            self.llm_server = EmbeddedLLMServer(
                model_path(s, s.embedded_model),
                threads=s.llm_threads,
                ctx=s.llm_ctx,
                port=s.llm_port,
                log_path=s.data_dir / "logs" / "embedded-llm.log",
            )
            await self.llm_server.start()
            self.llm = LLMClient(self.llm_server.base_url, self.llm_server.alias, flavor="llama")
        else:
            if not s.llm_base_url:
                raise ValueError("LIVEROOM_LLM_BASE_URL is required when LIVEROOM_LLM_BACKEND=openai")
            self.llm = LLMClient(s.llm_base_url, s.llm_model, api_key=s.llm_api_key)
        if "agent" in self.__dict__:
            self.agent.llm = self.llm
        return self.llm

    async def aclose(self) -> None:
        if self.llm_server:
            await self.llm_server.stop()
            self.llm_server = None
        if "audience" in self.__dict__ and self.audience:
            self.audience.close()
