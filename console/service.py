"""`ConsoleService`: the console's long-lived state for one app (accounts, audit, rooms, reviews,
knowledge-base jobs, prompt store, answer log, simulators), built from the app's container (at app
start-up by server.py's lifespan, else on first use) and kept on ``app.state.console``. The answer log
subscribes to the container's answer bus (agent/bus.py), so it sees the answers of every channel."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import func, select, update

from audience.db import ensure_schema, read_tx, write_tx
from console import db as t
from console.audit import AuditLog
from console.auth import Accounts, LoginLimiter
from console.kb import KBConsole
from console.live import AnswerLog, Simulator
from console.regression import RegressionConsole
from core.settings import ConsoleSettings
from prompts.store import PromptStore


class ConsoleService:
    def __init__(self, container, config: ConsoleSettings | None = None):
        self.container = container
        self.config = config or container.settings.console
        self.engine = container.audience.engine
        ensure_schema(self.engine)  # the console tables are in the app's migrations (audience/migrations)
        self.accounts = Accounts(self.engine)
        self.audit = AuditLog(self.engine)
        shared = getattr(container, "login_limiter", None)  # the container's: in Redis with several workers
        self.limiter = (shared or LoginLimiter)(per_ip=self.config.login_per_ip, per_user=self.config.login_per_user)
        data_dir = container.settings.data_dir
        self.kb = KBConsole(container.kb, data_dir / "console" / "uploads")
        self.prompts: PromptStore = container.prompts
        # every answer of the app, from the container's answer bus; the container's log is in Redis with
        # several workers, so each worker's dashboard shows every worker's answers
        self.answers = getattr(container, "answer_log", None) or AnswerLog()
        self._unsubscribe = container.answer_bus.subscribe(self.answers.on_answer)
        self.simulators: dict[tuple[str, str], Simulator] = {}
        # publish with proof: drafts, regression runs, the gated publish; the drift watch samples live answers
        self.regression = RegressionConsole(container, self.kb)
        self.regression.drift.sink = self.file_sample
        self._unsubscribe_drift = container.answer_bus.subscribe(self.regression.drift.on_answer)

    def close(self) -> None:
        """Stop listening to the container's answer bus (the app is shutting down)."""
        self._unsubscribe()
        self._unsubscribe_drift()

    # --- rooms (the container's registry: audience/rooms.py) ---------------------------------
    @property
    def registry(self):
        return self.container.rooms

    def room_merchant(self, room_id: str) -> str | None:
        return self.registry.merchant_of(room_id)

    def _room_out(self, r) -> dict:
        return {
            "room_id": r.room_id,
            "title": r.title,
            "status": r.status,
            "rundown": r.rundown,
            "allowed_origins": list(r.allowed_origins),
            "created_at": r.created_at,
            "created_by": r.created_by,
            "closed_at": r.closed_at,
            "url": f"/rooms/{r.room_id}",
        }

    def rooms(self, merchant: str) -> list[dict]:
        return [
            {**self._room_out(r), "simulator": self.simulator_view(merchant, r.room_id)}
            for r in self.registry.list(merchant)
        ]

    def room(self, merchant: str, room_id: str) -> dict | None:
        r = self.registry.of(merchant, room_id)
        return self._room_out(r) if r else None

    def create_room(
        self,
        merchant: str,
        room_id: str,
        title: str,
        actor: str,
        *,
        rundown: str = "",
        allowed_origins: list[str] | None = None,
    ) -> dict:
        from core.errors import Conflict

        try:
            r = self.registry.create(merchant, room_id, title, actor, rundown=rundown, allowed_origins=allowed_origins)
        except Conflict as e:
            raise ValueError(e.message) from None
        return self._room_out(r)

    def set_room_status(self, merchant: str, room_id: str, status: str) -> dict:
        return self._room_out(self.registry.set_status(merchant, room_id, status))

    def update_room(self, merchant: str, room_id: str, **kw) -> dict:
        return self._room_out(self.registry.update(merchant, room_id, **kw))

    # --- reviews (thumbs-down) ---------------------------------------------------------------
    def file_feedback(self, merchant: str, room_id: str, ans, reason: str, actor: str) -> dict:
        with write_tx(self.engine) as conn:
            r = conn.execute(
                t.feedback.insert().values(
                    merchant=merchant,
                    room_id=room_id,
                    answer_id=ans.answer_id,
                    question=ans.question,
                    answer=ans.answer,
                    citations=json.dumps(ans.citations, ensure_ascii=False),
                    kb_version=ans.kb_version,
                    reason=(reason or "")[:500],
                    status="open",
                    filed_by=(actor or "")[:96],  # VARCHAR lengths are enforced on PostgreSQL
                    at=time.time(),
                )
            )
            fid = r.inserted_primary_key[0]
        self.answers.flag(merchant, room_id, ans.answer_id)
        self.regression.drift.on_review(merchant)
        return {"id": fid, "answer_id": ans.answer_id, "status": "open"}

    def file_sample(self, ev, reason: str) -> None:
        """The drift watch's sample of a live answer (an AnsweredEvent), as an open review with its citations."""
        with write_tx(self.engine) as conn:
            conn.execute(
                t.feedback.insert().values(
                    merchant=ev.merchant,
                    room_id=ev.room_id,
                    answer_id="",
                    question=ev.question[:500],
                    answer=ev.answer[:1000],
                    citations=json.dumps([c.model_dump() for c in ev.citations], ensure_ascii=False),
                    kb_version=ev.kb_version,
                    reason=reason[:500],
                    status="open",
                    filed_by="system:drift",
                    at=time.time(),
                )
            )

    def reviews(
        self, merchant: str, status: str | None = None, room_id: str | None = None, limit: int = 200
    ) -> list[dict]:
        q = select(t.feedback).where(t.feedback.c.merchant == merchant)
        if status:
            q = q.where(t.feedback.c.status == status)
        if room_id:
            q = q.where(t.feedback.c.room_id == room_id)
        with read_tx(self.engine) as conn:
            rows = conn.execute(q.order_by(t.feedback.c.id.desc()).limit(limit)).all()
        return [
            {
                "id": r.id,
                "room_id": r.room_id,
                "answer_id": r.answer_id,
                "question": r.question,
                "answer": r.answer,
                "citations": json.loads(r.citations or "[]"),
                "kb_version": r.kb_version,
                "reason": r.reason,
                "status": r.status,
                "filed_by": r.filed_by,
                "at": r.at,
                "resolved_by": r.resolved_by,
                "resolved_at": r.resolved_at,
            }
            for r in rows
        ]

    def open_reviews(self, merchant: str, room_id: str | None = None) -> int:
        q = (
            select(func.count())
            .select_from(t.feedback)
            .where(t.feedback.c.merchant == merchant, t.feedback.c.status == "open")
        )
        if room_id:
            q = q.where(t.feedback.c.room_id == room_id)
        with read_tx(self.engine) as conn:
            return conn.execute(q).scalar_one()

    def review(self, merchant: str, review_id: int) -> dict | None:
        return next((r for r in self.reviews(merchant) if r["id"] == review_id), None)

    def resolve_review(self, merchant: str, review_id: int, status: str, actor: str) -> dict | None:
        with write_tx(self.engine) as conn:
            n = conn.execute(
                update(t.feedback)
                .where(t.feedback.c.merchant == merchant, t.feedback.c.id == review_id)
                .values(status=status, resolved_by=actor, resolved_at=time.time())
            ).rowcount
        return self.review(merchant, review_id) if n else None

    # --- simulator ---------------------------------------------------------------------------
    def simulator_view(self, merchant: str, room_id: str) -> dict:
        s = self.simulators.get((merchant, room_id))
        return s.view() if s else {"running": False}


_lock = threading.Lock()


def get_console(app) -> ConsoleService:
    """The app's console service (created on first use, after the container is up)."""
    svc = getattr(app.state, "console", None)
    if svc is not None:
        return svc
    with _lock:
        svc = getattr(app.state, "console", None)
        if svc is None:
            svc = ConsoleService(app.state.container, getattr(app.state, "console_config", None))
            app.state.console = svc
    return svc
