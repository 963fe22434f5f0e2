"""The Douyin live-data-push adapter against a local emulator of the documented protocol (docs/connectors.md):
the platform side signs and pushes (x-nonce-str / x-timestamp / x-roomid / x-msg-type + body + secret →
MD5 → base64 x-signature), runs the push-task API (start / stop / status) and keeps the gifts whose push
failed for the re-query API. Signatures right and wrong, stale timestamps, re-sent and shuffled messages,
a burst, malformed bodies (dead-lettered), and a connection that drops mid-show (gifts recovered)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
from fastapi import FastAPI, Header, Request

from connectors.douyin import parse_push, sign_headers, signature, verify_push
from connectors.store import ConnectorConfig

M, ROOM, DY_ROOM, APP_ID, TOKEN = "demo", "dy-room", "7382777844734167858", "tt1234567cac", "access-token-1"
SECRET = "push-secret-from-the-developer-console"


def test_signature_matches_the_documented_example():
    """The worked example of the platform's signature guide."""
    headers = {"x-nonce-str": "123456", "x-timestamp": "456789", "x-roomid": "268", "x-msg-type": "user_group"}
    assert signature(headers, "abc123你好", "123abc") == "GAkalGmhzqlUGQO/TgvMug=="
    body = b'[{"msg_id":"1","sec_openid":"o1","content":"hi","timestamp":1}]'
    h = sign_headers(body, SECRET, DY_ROOM, "live_comment", nonce="n1")
    assert verify_push(h, body, SECRET)["x-roomid"] == DY_ROOM
    assert parse_push("live_comment", body)[0].signed_identity is True


class Platform:
    """The emulated Douyin side: the task API, the failed-push store, and a pusher that signs."""

    def __init__(self) -> None:
        self.tasks: dict[tuple[str, str], int] = {}
        self.failed: dict[tuple[str, str], list[dict]] = {}
        self.calls: list[str] = []
        self.app = FastAPI()
        self.seq = 0
        self.down = False  # the developer server is unreachable (a dropped connection)

        def check(token: str | None) -> dict | None:
            return None if token == TOKEN else {"err_no": 40022, "err_msg": "无效的AccessToken", "logid": "x"}

        @self.app.post("/api/live_data/task/start")
        async def start(request: Request, access_token: str | None = Header(None)) -> dict:
            if bad := check(access_token):
                return bad
            b = await request.json()
            self.calls.append(f"start {b['msg_type']}")
            self.tasks[(b["roomid"], b["msg_type"])] = 3
            return {"err_no": 0, "err_msg": "ok", "logid": "1", "data": {"task_id": f"t-{b['msg_type']}"}}

        @self.app.post("/api/live_data/task/stop")
        async def stop(request: Request, access_token: str | None = Header(None)) -> dict:
            if bad := check(access_token):
                return bad
            b = await request.json()
            self.calls.append(f"stop {b['msg_type']}")
            self.tasks[(b["roomid"], b["msg_type"])] = 2
            return {"err_no": 0, "err_msg": "ok", "logid": "1", "data": {}}

        @self.app.get("/api/live_data/task/get")
        async def status(roomid: str, appid: str, msg_type: str, access_token: str | None = Header(None)) -> dict:
            if bad := check(access_token):
                return bad
            return {
                "err_no": 0,
                "err_msg": "ok",
                "logid": "1",
                "data": {"status": self.tasks.get((roomid, msg_type), 1)},
            }

        @self.app.get("/api/live_data/task/fail_data/get")
        async def fail_data(
            roomid: str,
            appid: str,
            msg_type: str,
            page_num: int,
            page_size: int,
            access_token: str | None = Header(None),
        ) -> dict:
            if bad := check(access_token):
                return bad
            items = self.failed.get((roomid, msg_type), [])
            page = items[(page_num - 1) * page_size : page_num * page_size]
            data_list = [{"roomid": roomid, "msg_type": msg_type, "payload": json.dumps([m])} for m in page]
            return {
                "err_no": 0,
                "err_msg": "ok",
                "logid": "1",
                "data": {"page_num": page_num, "total_count": len(items), "data_list": data_list},
            }

    def message(self, kind: str, **kw: Any) -> dict:
        self.seq += 1
        m = {
            "msg_id": f"dy-{kind}-{self.seq}",
            "sec_openid": kw.pop("openid", f"open-{self.seq % 7}"),
            "avatar_url": "https://p3.example/a.jpg",
            "nickname": kw.pop("nickname", "抖音用户"),
            "timestamp": kw.pop("timestamp", int(time.time())),
        }
        m.update(kw)
        return m

    def push(self, client, msg_type: str, messages: list[dict], *, secret: str = SECRET, **over: Any):
        body = over.pop("body", None) or json.dumps(messages, ensure_ascii=False).encode()
        headers = sign_headers(body, secret, over.pop("roomid", DY_ROOM), msg_type, nonce=secrets.token_hex(8))
        headers.update(over.pop("headers", {}))
        if self.down:  # the push never reaches the developer server: the platform keeps gifts for re-query
            if msg_type in ("live_gift", "live_fansclub"):
                self.failed.setdefault((DY_ROOM, msg_type), []).extend(messages)
            return None
        r = client.post("/connectors/douyin/dy1/push", content=body, headers=headers)
        if r.status_code >= 300 and msg_type in ("live_gift", "live_fansclub"):
            self.failed.setdefault((DY_ROOM, msg_type), []).extend(messages)
        return r


