"""HTTP API: batched events with per-item errors, privacy-filtered profiles, campaigns, coupons, rules."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audience.api import router
from tests.support.audience import temp_service


@pytest.fixture()
def svc(tmp_path):
    with temp_service("sqlite", tmp_path, max_batch=50) as s:
        s.upsert_products("demo", [{"sku": "LS-1", "name": "丝绒口红", "category": "彩妆", "price": 129}])
        yield s


@pytest.fixture()
def client(svc):
    app = FastAPI()
    app.include_router(router)
    app.state.container = SimpleNamespace(audience=svc)
    with TestClient(app) as c:
        yield c


def post(client, events, merchant="demo"):
    return client.post("/api/events", json={"merchant": merchant, "events": events})


def test_batch_keeps_valid_items_and_explains_each_bad_one(client, svc):
    now = time.time()
    naive = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
    events = [
        {"event_id": "ok1", "viewer_id": "v1", "type": "enter", "ts": now - 60},  # 0
        {"event_id": "ok2", "viewer_id": "v1", "type": "watch", "sku": "LS-1", "ts": int((now - 30) * 1000)},  # 1 ms
        {"event_id": "bad-type", "viewer_id": "v1", "type": "teleport", "ts": now},  # 2
        {"event_id": "bad-ts1", "viewer_id": "v1", "type": "like", "ts": "last tuesday"},  # 3
        {"event_id": "bad-ts2", "viewer_id": "v1", "type": "like", "ts": naive},  # 4 no offset
        {"event_id": "bad-ts3", "viewer_id": "v1", "type": "like", "ts": now + 86400},  # 5 future
        {"event_id": "bad-ts4", "viewer_id": "v1", "type": "like", "ts": now - 400 * 86400},  # 6 too old
        {"event_id": "ghost", "viewer_id": "nobody", "type": "like", "ts": now},  # 7
        {"viewer_id": "v1", "type": "like"},  # 8 no id
        "like",  # 9
        {"event_id": "m", "viewer_id": "v1", "type": "like", "merchant": "other"},  # 10
        {"event_id": "p", "viewer_id": "v1", "type": "purchase", "sku": "LS-1"},  # 11 no amount
        {"event_id": "s", "viewer_id": "v1", "type": "watch", "seconds": -5},  # 12
        {"event_id": "c", "viewer_id": "v1", "type": "add_to_cart"},  # 13 no sku
        {
            "event_id": "ok3",
            "viewer_id": "v1",
            "type": "add_to_cart",
            "sku": "LS-1",
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 10)),
        },  # 14
        {"event_id": "ok1", "viewer_id": "v1", "type": "enter"},  # 15 duplicate in batch
    ]
    r = post(client, events)
    assert r.status_code == 200
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 1, 12)
    res = {x["index"]: x for x in body["results"]}
    assert [res[i]["status"] for i in (0, 1, 14)] == ["accepted"] * 3 and res[15]["status"] == "duplicate"
    codes = {i: res[i]["error"]["code"] for i in res if res[i]["error"]}
    assert codes == {
        2: "unknown_type",
        3: "bad_timestamp",
        4: "bad_timestamp",
        5: "bad_timestamp",
        6: "bad_timestamp",
        7: "unknown_viewer",
        8: "missing_field",
        9: "invalid",
        10: "merchant_mismatch",
        11: "missing_field",
        12: "bad_field",
        13: "missing_field",
    }
    msgs = {i: res[i]["error"]["message"] for i in codes}
    assert "teleport" in msgs[2] and "add_to_cart" in msgs[2]  # names the valid types
    assert "timezone offset" in msgs[4] and "future" in msgs[5] and "nobody" in msgs[7]
    assert res[2]["event_id"] == "bad-type"
    pv = client.get("/api/merchants/demo/viewers/v1/profile").json()
    assert pv["interest_tags"][0]["tag"] == "口红兴趣" and pv["decision_signals"] == ["cart_not_paid:LS-1"]
    again = post(client, events[:2]).json()
    assert again["duplicates"] == 2 and again["accepted"] == 0


def test_oversized_and_malformed_batches(client):
    big = [{"event_id": f"e{i}", "viewer_id": "v", "type": "like"} for i in range(51)]
    r = post(client, big)
    assert r.status_code == 413 and "limit of 50" in r.json()["detail"] and "split" in r.json()["detail"]
    r = client.post("/api/events", content=b"x" * (3 * 1024 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    assert client.post("/api/events", content=b"{nope", headers={"content-type": "application/json"}).status_code == 422
    assert "merchant" in post(client, [], merchant="bad merchant!").json()["detail"]
    assert client.post("/api/events", json={"merchant": "demo", "events": {"a": 1}}).status_code == 422
    r = client.post("/api/events?merchant=demo", json=[{"event_id": "x", "viewer_id": "v", "type": "enter"}])
    assert r.status_code == 200 and r.json()["accepted"] == 1  # a bare list with ?merchant=


def test_profile_endpoint_never_shows_personal_data(client, svc):
    pii = {"real_name": "李小龙", "phone": "13700001111", "address": "北京市朝阳区某路8号"}
    r = client.post(
        "/api/merchants/demo/viewers",
        json={
            "viewers": [
                {
                    "viewer_id": "vip",
                    "member": True,
                    "orders": 4,
                    "spent": 800,
                    "age_band": "25-34",
                    "gender": "female",
                    "city_tier": 1,
                    **pii,
                },
                {"viewer_id": "bad", "city_tier": 9},
            ]
        },
    )
    assert r.json()["upserted"] == 1 and r.json()["errors"][0]["viewer_id"] == "bad"
    post(client, [{"event_id": "e", "viewer_id": "vip", "type": "enter"}])
    r = client.get("/api/merchants/demo/viewers/vip/profile")
    assert r.status_code == 200
    assert set(r.json()) == {
        "viewer_id",
        "tier",
        "interest_tags",
        "price_sensitivity",
        "spending_power",
        "member",
        "products_in_focus",
        "decision_signals",
        "active_hours",
    }
    assert not any(v in r.text for v in pii.values())
    assert r.json()["tier"] == "铁粉" and r.json()["member"] is True
    assert client.get("/api/merchants/demo/viewers/ghost/profile").status_code == 404
    assert client.get("/api/merchants/other/viewers/vip/profile").status_code == 404  # merchant-scoped
    assert client.get("/api/merchants/bad%20id/viewers/vip/profile").status_code == 422


def test_campaigns_offers_issue_and_audit(client, svc):
    svc.upsert_viewers("demo", [{"viewer_id": "v"}])
    spec = {
        "campaign_id": "C1",
        "title": "满199减20",
        "kind": "amount",
        "amount": 20,
        "threshold": 199,
        "budget_count": 2,
        "valid_until": "2099-01-01T00:00:00+08:00",
    }
    r = client.post("/api/merchants/demo/campaigns", json=spec)
    assert r.status_code == 201 and r.json()["remaining"] == 2
    assert r.json()["valid_until"].startswith("2099-01-01T00:00:00")
    assert client.post("/api/merchants/demo/campaigns", json=spec).status_code == 201  # identical: no-op
    assert client.post("/api/merchants/demo/campaigns", json={**spec, "amount": 99}).status_code == 409
    bad = client.post("/api/merchants/demo/campaigns", json={"title": "x", "kind": "amount", "budget_count": 1})
    assert bad.status_code == 422 and "amount" in json.dumps(bad.json())
    assert [c["campaign_id"] for c in client.get("/api/merchants/demo/campaigns").json()] == ["C1"]
    offers = client.get("/api/merchants/demo/viewers/v/offers").json()
    assert [o["campaign_id"] for o in offers] == ["C1"] and offers[0]["threshold"] == 199
    req = {"viewer_id": "v", "campaign_id": "C1", "idempotency_key": "k"}
    first = client.post("/api/merchants/demo/coupons/issue", json=req).json()
    assert first["code"] == "issued" and first["coupon_id"]
    assert client.post("/api/merchants/demo/coupons/issue", json=req).json()["coupon_id"] == first["coupon_id"]
    assert client.get("/api/merchants/demo/campaigns/C1").json()["issued_count"] == 1
    assert client.get("/api/merchants/demo/campaigns/C1/audit").json()["ok"] is True
    paused = client.post("/api/merchants/demo/campaigns/C1/status", json={"status": "paused"}).json()
    assert paused["status"] == "paused"
    assert client.get("/api/merchants/demo/campaigns/NOPE").status_code == 404
    red = client.post(
        "/api/merchants/demo/coupons/redeem",
        json={"viewer_id": "v", "coupon_ids": [first["coupon_id"]], "order_id": "o1", "order_value": 250},
    ).json()
    assert red["ok"] and red["discount"] == 20


def test_rules_endpoint(client):
    r = client.put("/api/merchants/demo/audience-rules", json={"interest": {"half_life_minutes": 3}})
    assert r.status_code == 200 and r.json()["effective"]["interest"]["half_life_minutes"] == 3
    assert client.get("/api/merchants/demo/audience-rules").json()["overrides"] == {
        "interest": {"half_life_minutes": 3}
    }
    bad = client.put("/api/merchants/demo/audience-rules", json={"tier": {"fan_min": "lots"}})
    assert bad.status_code == 422
    assert client.put("/api/merchants/demo/audience-rules", json={"nonsense": 1}).status_code == 422
