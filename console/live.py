"""What the live dashboard shows for one room, and the demo simulator that feeds it.

Sources (a seam: the virtual-host package supplies richer versions when a host runs the room):
- funnel per minute — viewers, watch time, clicks, carts, orders, GMV — from the audience events
  whose ``session_id`` is the room id (integrations send it with ``POST /api/events``);
- recent agent answers with citations — ``AnswerLog``, a subscriber of the container's answer bus
  (agent/bus.py): every channel's answers (danmaku WebSocket, HTTP ask, voice, ``/v1``, the host,
  the simulator), labelled with their channel;
- hot question clusters with talking points — from those questions (intent × product);
- coupons issued vs budget — the coupon ledger's campaigns;
- alerts — viewer drops, coupon budgets nearly spent, unanswered questions, answers flagged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from agent.bus import AnsweredEvent
from agent.messages import AgentAnswer, ViewerMessage
from audience import models as am
from audience.db import read_tx

log = logging.getLogger("liveroom.console.live")

# The agent's intents (agent.intent_model.INTENTS, plus its own outcomes) as the console labels them.
INTENT_ZH = {
    "price": "价格",
    "stock": "库存",
    "detail": "规格参数",
    "suitability": "适用人群",
    "compare": "对比",
    "policy": "发货售后",
    "coupon": "优惠券",
    "recommend": "推荐",
    "greeting": "打招呼",
    "chitchat": "闲聊",
    "noise": "没听清",
    "profile": "会员等级",
    "injection": "指令注入",
    "other": "其他",
}


@dataclass
class LoggedAnswer:
    answer_id: str
    merchant: str
    room_id: str
    viewer_id: str
    question: str
    answer: str
    citations: list[dict]
    path: str
    intent: str
    refused: bool
    kb_version: str | None
    at: float
    channel: str = "ws"
    flagged: bool = False

    def view(self, facts: dict[str, str] | None = None) -> dict:
        cites = [{**c, "text": (facts or {}).get(c.get("fact_id", ""))} for c in self.citations]
        return {
            "answer_id": self.answer_id,
            "viewer_id": self.viewer_id,
            "question": self.question,
            "answer": self.answer,
            "citations": cites,
            "path": self.path,
            "intent": self.intent,
            "intent_zh": INTENT_ZH.get(self.intent, self.intent),
            "refused": self.refused,
            "kb_version": self.kb_version,
            "at": self.at,
            "channel": self.channel,
            "flagged": self.flagged,
        }


def logged_answer(
    merchant: str, room_id: str, viewer_id: str, question: str, ans: AgentAnswer | dict, channel: str = "ws"
) -> LoggedAnswer:
    """What the log keeps of one answer (bounded field by field: the log is shown, not audited)."""
    a = ans if isinstance(ans, dict) else ans.model_dump()
    return LoggedAnswer(
        uuid.uuid4().hex[:16],
        merchant,
        room_id,
        str(viewer_id)[:64],
        str(question)[:500],
        str(a.get("answer", ""))[:1000],
        [
            {"fact_id": str(c.get("fact_id", ""))[:200], "sku": c.get("sku")}
            for c in (a.get("citations") or [])[:10]
            if isinstance(c, dict)
        ],
        str(a.get("path", "")),
        str(a.get("intent", "")),
        bool(a.get("refused")),
        a.get("kb_version"),
        time.time(),
        channel,
    )


class AnswerLog:
    """The last answers per (merchant, room), bounded in rooms (LRU) and answers per room, in this process
    (one worker; console/answer_log_redis.py keeps the same in Redis for several)."""

    def __init__(self, per_room: int = 300, max_rooms: int = 2000):
        self.per_room, self.max_rooms = per_room, max_rooms
        self._rooms: OrderedDict[tuple[str, str], deque[LoggedAnswer]] = OrderedDict()
        self._lock = threading.Lock()

    def record(
        self, merchant: str, room_id: str, viewer_id: str, question: str, ans: AgentAnswer | dict, channel: str = "ws"
    ) -> LoggedAnswer:
        item = logged_answer(merchant, room_id, viewer_id, question, ans, channel)
        key = (merchant, room_id)
        with self._lock:
            q = self._rooms.get(key)
            if q is None:
                q = self._rooms[key] = deque(maxlen=self.per_room)
            self._rooms.move_to_end(key)
            q.append(item)
            while len(self._rooms) > self.max_rooms:
                self._rooms.popitem(last=False)
        return item

    def on_answer(self, ev: AnsweredEvent) -> None:
        """Answer-bus subscriber: log the answer under its (merchant, room)."""
        self.record(ev.merchant, ev.room_id, ev.viewer_id, ev.question, ev.model_dump(), ev.channel)

    def recent(self, merchant: str, room_id: str, limit: int = 50, since: float = 0.0) -> list[LoggedAnswer]:
        with self._lock:
            items = list(self._rooms.get((merchant, room_id), ()))
        return [x for x in items if x.at >= since][-limit:][::-1]

    def get(self, merchant: str, room_id: str, answer_id: str) -> LoggedAnswer | None:
        with self._lock:
            for x in self._rooms.get((merchant, room_id), ()):
                if x.answer_id == answer_id:
                    return x
        return None

    def flag(self, merchant: str, room_id: str, answer_id: str) -> bool:
        """Mark an answer filed for review (shown on the dashboard); False if it is no longer logged."""
        x = self.get(merchant, room_id, answer_id)
        if x is not None:
            x.flagged = True
        return x is not None


# --- funnel ----------------------------------------------------------------------------------
FUNNEL_KEYS = ("viewers", "watch_minutes", "clicks", "carts", "orders", "gmv")


def room_funnel(engine, merchant: str, room_id: str, minutes: int = 30, now: float | None = None) -> dict:
    """Per-minute funnel of one room's events (``session_id`` = room id), the last ``minutes`` minutes."""
    now = time.time() if now is None else now
    end_min = int(now // 60) * 60
    start = end_min - (minutes - 1) * 60
    e = am.events
    q = select(e.c.viewer_id, e.c.type, e.c.ts, e.c.seconds, e.c.amount_fen).where(
        e.c.merchant == merchant, e.c.session_id == room_id, e.c.ts >= start, e.c.ts < end_min + 60
    )
    with read_tx(engine) as conn:
        rows = conn.execute(q).all()
    buckets = {
        start + i * 60: {"viewers": set(), "watch": 0.0, "clicks": 0, "carts": 0, "orders": 0, "gmv": 0}
        for i in range(minutes)
    }
    total_viewers: set[str] = set()
    for vid, typ, ts, seconds, amount in rows:
        b = buckets.get(int(ts // 60) * 60)
        if b is None:
            continue
        if typ in ("enter", "watch", "comment", "like", "product_click", "add_to_cart", "purchase", "share"):
            b["viewers"].add(vid)
            total_viewers.add(vid)
        if typ == "watch":
            b["watch"] += seconds or 0.0
        elif typ == "product_click":
            b["clicks"] += 1
        elif typ == "add_to_cart":
            b["carts"] += 1
        elif typ == "purchase":
            b["orders"] += 1
            b["gmv"] += amount or 0
    ts_list = sorted(buckets)
    out = {
        "minutes": [time.strftime("%H:%M", time.localtime(t)) for t in ts_list],
        "ts": ts_list,
        "viewers": [len(buckets[t]["viewers"]) for t in ts_list],
        "watch_minutes": [round(buckets[t]["watch"] / 60, 1) for t in ts_list],
        "clicks": [buckets[t]["clicks"] for t in ts_list],
        "carts": [buckets[t]["carts"] for t in ts_list],
        "orders": [buckets[t]["orders"] for t in ts_list],
        "gmv": [round(buckets[t]["gmv"] / 100, 2) for t in ts_list],
    }
    out["totals"] = {
        "viewers": len(total_viewers),
        "watch_minutes": round(sum(out["watch_minutes"]), 1),
        "clicks": sum(out["clicks"]),
        "carts": sum(out["carts"]),
        "orders": sum(out["orders"]),
        "gmv": round(sum(out["gmv"]), 2),
        "events": len(rows),
    }
    return out


# --- hot questions -----------------------------------------------------------------------------
def hot_questions(
    answers: list[LoggedAnswer], catalog, window_s: float = 600, now: float | None = None, limit: int = 6
) -> list[dict]:
    """Cluster recent viewer questions by (intent, product) and suggest what the host could say."""
    now = time.time() if now is None else now
    groups: dict[tuple[str, str | None], list[LoggedAnswer]] = {}
    for a in answers:
        if now - a.at > window_s or a.intent in ("greeting", "rate_limited", "empty", "abuse"):
            continue
        sku = next((c.get("sku") for c in a.citations if c.get("sku")), None)
        groups.setdefault((a.intent or "other", sku), []).append(a)
    out = []
    for (intent, sku), items in groups.items():
        p = catalog.product(sku) if (sku and catalog is not None) else None
        viewers = len({x.viewer_id for x in items})
        label = (f"{p.name}·" if p else "") + INTENT_ZH.get(intent, intent)
        unanswered = sum(1 for x in items if x.refused)
        out.append(
            {
                "label": label,
                "intent": intent,
                "sku": sku,
                "count": len(items),
                "viewers": viewers,
                "examples": list(dict.fromkeys(x.question for x in items))[:3],
                "unanswered": unanswered,
                "talking_point": talking_point(intent, p, items),
            }
        )
    out.sort(key=lambda g: (-g["viewers"], -g["count"]))
    return out[:limit]


def talking_point(intent: str, p, items: list[LoggedAnswer]) -> str:
    if p is None:
        best = next((x.answer for x in items if not x.refused), None)
        return f"统一回复：{best}" if best else "知识库暂无相关资料，建议主播口头说明并补充到知识库"
    if intent == "price":
        s = f"口播价格：{p.name}直播价{p.price:g}元"
        return s + (f"，日常价{p.list_price:g}元" if p.list_price and p.list_price > p.price else "")
    if intent == "stock" and p.stock is not None:
        return f"说明库存：{p.name}还有{p.stock}件"
    if intent in ("suitability",) and (p.suitable_for or p.not_suitable_for):
        s = f"讲清适用人群：适合{'、'.join(p.suitable_for) or '大多数人'}"
        return s + (f"；不适合{'、'.join(p.not_suitable_for)}" if p.not_suitable_for else "")
    if intent in ("detail", "spec") and p.specs:
        k, v = next(iter(p.specs.items()))
        return f"展示规格：{k}{v}"
    if p.faq:
        return f"集中回答：{p.faq[0].q} —— {p.faq[0].a}"
    if p.selling_points:
        return f"强调卖点：{p.selling_points[0]}"
    return f"再讲一遍{p.name}的核心信息"


# --- alerts ------------------------------------------------------------------------------------
def alerts(
    funnel: dict, campaigns: list[dict], answers: list[LoggedAnswer], open_reviews: int, now: float | None = None
) -> list[dict]:
    now = time.time() if now is None else now
    out: list[dict] = []
    v = funnel.get("viewers") or []
    if len(v) >= 3 and v[-2] >= 10 and v[-1] < v[-2] * 0.7 and v[-1] > 0:
        out.append(
            {
                "level": "warn",
                "text": f"在线人数较上一分钟下降 {round((1 - v[-1] / v[-2]) * 100)}%",
                "kind": "viewers_drop",
            }
        )
    clicks, orders = funnel.get("clicks") or [], funnel.get("orders") or []
    if len(clicks) >= 5 and sum(clicks[-5:]) >= 20 and sum(orders[-5:]) == 0:
        out.append({"level": "warn", "text": "近5分钟点击商品较多但没有成交，建议讲解优惠或发券", "kind": "no_orders"})
    for c in campaigns:
        if c["status"] == "active" and c["budget_count"] and c["issued_count"] >= 0.9 * c["budget_count"]:
            out.append(
                {
                    "level": "warn",
                    "kind": "coupon_budget",
                    "text": f"优惠券「{c['title']}」已发出 {c['issued_count']}/{c['budget_count']} 张，预算即将用完",
                }
            )
    recent = [a for a in answers if now - a.at <= 600]
    unanswered = sum(1 for a in recent if a.refused and a.intent not in ("rate_limited", "abuse", "empty"))
    if unanswered >= 3:
        out.append(
            {
                "level": "info",
                "kind": "unanswered",
                "text": f"近10分钟有 {unanswered} 个问题没能回答，可能是知识库缺资料",
            }
        )
    if open_reviews:
        out.append({"level": "info", "kind": "reviews", "text": f"有 {open_reviews} 条回答被标记待复核"})
    return out


# --- the demo simulator -----------------------------------------------------------------------
SIM_QUESTIONS = [
    "{name}多少钱",
    "{name}还有货吗",
    "{name}敏感肌能用吗",
    "{name}有什么规格",
    "什么时候发货",
    "能开发票吗",
    "有优惠券吗",
    "{name}适合什么人",
    "包邮吗",
    "{name}和{other}有什么区别",
]


def _short(p) -> str:
    import re

    if p.aliases:
        return p.aliases[0]
    name = re.sub(r"\s*\d+(\.\d+)?\s*(ml|g|kg|片|支|盒|袋|件|粒)\b.*$", "", p.name, flags=re.I).strip()
    return (max(name.split(), key=len) if name.split() else p.name)[:12]


@dataclass
class Simulator:
    """Feeds a room with synthetic viewers (events with ``session_id`` = room) and danmaku answered by
    the agent. Demo only: enabled per merchant by ``LIVEROOM_CONSOLE_SIMULATOR``."""

    merchant: str
    room_id: str
    started: float = field(default_factory=time.time)
    task: asyncio.Task | None = None
    events: int = 0
    questions: int = 0
    max_seconds: float = 900.0

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def view(self) -> dict:
        return {"running": self.running, "started": self.started, "events": self.events, "questions": self.questions}

    async def run(self, container, tick_s: float = 1.0, ask_every: int = 2, host=None) -> None:
        """``host``: the host layer's room, fed the same events and danmaku (funnel, clusters, alerts).
        Its answers reach the answer log through the container's answer bus (``channel="sim"``)."""
        svc, kb, agent = container.audience, container.kb, container.agent
        rng = random.Random(hash((self.merchant, self.room_id, int(self.started))))
        cat = await asyncio.to_thread(kb.catalog, self.merchant)
        products = cat.products[:12]
        if not products:
            return
        await asyncio.to_thread(
            svc.upsert_products,
            self.merchant,
            [{"sku": p.sku, "name": p.name, "category": p.category, "price": p.price} for p in products],
        )
        present: list[str] = []
        since: dict[str, float] = {}
        seq = itertools.count(1)
        prefix = f"sim-{self.room_id}-{int(self.started)}"
        n_viewers = 0
        for tick in itertools.count():
            if time.time() - self.started > self.max_seconds:
                break
            now = time.time()
            evs: list[dict] = []

            def add(vid: str, typ: str, **kw: Any) -> None:  # called only within this iteration
                evs.append(  # noqa: B023
                    {
                        "event_id": f"{prefix}-{next(seq)}",
                        "viewer_id": vid,
                        "type": typ,
                        "ts": now,  # noqa: B023
                        "session_id": self.room_id,
                        **kw,
                    }
                )

            for _ in range(rng.randint(2, 6)):
                n_viewers += 1
                vid = f"{prefix}-v{n_viewers}"
                present.append(vid)
                since[vid] = now
                add(vid, "enter")
            on_screen = products[(tick // 20) % len(products)]
            for vid in rng.sample(present, min(len(present), 12)):
                add(vid, "watch", sku=on_screen.sku, seconds=10)
                r = rng.random()
                if r < 0.25:
                    add(vid, "product_click", sku=on_screen.sku)
                if r < 0.08:
                    add(vid, "add_to_cart", sku=on_screen.sku)
                if r < 0.03:
                    add(vid, "purchase", sku=on_screen.sku, amount=on_screen.price, order_id=f"{prefix}-o{next(seq)}")
            for _ in range(rng.randint(0, 2)):
                stayed = [v for v in present if now - since[v] >= 45]
                if len(present) > 20 and stayed:
                    vid = rng.choice(stayed)
                    present.remove(vid)
                    add(vid, "leave", seconds=round(now - since.pop(vid), 1))
            res = await asyncio.to_thread(svc.ingest, self.merchant, evs)
            self.events += res.accepted
            if host is not None:
                _feed_host(host, evs)
            if tick % ask_every == 0 and present:
                p, other = rng.choice(products), rng.choice(products)
                text = rng.choice(SIM_QUESTIONS).format(name=_short(p), other=_short(other))
                vid = rng.choice(present)
                if host is not None:
                    try:
                        host.ingest(vid, text, context_sku=on_screen.sku)
                    except Exception:  # noqa: BLE001
                        log.debug("host danmaku failed", exc_info=True)
                try:
                    await agent.answer(
                        ViewerMessage(
                            merchant=self.merchant,
                            room_id=self.room_id,
                            viewer_id=vid,
                            verified=True,  # the merchant's own simulated (seeded) viewers
                            text=text,
                            context_sku=on_screen.sku,
                            channel="sim",
                        )
                    )
                    self.questions += 1
                except Exception:  # noqa: BLE001 - the demo keeps going
                    log.exception("simulator question failed")
            await asyncio.sleep(tick_s)


def _feed_host(room, evs: list[dict]) -> None:
    try:
        from host.frames import RoomEvent

        for e in evs:
            room.ingest_event(
                RoomEvent(
                    type=e["type"],
                    viewer_id=e["viewer_id"],
                    ts=e["ts"],
                    sku=e.get("sku"),
                    amount=e.get("amount"),
                    seconds=e.get("seconds"),
                    event_id=e["event_id"],
                )
            )
    except Exception:  # noqa: BLE001 - the host layer is optional
        log.debug("host events failed", exc_info=True)


# --- the virtual-host layer (host/), when it runs the room --------------------------------------
def host_room(app, merchant: str, room_id: str, create: bool = False):
    """The host layer's room for (merchant, room) if the host package is installed (None otherwise)."""
    try:
        from host.api import get_hub
    except Exception:  # noqa: BLE001 - no host layer: the console's own sources are used
        return None
    try:
        hub = get_hub(app) if create else getattr(app.state, "host_hub", None)
        return hub.room(merchant, room_id, create=create) if hub is not None else None
    except Exception:  # noqa: BLE001
        log.debug("host room unavailable", exc_info=True)
        return None


def host_funnel(room, minutes: int) -> dict:
    now = room.clock.now()
    series = room.funnel.series(minutes, now)
    tot = room.funnel.totals()
    out = {
        "minutes": [time.strftime("%H:%M", time.localtime(m.minute)) for m in series],
        "ts": [m.minute for m in series],
        "viewers": [max(m.online, m.active_viewers) for m in series],
        "watch_minutes": [round(m.watch_seconds / 60, 1) for m in series],
        "clicks": [m.product_clicks for m in series],
        "carts": [m.add_to_cart for m in series],
        "orders": [m.orders for m in series],
        "gmv": [round(m.gmv, 2) for m in series],
    }
    out["totals"] = {
        "viewers": tot.unique_viewers,
        "watch_minutes": round(sum(out["watch_minutes"]), 1),
        "clicks": tot.product_clicks,
        "carts": tot.add_to_cart,
        "orders": tot.orders,
        "gmv": round(tot.gmv, 2),
        "events": sum(m.active_viewers for m in series),
        "online": room.funnel.online,
    }
    return out


def host_hot(room, answers: list[LoggedAnswer] = (), limit: int = 6) -> list[dict]:
    by_question = {a.question: a for a in reversed(answers) if not a.refused}
    out = []
    for cv in room.suggestions.hot_clusters(limit):
        s = room.suggestions.for_cluster(cv.cluster_id)
        known = next((by_question[q] for q in cv.examples if q in by_question), None)
        fallback = f"统一回复：{known.answer}" if known else "等待更多观众提问后生成话术"
        out.append(
            {
                "label": cv.label + (f"（{cv.sku}）" if cv.sku else ""),
                "intent": cv.topic or "",
                "sku": cv.sku,
                "count": cv.messages,
                "viewers": cv.viewers,
                "examples": cv.examples[:3],
                "unanswered": 0 if cv.answered_at else (1 if cv.hot and s is None else 0),
                "talking_point": (s.say if s else "") or (s.message if s else "") or fallback,
                "cluster_id": cv.cluster_id,
                "hot": cv.hot,
            }
        )
    return out


def host_alerts(room, window_s: float = 900) -> list[dict]:
    now = room.clock.now()
    return [
        {"level": "warn" if a.severity != "info" else "info", "text": a.message, "kind": a.kind}
        for a in room.alerts.raised[-10:]
        if now - a.at <= window_s
    ][::-1]


def dashboard(console, app, merchant: str, room_id: str, minutes: int = 30) -> dict:
    """Everything the room's dashboard shows, from the host layer when it runs the room, else from the
    audience events and the answer log."""
    from knowledge.store import KBError

    c = console.container
    hr = host_room(app, merchant, room_id)
    camps = [x.model_dump() for x in c.audience.list_campaigns(merchant)]
    answers = console.answers.recent(merchant, room_id, limit=300)
    try:
        snap = c.kb.snapshot(merchant)
    except KBError:
        snap = None
    fact_text = {}
    if snap is not None:
        for a in answers[:30]:
            for ci in a.citations:
                f = snap.fact(ci["fact_id"])
                if f:
                    fact_text[f.id] = f.text
    open_reviews = console.open_reviews(merchant, room_id)
    if hr is not None:
        funnel = host_funnel(hr, minutes)
        hot = host_hot(hr, answers) or hot_questions(answers, snap.catalog if snap else None)
        own = [a for a in alerts(funnel, camps, answers, open_reviews) if a["kind"] != "viewers_drop"]
        warn = host_alerts(hr) + own
        source = "host"
    else:
        funnel = room_funnel(console.engine, merchant, room_id, minutes)
        hot = hot_questions(answers, snap.catalog if snap else None)
        warn = alerts(funnel, camps, answers, open_reviews)
        source = "events"
    if getattr(console, "regression", None) is not None:
        warn = warn + console.regression.drift.alerts(merchant)  # drift watch (regression/drift.py)
    return {
        "room_id": room_id,
        "now": time.time(),
        "source": source,
        "funnel": funnel,
        "hot_questions": hot,
        "answers": [a.view(fact_text) for a in answers[:30]],
        "coupons": [
            {
                "campaign_id": x["campaign_id"],
                "title": x["title"],
                "status": x["status"],
                "issued_count": x["issued_count"],
                "budget_count": x["budget_count"],
                "issued_value": x["issued_value"],
                "budget_money": x["budget_money"],
                "used_pct": round(100 * x["issued_count"] / x["budget_count"], 1) if x["budget_count"] else 0,
            }
            for x in camps
        ],
        "alerts": warn,
        "open_reviews": open_reviews,
        "simulator": console.simulator_view(merchant, room_id),
    }