@pytest.fixture()
def site(tmp_path, demo_root, use_embedder):
    from fastapi.testclient import TestClient

    from connectors.api import get_service
    from connectors.store import ConnectorStore
    from tests.support.console import ServerThread, console_app, grant, make_container

    platform = Platform()
    with ServerThread(platform.app) as emu:
        c = make_container(tmp_path, demo_root, use_embedder)
        c.rooms.ensure(M, ROOM, "douyin room", "test")
        cfg = ConnectorConfig(
            connector_id="dy1",
            merchant=M,
            room_id=ROOM,
            kind="douyin",
            platform="douyin",
            platform_room=DY_ROOM,
            app_id=APP_ID,
            secret=SECRET,
            access_token=TOKEN,
            api_base=emu.url,
        )
        ConnectorStore(c.settings.data_dir / "connectors").create(cfg)
        app = console_app(c)
        with TestClient(app) as client:
            svc = client.portal.call(_service, app, get_service)
            grant(client, M)
            seen: list = []
            answers: list = []
            svc.hub.event_hooks.append(seen.append)
            svc.hub.answer_hooks.append(lambda ev, out: answers.append((ev, out)))
            yield {"client": client, "svc": svc, "platform": platform, "seen": seen, "answers": answers}


async def _service(app, get_service):
    return get_service(app)


async def _drain(svc) -> None:
    await svc.hub.drain(timeout=60)


def drain(s) -> None:
    s["client"].portal.call(_drain, s["svc"])


def test_pushes_enter_the_room_signed_viewers_and_answers(site):
    p, client = site["platform"], site["client"]
    r = p.push(
        client, "live_comment", [p.message("c", content="小蓝瓶多少钱", openid="open-A"), p.message("c", content="666")]
    )
    assert r.status_code == 200 and r.json()["accepted"] == 2
    assert (
        p.push(client, "live_gift", [p.message("g", sec_gift_id="gift-rose", gift_num=3, gift_value=100)]).status_code
        == 200
    )
    assert p.push(client, "live_like", [p.message("l", like_num=15)]).status_code == 200
    assert (
        p.push(client, "live_fansclub", [p.message("f", fansclub_reason_type=1, fansclub_level=1)]).status_code == 200
    )
    drain(site)
    kinds = [e.kind for e in site["seen"]]
    assert kinds == ["comment", "comment", "gift", "like", "fan_club"]
    gift = site["seen"][2]
    assert gift.count == 3 and gift.amount == 1.0 and gift.gift == "gift-rose"
    assert len(site["answers"]) == 1  # "666" is chatter: counted, not answered
    ev, out = site["answers"][0]
    assert "129" in out["answer"] and out["label"] == "AI生成"
    # the platform signed who sent it: a verified viewer, under a per-merchant id (never the openid)
    assert ev.verified and ev.viewer_id.startswith("douyin.") and "open-A" not in ev.viewer_id
    health = site["svc"].hub.runtime("dy1").health.snapshot()
    assert health["state"] == "connected" and health["events"] == 5 and health["rejected"] == 0


def test_forged_tampered_and_stale_pushes_are_refused(site, caplog):
    p, client = site["platform"], site["client"]
    msgs = [p.message("c", content="包邮吗")]
    body = json.dumps(msgs, ensure_ascii=False).encode()
    with caplog.at_level("WARNING", logger="liveroom.connectors"):
        forged = p.push(client, "live_comment", msgs, secret="guessed-secret")
        h = sign_headers(body, SECRET, DY_ROOM, "live_comment", nonce="n")
        tampered = body.replace("包邮".encode(), "免费".encode())  # signed for one body, another sent
        tampered_body = client.post("/connectors/douyin/dy1/push", content=tampered, headers=h)
        # the body is signed for one room; the header claims another
        moved = client.post("/connectors/douyin/dy1/push", content=body, headers=h | {"x-roomid": "999"})
        retyped = client.post("/connectors/douyin/dy1/push", content=body, headers=h | {"x-msg-type": "live_gift"})
        old = sign_headers(body, SECRET, DY_ROOM, "live_comment", nonce="n", ts_ms=int((time.time() - 3600) * 1000))
        stale = client.post("/connectors/douyin/dy1/push", content=body, headers=old)
        missing = client.post("/connectors/douyin/dy1/push", content=body, headers={"content-type": "application/json"})
    for r in (forged, moved, retyped, stale, missing):
        assert r.status_code == 401, r.text
    assert tampered_body.status_code == 401
    assert stale.json()["error"]["detail"]["reason"] == "stale"
    assert missing.json()["error"]["detail"]["reason"] == "missing_headers"
    assert forged.json()["error"]["detail"]["reason"] == "bad_signature"
    assert sum("douyin push to dy1 rejected" in r.message for r in caplog.records) == 6
    # correctly signed, but for a Douyin room this connector is not bound to
    other = p.push(client, "live_comment", msgs, roomid="111")
    assert other.status_code == 409 and other.json()["error"]["code"] == "wrong_room"
    drain(site)
    assert site["seen"] == []  # nothing forged reached the room
    assert site["svc"].hub.runtime("dy1").health.snapshot()["rejected"] == 6


