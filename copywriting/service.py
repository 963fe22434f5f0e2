"""`CopyService`: the copy writer, campaign runner and experiments wired to the app's container.

One per container (``service_for(container)``); routes and CLI commands get it from there. The LLM is
read from the container on every call, so copy switches to the model as soon as it has started.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from agent.compliance import ComplianceRules
from copywriting.ab import Experiments
from copywriting.batch import CampaignRunner, CampaignSpec
from copywriting.facts import KBCatalog
from copywriting.generator import CopyWriter, patient
from copywriting.schema import CopyPiece, CopyRequest
from copywriting.store import CopyStore

log = logging.getLogger("liveroom.copy")
_ATTR = "_copywriting_service"
_lock = threading.Lock()


def service_for(container) -> CopyService:
    svc = getattr(container, _ATTR, None)
    if svc is None:
        with _lock:
            svc = getattr(container, _ATTR, None)
            if svc is None:
                svc = CopyService(container)
                setattr(container, _ATTR, svc)
    return svc


class CopyService:
    def __init__(self, container):
        self.container = container
        self.settings = container.settings
        self.audience = _audience(container)
        self.store = CopyStore.for_container(container)
        self.experiments = Experiments(self.store, audience_engine=getattr(self.audience, "engine", None))
        self.writer = CopyWriter(
            self._catalog,
            profiles=self.audience or container.profiles,
            ledger=self.audience or container.ledger,
            audience=self.audience,
            rules_for=self.rules_for,
            tz=self.tz(self.settings.default_merchant),
            default_merchant=self.settings.default_merchant,
        )
        self.runner = CampaignRunner(self.writer, self.store, self.experiments, self.audience, self.writer.tz)
        self._rules: dict[str, ComplianceRules] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task] = {}
        self._llm = self._llm_for = None

    def _catalog(self, merchant: str) -> KBCatalog:
        return KBCatalog(self.container.kb.snapshot(merchant))

    def tz(self, merchant: str) -> str:
        try:
            return self.audience.rules(merchant).timezone if self.audience is not None else "Asia/Shanghai"
        except Exception:  # noqa: BLE001
            return "Asia/Shanghai"

    def rules_path(self, merchant: str) -> Path:
        return Path(self.settings.data_dir) / "compliance" / f"{merchant}.json"

    def rules_for(self, merchant: str) -> ComplianceRules:
        """The defaults extended by ``<data_dir>/compliance/<merchant>.json`` (read once per process)."""
        if merchant not in self._rules:
            self._rules[merchant] = ComplianceRules.load(self.rules_path(merchant))
        return self._rules[merchant]

    def llm(self):
        """The container's LLM (None until started), with a copy-friendly timeout."""
        cur = self.container.llm
        if cur is None:
            return None
        if self._llm_for is not cur:
            self._llm, self._llm_for = patient(cur), cur
        return self._llm

    async def copy(self, req: CopyRequest) -> CopyPiece:
        return await self.writer.write(req, llm=self.llm() if req.use_llm else None)

    async def run_campaign(self, spec: CampaignSpec, progress=None) -> dict:
        return await self.runner.run(spec, progress, llm=self.llm() if spec.use_llm else None)

    def start_campaign(self, spec: CampaignSpec) -> bool:
        """Run in the background (API); False if this campaign is already running here."""
        key = (spec.merchant, spec.campaign_id)
        t = self.tasks.get(key)
        if t is not None and not t.done():
            return False

        async def go() -> None:
            try:
                await self.run_campaign(spec)
            except Exception:  # recorded as "failed" on the campaign
                log.exception("campaign %s failed", spec.campaign_id)

        self.tasks[key] = asyncio.create_task(go(), name=f"campaign-{spec.campaign_id}")
        return True


def _audience(container) -> Any:
    try:
        return container.audience
    except Exception:  # noqa: BLE001 — a broken audience database must not take copy down
        log.exception("audience service unavailable; copy runs without profiles and coupons")
        return None
