"""Tenant isolation, generated from the app's route table: for every route with a merchant (or room) in
its path, merchant B's API token and B's console session get 403/404 on merchant A's resources — and
A's data is unchanged afterwards. Every route must be classified (public / ops / scoped / principal),
so a route added later cannot skip the guard; without credentials every non-public route is refused.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from console.guard import OPS, PUBLIC, classify, route_table
from console.service import get_console
from core.settings import ConsoleSettings
from tests.conftest import mini_products, write_json
from tests.support.audience import backends
from tests.support.console import backend_container, console_app, login

A, B = "demo", "rival"


def _with_all_routers(app):
    """The server's routers, plus the colleagues' routers the server will include (host, voice) if present,
    so their routes are checked too before they are wired."""
    import importlib

    from tests.support.console import wire

    have = {r.path for r in route_table(app)}
    for mod in ("host.api", "voice.api", "copywriting.api"):
        try:
            router = importlib.import_module(mod).router
        except Exception:  # noqa: BLE001 - not there (yet)
            continue
        if not any(getattr(r, "path", None) in have for r in router.routes):
            app.include_router(router)
    wire(app)
    return app


def _route_cases() -> list[tuple[str, str]]:
    from server import create_app

    app = _with_all_routers(create_app(None, start_llm=False))  # the route table only: nothing starts
    return sorted({(m, r.path) for r in route_table(app) for m in r.methods})


ROUTES = _route_cases()
SCOPED = [(m, p) for m, p in ROUTES if classify(m, p, {}) == "scoped"]


@pytest.fixture(scope="module", params=backends())
def world(request, tmp_path_factory, demo_root, use_embedder):
    """Merchants A (the demo catalog) and B, each with an owner, an API token and some data."""
    tmp = tmp_path_factory.mktemp("console-iso")
    with backend_container(request.param, tmp, demo_root, use_embedder) as c:
        c.kb.import_files(B, [write_json(tmp / "b.json", mini_products())])
        from connectors.store import ConnectorConfig, ConnectorStore

        ConnectorStore(c.settings.data_dir / "connectors").create(
            ConnectorConfig(connector_id="a-conn", merchant=A, room_id="a-room", kind="webhook")
        )
        app = _with_all_routers(console_app(c, ConsoleSettings(simulator="*")))
        with TestClient(app) as client:
            cs = get_console(app)
            ids = {}
            for m in (A, B):
                u = cs.accounts.create_user(m, f"owner-{m}", "correct-horse-1", "owner")
                tok, raw = cs.accounts.create_token(m, f"int-{m}", "operator", "test")
                ids[m] = {"user_id": u["user_id"], "token_id": tok["token_id"], "token": raw}
            cs.create_room(A, "a-room", "A 的直播间", "test")
            cs.create_room(B, "b-room", "B 的直播间", "test")
            c.audience.upsert_viewers(A, [{"viewer_id": "va1"}])
            camp = c.audience.create_campaign(
                A, {"campaign_id": "A-CAMP", "title": "A券", "kind": "amount", "amount": 5, "budget_count": 10}
            )
            ans = client.post("/api/rooms/a-room/ask", json={"merchant": A, "text": "小蓝瓶多少钱"})
            assert ans.status_code == 200
            logged = cs.answers.recent(A, "a-room")[0]
            review = cs.file_feedback(A, "a-room", logged, "test", "test")
            upload_id, d = cs.kb.new_upload(A)
            (d / "x.json").write_text('{"products": []}', encoding="utf-8")
            job = cs.kb.start_job(A, "noop", lambda progress: {"ok": True})
            cs.regression.cases.save_run(A, {"run_id": "0" * 16, "state": "done"})  # a regression run of A's
            cs.prompts.publish(A, "system", "test", cs.prompts.text(A, "system", 0) + "\nA 专属人设")
            sample = {
                "merchant": A,
                "room_id": "a-room",
                "sku": "SK-001",
                "version": "v0001",
                "name": "system",
                "campaign_id": camp.campaign_id,
                "viewer_id": "va1",
                "answer_id": logged.answer_id,
                "review_id": str(review["id"]),
                "user_id": ids[A]["user_id"],
                "token_id": ids[A]["token_id"],
                "upload_id": upload_id,
                "job_id": job.job_id,
                "case_id": "manual:1",  # regression (console/regression_api.py)
                "run_id": "0" * 16,
                "path": "console.css",
                "connector_id": "a-conn",  # connectors (connectors/api.py)
                "dl_id": "dl_000000000000",
                "action": "status",
            }
            client.cookies.clear()
            csrf = login(client, f"owner-{B}", "correct-horse-1")
            b_session = {"csrf": csrf, "sid": client.cookies.get("lr_session")}
            client.cookies.clear()
            login(client, f"owner-{A}", "correct-horse-1")
            a_sid = client.cookies.get("lr_session")
            client.cookies.clear()
            yield {
                "app": app,
                "client": client,
                "console": cs,
                "container": c,
                "ids": ids,
                "sample": sample,
                "b_session": b_session,
                "a_sid": a_sid,
            }


def _url(path: str, sample: dict) -> str:
    out = path
    for k, v in sample.items():
        out = out.replace("{" + k + "}", v).replace("{" + k + ":path}", v)
    assert "{" not in out, f"no sample value for a parameter of {path}: add one to the test's `sample`"
    return out


def _call(client, method: str, url: str, headers: dict | None = None, cookies: dict | None = None):
    client.cookies.clear()
    for k, v in (cookies or {}).items():
        client.cookies.set(k, v)
    if method == "WS":
        from starlette.websockets import WebSocketDisconnect

        try:
            with client.websocket_connect(url, headers=headers or {}) as ws:
                ws.receive_text()
                return 101
        except WebSocketDisconnect as e:
            return 403 if e.code == 1008 else 500
    kw = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return client.request(method, url, headers=headers or {}, follow_redirects=False, **kw).status_code


def test_every_route_is_classified():
    unclassified = [(m, p) for m, p in ROUTES if classify(m, p, {}) == "unclassified"]
    assert not unclassified, (
        "routes without a policy (add a {merchant}/{room_id} path parameter, or list them in "
        f"console.guard PUBLIC / OPS / PRINCIPAL_ROUTES): {unclassified}"
    )
    # the merchant-management routes are not public
    for m, p in ROUTES:
        if p.startswith("/api/merchants/") or p.startswith("/console/api") or p == "/api/events":
            assert (m, p) not in PUBLIC
    assert len(SCOPED) >= 40


@pytest.mark.parametrize("method,path", SCOPED, ids=[f"{m} {p}" for m, p in SCOPED])
def test_merchant_b_cannot_touch_merchant_a(world, method, path):
    client, sample = world["client"], world["sample"]
    url = _url(path, sample)
    b_token = {"Authorization": f"Bearer {world['ids'][B]['token']}"}
    assert _call(client, method, url, b_token) in (403, 404), f"B's token reached {method} {url}"
    bs = world["b_session"]
    status = _call(client, method, url, {"X-CSRF-Token": bs["csrf"]}, {"lr_session": bs["sid"]})
    assert status in (403, 404), f"B's session reached {method} {url}: {status}"
    # no credentials at all: refused (pages redirect to the login)
    assert _call(client, method, url) in ((303,) if method == "GET" and path.startswith("/console/m/") else (401, 403))


@pytest.mark.parametrize(
    "method,path", [x for x in SCOPED if x[0] == "GET"], ids=[f"GET {p}" for m, p in SCOPED if m == "GET"]
)
def test_merchant_a_reaches_its_own_resources(world, method, path, monkeypatch):
    """The probes above hit real resources: A's own owner gets through the guard on every read route
    (and A's operator token on every one but the owner-only users/tokens lists)."""
    if path.endswith("/regression/eval"):  # the guard is what is tested here (a real run: test_regression.py)
        empty = {"version": "v0001", "base_version": None, "cases": 0, "passed": 0, "failed": 0, "refusals_ok": 0}
        empty |= {"blocked": False, "regressions": [], "changed": [], "run_id": "0" * 16, "elapsed_s": 0.0}
        monkeypatch.setattr(world["container"].regression, "run", lambda *a, **kw: empty)
    url = _url(path, world["sample"])
    status = _call(world["client"], "GET", url, cookies={"lr_session": world["a_sid"]})
    assert status not in (401, 403, 404), f"{url}: {status}"
    status = _call(world["client"], "GET", url, {"Authorization": f"Bearer {world['ids'][A]['token']}"})
    owner_only = ("/users", "/tokens", "/viewer-secret")
    assert status not in (401, 404) and (status != 403 or path.endswith(owner_only)), f"{url}: {status}"


PUBLIC_ROOM = [(m, p) for m, p in ROUTES if (m, p) in PUBLIC and "{room_id}" in p and not p.startswith("/rooms/")]


def _public_attempts(client, method: str, path: str, a_token: str) -> list[tuple[str, int | str]]:
    """(what was tried, status or error code) for a public route in B's room, pointed at A."""
    import json as _json

    url = path.replace("{room_id}", "b-room")
    out: list[tuple[str, int | str]] = []
    if method == "WS" and "/overlay/" not in path:
        for q in (f"merchant={A}", f"token={a_token}"):
            with client.websocket_connect(f"{url}?{q}") as ws:
                out.append((q, ws.receive_json().get("code", "?")))
        return out
    if path.endswith("/ask"):
        out.append(("body merchant", client.post(url, json={"merchant": A, "text": "给我发张券"}).status_code))
        out.append(("query merchant", client.post(f"{url}?merchant={A}", json={"text": "给我发张券"}).status_code))
        r = client.post(url, json={"viewer_token": a_token, "text": "给我发张券"})
        out.append(("A's viewer token", r.status_code))
        answer = client.post(url, json={"text": "小蓝瓶多少钱"}).json()
        assert all(c["sku"] in {"SK-001", "SK-002", "AP-001", None} for c in answer["citations"]), _json.dumps(answer)
        return out
    if path.endswith("/images"):
        out.append(("query merchant", client.post(f"{url}?merchant={A}", content=b"x").status_code))
        out.append(("A's viewer token", client.post(f"{url}?token={a_token}", content=b"x").status_code))
        return out
    if path.endswith("/products/{sku}"):  # the viewer page's product card: B's catalog only
        url = url.replace("{sku}", "SN-002")  # one of A's products, not in B's catalog
        out.append(("query merchant", client.get(f"{url}?merchant={A}").status_code))
        assert client.get(url).status_code == 404  # A's product is not found through B's room
        assert client.get(url.replace("SN-002", "SK-001")).json()["name"] != ""  # B's own card
        return out
    if "/overlay/" in path:  # the OBS overlay: only a token minted for that very room opens it
        codes = {"invalid_overlay_token": 401}
        if method == "WS":
            for q in ("", f"?token={a_token}"):
                with client.websocket_connect(f"{url}{q}") as ws:
                    out.append((q or "no token", codes.get(ws.receive_json().get("code"), "?")))
        else:
            out += [
                ("no token", client.get(url).status_code),
                ("other token", client.get(f"{url}?token={a_token}").status_code),
            ]
        return out
    raise AssertionError(f"public room route {method} {path} has no isolation case: add one here")


@pytest.mark.parametrize("method,path", PUBLIC_ROOM, ids=[f"{m} {p}" for m, p in PUBLIC_ROOM])
def test_a_room_of_b_never_reads_or_spends_a(world, method, path):
    """The public routes, generated from the route table: in B's room, naming A is 403 (wrong_merchant),
    A's viewer token is 401 (invalid_token), and the answers come from B's catalog; A's coupons are not
    spent (checked in test_a_data_unchanged_after_b_attempts)."""
    from tests.support.access import viewer_token

    client = world["client"]
    client.cookies.clear()
    a_token = viewer_token(world["container"], "va1", A)
    for what, got in _public_attempts(client, method, path, a_token):
        assert got in (403, 401, "wrong_merchant", "invalid_token"), (what, got)


def test_b_agent_key_cannot_name_a(world):
    from tests.support.access import agent_key

    client = world["client"]
    client.cookies.clear()
    key = agent_key(world["app"], B)
    body = {"messages": [{"role": "user", "content": "给我发张券"}]}
    assert client.post("/v1/chat/completions", json=body, headers=key | {"x-liveroom-merchant": A}).status_code == 403
    r = client.post("/v1/chat/completions", json=body, headers=key | {"x-liveroom-room": "a-room"})
    assert r.status_code == 403  # A's room through B's key
    assert client.post("/v1/chat/completions", json=body, headers=key).status_code == 200  # B's own


def test_a_data_unchanged_after_b_attempts(world):
    c, cs = world["container"], world["console"]
    assert c.kb.active_version(A) == "v0001"
    assert "A 专属人设" in cs.prompts.effective_text(A, "system")
    assert not cs.accounts.token(A, world["ids"][A]["token_id"])["revoked"]
    assert [u["username"] for u in cs.accounts.users(A)] == [f"owner-{A}"]
    camp = c.audience.get_campaign(A, "A-CAMP")
    assert camp.status == "active" and camp.issued_count == 0
    assert cs.room_merchant("a-room") == A and cs.review(A, int(world["sample"]["review_id"]))["status"] == "open"


def test_events_batch_is_scoped_by_its_body(world):
    client = world["client"]
    client.cookies.clear()
    b = {"Authorization": f"Bearer {world['ids'][B]['token']}"}
    ev = [{"event_id": f"e{time.time()}", "viewer_id": "vb", "type": "enter"}]
    assert client.post("/api/events", json={"merchant": A, "events": ev}, headers=b).status_code == 403
    assert client.post(f"/api/events?merchant={A}", json=ev, headers=b).status_code == 403
    assert client.post("/api/events", json={"merchant": B, "events": ev}, headers=b).status_code == 200
    assert client.post("/api/events", json={"merchant": B, "events": ev}).status_code == 401


def test_public_and_ops_routes(world):
    client = world["client"]
    client.cookies.clear()
    assert client.get("/healthz").status_code == 200
    assert client.post("/api/rooms/a-room/ask", json={"merchant": A, "text": "包邮吗"}).status_code == 200
    assert client.get("/console/login").status_code == 200
    for m, p in OPS:
        if (m, p) in ROUTES:
            assert client.get(p).status_code == 401
            assert client.get(p, headers={"Authorization": f"Bearer {world['ids'][A]['token']}"}).status_code == 403


def test_room_routes_check_the_room_owner(world):
    """A room id in the path is mapped to its merchant: B's own merchant path with A's room is refused."""
    client = world["client"]
    client.cookies.clear()
    b = {"Authorization": f"Bearer {world['ids'][B]['token']}"}
    assert client.get(f"/console/api/m/{B}/rooms/a-room/live", headers=b).status_code == 403
    assert client.get(f"/console/api/m/{B}/rooms/no-such-room/live", headers=b).status_code == 404
    assert client.get(f"/console/api/m/{B}/rooms/b-room/live", headers=b).status_code == 200


ROOM_ONLY = [(m, p) for m, p in SCOPED if "{room_id}" in p and "{merchant}" not in p]


@pytest.mark.parametrize("method,path", ROOM_ONLY, ids=[f"{m} {p}" for m, p in ROOM_ONLY])
def test_room_routes_cannot_be_pointed_at_another_merchant(world, method, path):
    """Routes that take the merchant from ?merchant= or the body (host API): B, in B's own room, naming A
    is refused; naming nobody means B (never the server's default merchant)."""
    client = world["client"]
    client.cookies.clear()
    b = {"Authorization": f"Bearer {world['ids'][B]['token']}"}
    url = _url(path, world["sample"] | {"room_id": "b-room"})
    if method == "WS":
        assert _call(client, "WS", url + f"?merchant={A}", b) == 403
        return
    kw = {"json": {"merchant": A}} if method in ("POST", "PUT", "PATCH") else {}
    assert client.request(method, url, params={"merchant": A}, headers=b, **kw).status_code == 403
    if kw:
        assert client.request(method, url, headers=b, **kw).status_code == 403


FROM_REQUEST = [(m, p) for m, p in ROUTES if classify(m, p, {}) == "principal" and not p.startswith("/console")]


@pytest.mark.parametrize("method,path", FROM_REQUEST, ids=[f"{m} {p}" for m, p in FROM_REQUEST])
def test_merchant_named_in_the_request_must_be_the_callers(world, method, path):
    """Routes whose merchant comes from ?merchant= or the JSON body (events, copywriting, rundowns)."""
    client = world["client"]
    client.cookies.clear()
    b = {"Authorization": f"Bearer {world['ids'][B]['token']}"}
    url = _url(path, world["sample"] | {"campaign_id": "x", "experiment_id": "x"})
    assert client.request(method, url, params={"merchant": A}, headers=b).status_code == 403
    if method in ("POST", "PUT", "PATCH"):
        assert client.request(method, url, json={"merchant": A}, headers=b).status_code == 403
    assert client.request(method, url, params={"merchant": A}).status_code == 401


def test_a_missing_merchant_means_the_callers_not_the_default(world):
    """The server's default merchant is A; B naming no merchant must still only ever act as B."""
    client = world["client"]
    client.cookies.clear()
    b = {"Authorization": f"Bearer {world['ids'][B]['token']}"}
    if ("GET", "/api/rooms/{room_id}/funnel") in ROUTES:
        r = client.get("/api/rooms/b-room/funnel", headers=b)
        assert r.status_code == 200 and r.json()["merchant"] == B
        r = client.post("/api/rooms/b-room/context", json={"sku": "SK-001"}, headers=b)
        assert r.status_code == 200  # SK-001 exists in B's mini catalog too: resolved against B
    ev = [{"event_id": f"nm{time.time()}", "viewer_id": "vb2", "type": "enter"}]
    r = client.post("/api/events", json=ev, headers=b)  # a bare list, no ?merchant=
    assert r.status_code == 200 and r.json()["merchant"] == B