def test_resends_shuffles_and_a_burst(site):
    p, client, svc = site["platform"], site["client"], site["svc"]
    now = int(time.time())
    batch = [p.message("c", content=f"第{i}条 主播好", timestamp=now + i) for i in range(5)]
    first = p.push(client, "live_comment", list(reversed(batch)))  # shuffled within the push
    assert first.json()["accepted"] == 5
    again = p.push(client, "live_comment", batch[1:3])  # the platform re-sends two of them
    assert again.json() == {"ok": True, "accepted": 0, "duplicates": 2, "dropped": 0}
    drain(site)
    assert [e.msg_id for e in site["seen"]] == [m["msg_id"] for m in batch]  # in platform-time order
    # a burst: 300 messages in 3 pushes of 100, questions among them
    questions = 0
    for k in range(3):
        msgs = []
        for i in range(100):
            q = i % 4 == 0
            questions += q
            msgs.append(p.message("c", content="小蓝瓶多少钱" if q else "哈哈哈", timestamp=now + 10 + k))
        assert p.push(client, "live_comment", msgs).json()["accepted"] == 100
    drain(site)
    stats = svc.hub.stats.as_dict()
    assert stats["dropped"] == 0 and stats["failed"] == 0
    assert len(site["seen"]) == 305
    # the room's triage collapses a viewer repeating themselves, the rest are answered
    assert 0 < len(site["answers"]) <= questions


def test_malformed_pushes_are_dead_lettered(site):
    p, client, svc = site["platform"], site["client"], site["svc"]
    cases = [
        ("live_comment", b"[{not json", "not JSON"),
        ("live_comment", json.dumps([p.message("c")]).encode(), "needs 'content'"),
        ("live_gift", json.dumps([{"sec_openid": "o"}]).encode(), "msg_id"),
        ("live_share", b"[]", "unknown x-msg-type"),
    ]
    for mt, body, why in cases:
        h = sign_headers(body, SECRET, DY_ROOM, mt, nonce=secrets.token_hex(4))
        r = client.post("/connectors/douyin/dy1/push", content=body, headers=h)
        assert r.status_code == 400 and why in r.json()["error"]["message"], r.text
    dead = client.get(f"/api/merchants/{M}/connectors/dy1/dead-letters").json()["dead_letters"]
    assert len(dead) == 4 and dead[-1]["headers"]["x-msg-type"] == "live_comment"
    assert svc.hub.runtime("dy1").health.snapshot()["dead_letters"] == 4


def test_tasks_and_a_dropped_connection_mid_show(site):
    p, client, svc = site["platform"], site["client"], site["svc"]
    start = client.post(f"/api/merchants/{M}/connectors/dy1/tasks/start")
    assert start.status_code == 200, start.text
    assert set(start.json()["tasks"]) == {"live_comment", "live_gift", "live_like", "live_fansclub"}
    status = client.post(f"/api/merchants/{M}/connectors/dy1/tasks/status").json()["tasks"]
    assert set(status.values()) == {"running"}
    # gifts during the show; the connection drops for a while (pushes lost), then comes back
    delivered = [p.message("g", sec_gift_id="rose", gift_num=1) for _ in range(3)]
    assert p.push(client, "live_gift", delivered).status_code == 200
    p.failed[(DY_ROOM, "live_gift")] = list(delivered[:1])  # the platform also lists one that did arrive
    p.down = True
    lost = [p.message("g", sec_gift_id="rocket", gift_num=1, gift_value=50000) for _ in range(150)]
    for i in range(0, 150, 50):
        p.push(client, "live_gift", lost[i : i + 50])
    p.push(client, "live_comment", [p.message("c", content="还在吗")])  # comments are not re-queryable
    p.down = False
    got = client.post(f"/api/merchants/{M}/connectors/dy1/requery").json()
    assert got["found"] == 151 and got["accepted"] == 150 and got["duplicates"] == 1  # paged (100 a page)
    drain(site)
    gifts = [e for e in site["seen"] if e.kind == "gift"]
    assert len(gifts) == 153 and len({e.msg_id for e in gifts}) == 153
    stop = client.post(f"/api/merchants/{M}/connectors/dy1/tasks/stop")
    assert stop.status_code == 200 and p.calls.count("stop live_gift") == 1
    assert svc.hub.runtime("dy1").health.snapshot()["state"] == "stopped"
    # a wrong access token is the platform's error, named
    from connectors.store import ConnectorStore

    store = ConnectorStore(svc.store.root)
    cfg = store.get("dy1").model_copy(update={"access_token": "expired"})
    svc.hub.register(cfg)
    bad = client.post(f"/api/merchants/{M}/connectors/dy1/tasks/status")
    assert bad.status_code == 502 and "40022" in bad.json()["error"]["message"]
