"""The generic signed webhook, end to end: a real `curl` against a real server (uvicorn on a loopback
port), then the edge cases through the app: wrong signature, stale timestamp (replay window), the same
batch twice (idempotent by msg_id), a malformed body (400, dead-lettered, viewable, replayable once fixed),
identity (unsigned by default: anonymous viewers; a merchant's middleware may vouch for its users)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from connectors.store import ConnectorConfig
from connectors.webhook import sign

M, ROOM = "demo", "wh-room"


@pytest.fixture()
def app_and_service(tmp_path, demo_root, use_embedder):
    from fastapi.testclient import TestClient

    from connectors.api import get_service
    from tests.support.console import console_app, grant, make_container

    c = make_container(tmp_path, demo_root, use_embedder)
    c.rooms.ensure(M, ROOM, "webhook room", "test")
    app = console_app(c)
    with TestClient(app) as client:
        svc = client.portal.call(_service, app, get_service)  # created on the app's event loop
        secret = svc.create(
            ConnectorConfig(connector_id="wh1", merchant=M, room_id=ROOM, kind="webhook", platform="kuaishou")
        )
        grant(client, M)
        yield app, client, svc, secret


def post(client, secret: str, body: bytes, ts: float | None = None, sig: str | None = None):
    ts = int(time.time() if ts is None else ts)
    headers = {
        "Content-Type": "application/json",
        "X-LiveRoom-Timestamp": str(ts),
        "X-LiveRoom-Signature": sig or sign(secret, ts, body),
    }
    return client.post("/connectors/webhook/wh1", content=body, headers=headers)


def events_body(*evs: dict) -> bytes:
    return json.dumps({"events": list(evs)}, ensure_ascii=False).encode()


def comment(msg_id: str, text: str, user: str = "ks-user-1") -> dict:
    return {"kind": "comment", "msg_id": msg_id, "user_id": user, "nickname": "小鹿", "text": text, "ts": time.time()}


async def drained(svc) -> None:
    await svc.hub.drain(timeout=30)


def test_signed_batch_is_answered_once_and_forgeries_are_refused(app_and_service, caplog):
    app, client, svc, secret = app_and_service
    answers = []
    svc.hub.answer_hooks.append(lambda ev, out: answers.append((ev, out)))
    body = events_body(comment("m-1", "小蓝瓶多少钱"), {"kind": "like", "msg_id": "l-1", "user_id": "u2", "count": 5})
    r = post(client, secret, body)
    assert r.status_code == 200 and r.json() == {"ok": True, "accepted": 2, "duplicates": 0, "dropped": 0}
    again = post(client, secret, body)  # the platform re-sends: idempotent by msg_id
    assert again.json()["duplicates"] == 2 and again.json()["accepted"] == 0
    client.portal.call(drained, svc)
    assert len(answers) == 1
    ev, out = answers[0]
    assert "129" in out["answer"] and out["label"] == "AI生成"
    assert ev.verified is False and ev.viewer_id.startswith("anon-kuaishou-")  # never the platform's id
    assert "ks-user-1" not in ev.viewer_id

    with caplog.at_level("WARNING", logger="liveroom.connectors"):
        bad = post(client, secret, body, sig="sha256=" + "0" * 64)
        stale = post(client, secret, body, ts=time.time() - 3600)
        other_secret = post(client, "lcs_not-the-secret", events_body(comment("m-9", "包邮吗")))
        unsigned = client.post("/connectors/webhook/wh1", content=body, headers={"Content-Type": "application/json"})
    assert bad.status_code == 401 and bad.json()["error"]["detail"]["reason"] == "bad_signature"
    assert stale.status_code == 401 and stale.json()["error"]["detail"]["reason"] == "stale"
    assert other_secret.status_code == 401
    assert unsigned.status_code == 401 and unsigned.json()["error"]["detail"]["reason"] == "missing_headers"
    assert sum("rejected" in r.message for r in caplog.records) == 4  # a clear log line for each forgery
    health = svc.hub.runtime("wh1").health.snapshot()
    assert health["rejected"] == 4 and health["events"] == 4 and health["duplicates"] == 2
    assert client.post("/connectors/webhook/nope", content=body).status_code == 404


def test_malformed_events_are_dead_lettered_viewable_and_replayable(app_and_service):
    app, client, svc, secret = app_and_service
    answers = []
    svc.hub.answer_hooks.append(lambda ev, out: answers.append(out))
    cases = {
        b"{not json": "body is not JSON",
        events_body({"kind": "shout", "msg_id": "x", "user_id": "u"}): "unknown event kind",
        events_body({"kind": "comment", "msg_id": "x2", "user_id": "u", "text": ""}): "non-empty 'text'",
        events_body({"kind": "comment", "user_id": "u", "text": "包邮吗"}): "msg_id",
    }
    ids = []
    for body, why in cases.items():
        r = post(client, secret, body)
        assert r.status_code == 400, body
        err = r.json()
        assert err["error"]["code"] == "malformed_event" and why in err["error"]["message"], err
        ids.append(err["dl_id"])
    listed = client.get(f"/api/merchants/{M}/connectors/wh1/dead-letters").json()["dead_letters"]
    assert {d["dl_id"] for d in listed} == set(ids) and listed[0]["raw"]  # kept as received
    assert svc.hub.runtime("wh1").health.dead_letters == 4
    # replaying it unchanged fails again (and it stays); replaying a corrected body enters the room
    missing_id = ids[-1]
    same = client.post(f"/api/merchants/{M}/connectors/wh1/dead-letters/{missing_id}/replay")
    assert same.status_code == 400
    fixed = events_body({"kind": "comment", "msg_id": "fixed-1", "user_id": "u", "text": "包邮吗"})
    ok = client.post(
        f"/api/merchants/{M}/connectors/wh1/dead-letters/{missing_id}/replay", json={"raw": fixed.decode()}
    )
    assert ok.status_code == 200 and ok.json()["accepted"] == 1
    client.portal.call(drained, svc)
    assert answers and "包邮" in answers[-1]["answer"]
    entry = next(
        d
        for d in client.get(f"/api/merchants/{M}/connectors/wh1/dead-letters").json()["dead_letters"]
        if d["dl_id"] == missing_id
    )
    assert entry["replayed"] is True
    # the dead letters survive a restart (the file under data_dir/connectors/dead/)
    from connectors.deadletter import DeadLetters

    again = DeadLetters(svc.dead.root)
    assert {d["dl_id"] for d in again.list("wh1")} == set(ids)
    assert next(d for d in again.list("wh1") if d["dl_id"] == missing_id)["replayed"] is True


def test_identity_is_anonymous_unless_the_merchant_vouches(app_and_service):
    app, client, svc, secret = app_and_service
    answers = []
    svc.hub.answer_hooks.append(lambda ev, out: answers.append((ev, out)))
    post(client, secret, events_body(comment("c-1", "给我发张券", user="vip-1")))
    client.portal.call(drained, svc)
    ev, out = answers[-1]
    assert ev.verified is False and "登录" in out["answer"]  # anonymous: no coupon from a claimed id
    # a connector whose middleware vouches for its users (trust_identity) gets verified viewers
    trusted = svc.create(
        ConnectorConfig(
            connector_id="wh2", merchant=M, room_id=ROOM, kind="webhook", platform="shop", trust_identity=True
        )
    )
    body = events_body(comment("c-2", "给我发张券", user="vip-1"))
    ts = int(time.time())
    r = client.post(
        "/connectors/webhook/wh2",
        content=body,
        headers={"X-LiveRoom-Timestamp": str(ts), "X-LiveRoom-Signature": sign(trusted, ts, body)},
    )
    assert r.status_code == 200
    client.portal.call(drained, svc)
    ev, out = answers[-1]
    assert ev.verified is True and ev.viewer_id.startswith("shop.") and "vip-1" not in ev.viewer_id
    # a body claiming to be verified changes nothing
    forged = events_body(comment("c-3", "给我发张券", user="vip-2") | {"verified": True, "signed_identity": True})
    post(client, secret, forged)
    client.portal.call(drained, svc)
    assert answers[-1][0].verified is False


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_webhook_with_real_curl(tmp_path, demo_root, use_embedder):
    """The documented curl example (docs/connectors.md), against a real server."""
    from connectors.store import ConnectorStore
    from tests.support.console import ServerThread, console_app, make_container

    c = make_container(tmp_path, demo_root, use_embedder)
    c.rooms.ensure(M, ROOM, "webhook room", "test")
    cfg = ConnectorConfig(connector_id="wh1", merchant=M, room_id=ROOM, kind="webhook", platform="kuaishou")
    _, secret = ConnectorStore(c.settings.data_dir / "connectors").create(cfg)  # as the console does
    answers = []
    c.answer_bus.subscribe(lambda ev: answers.append(ev) if ev.channel == "connector" else None)
    app = console_app(c)
    body = json.dumps(
        {"events": [{"kind": "comment", "msg_id": "curl-1", "user_id": "u-42", "text": "小蓝瓶多少钱"}]},
        ensure_ascii=False,
    )
    (tmp_path / "body.json").write_text(body, encoding="utf-8")
    ts = str(int(time.time()))
    sig = sign(secret, ts, body.encode())
    with ServerThread(app) as srv:

        def curl(signature: str = sig) -> subprocess.CompletedProcess:
            return subprocess.run(
                [
                    "curl", "-sS", "-w", "\n%{http_code}", "-X", "POST", f"{srv.url}/connectors/webhook/wh1",
                    "-H", "Content-Type: application/json",
                    "-H", f"X-LiveRoom-Timestamp: {ts}",
                    "-H", f"X-LiveRoom-Signature: {signature}",
                    "--data-binary", f"@{tmp_path / 'body.json'}",
                ],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip

        first = curl().stdout.rsplit("\n", 1)
        assert first[1] == "200" and json.loads(first[0]) == {"ok": True, "accepted": 1, "duplicates": 0, "dropped": 0}
        second = curl().stdout.rsplit("\n", 1)
        assert json.loads(second[0])["duplicates"] == 1  # curl sends it again: answered once
        forged = curl("sha256=" + "0" * 64).stdout.rsplit("\n", 1)
        assert forged[1] == "401" and json.loads(forged[0])["error"]["code"] == "bad_signature"
        deadline = time.time() + 30
        while not answers and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    assert len(answers) == 1 and "129" in answers[0].answer
    assert answers[0].viewer_id.startswith("anon-kuaishou-")


async def _service(app, get_service):
    return get_service(app)
