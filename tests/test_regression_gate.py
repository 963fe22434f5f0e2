"""Every console path that publishes goes through the regression set first (console/regression_api.py):
the product page's save (PUT /kb/products/{sku}), an upload's publish and a prompt's publish. A change
that breaks nothing goes out with the run's figures in its audit entry; one that makes a passing case fail
is refused (409 with its run) and waits as a draft for an owner's override on the regression page.

A three-product catalog and the scripted LLM (tests/support/console.py), unpaced: seconds."""

from __future__ import annotations

import io
import time

import pytest
from fastapi.testclient import TestClient

from console.service import get_console
from tests.conftest import mini_products, write_json
from tests.support.console import FakeLLM, console_app, login, make_container

M = "t"


def api(path: str) -> str:
    return f"/console/api/m/{M}{path}"


@pytest.fixture(scope="module")
def env(tmp_path_factory, use_embedder):
    tmp = tmp_path_factory.mktemp("regression-gate")
    c = make_container(tmp, embedder=use_embedder, llm=FakeLLM())
    c.kb.import_files(M, [write_json(tmp / "products.json", mini_products())])
    c.regression.pace = 0.0
    app = console_app(c)
    with TestClient(app) as owner, TestClient(app) as operator:
        cs = get_console(app)
        cs.accounts.create_user(M, "owner1", "owner-pass-1", "owner")
        cs.accounts.create_user(M, "operator1", "operator-pass-1", "operator")
        owner.headers["X-CSRF-Token"] = login(owner, "owner1", "owner-pass-1")
        operator.headers["X-CSRF-Token"] = login(operator, "operator1", "operator-pass-1")
        yield {"owner": owner, "operator": operator, "console": cs, "container": c}


def product(env, sku: str) -> dict:
    return env["operator"].get(api(f"/kb/products/{sku}")).json()["product"]


def audit(env, action: str) -> dict:
    return env["console"].audit.list(M, limit=1, action=action)["items"][0]


def wait_job(client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = client.get(api(f"/kb/jobs/{job_id}")).json()
        if j["state"] != "running":
            return j
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_a_save_that_breaks_a_passing_case_is_held_for_the_owner(env):
    c, op = env["container"], env["operator"]
    v0 = c.kb.active_version(M)
    p = product(env, "SK-002")
    specs = {k: v for k, v in p["specs"].items() if k != "容量"}
    r = op.put(api("/kb/products/SK-002"), json=p | {"specs": specs})
    assert r.status_code == 409, r.text
    held = r.json()
    assert held["blocked"] and not held["published"] and "spec:SK-002:容量" in held["regressions"]
    assert held["run_url"].endswith(f"?run={held['run_id']}")
    assert c.kb.active_version(M) == v0  # viewers keep the published version …
    assert "容量" in c.kb.catalog(M).product("SK-002").specs
    draft = next(v for v in c.kb.versions(M) if v.version == held["version"])
    assert draft.draft  # … and the edit waits as a draft with its run
    url = api(f"/regression/runs/{held['run_id']}/publish")
    assert op.post(url, json={"override_reason": "容量写进详情图了"}).status_code == 403  # operators cannot
    ok = env["owner"].post(url, json={"override_reason": "容量写进详情图了"})
    assert ok.status_code == 200 and ok.json()["overridden"]
    assert c.kb.active_version(M) == held["version"]
    assert audit(env, "regression.override")["after"] == {"reason": "容量写进详情图了"}


def test_a_save_that_breaks_nothing_publishes_with_its_run_audited(env):
    c, op = env["container"], env["operator"]
    p = product(env, "SK-001")
    r = op.put(api("/kb/products/SK-001"), json=p | {"price": 119})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["changed"] and out["run_id"] and out["failed"] == out["cases"] - out["passed"]
    assert c.kb.active_version(M) == out["version"]
    assert c.kb.catalog(M).product("SK-001").price == 119
    a = audit(env, "kb.product.edit")
    assert a["before"]["price"] == 129 and a["after"]["price"] == 119
    assert a["after"]["_version"] == out["version"] and a["after"]["run_id"] == out["run_id"]
    again = op.put(api("/kb/products/SK-001"), json=product(env, "SK-001"))
    assert again.json()["changed"] is False  # an unchanged save runs nothing


def _upload(client, name: str, text: str) -> str:
    r = client.post(api("/kb/uploads"), files=[("files", (name, io.BytesIO(text.encode()), "text/csv"))])
    assert r.status_code == 200, r.text
    return r.json()["upload_id"]


def test_an_upload_is_tested_before_it_is_published(env):
    c, op = env["container"], env["operator"]
    fine = _upload(op, "new.csv", "sku,商品名称,直播价,日常价,库存\nNEW-1,晨光 燕麦牛奶 250ml,12.9,19.9,100\n")
    j = wait_job(op, op.post(api(f"/kb/uploads/{fine}/publish")).json()["job_id"])
    assert j["state"] == "done" and j["result"]["published"] and j["result"]["run_id"], j
    assert c.kb.active_version(M) == j["result"]["version"] and c.kb.catalog(M).product("NEW-1")
    a = audit(env, "kb.import")
    assert a["after"]["version"] == j["result"]["version"] and a["after"]["run_id"] == j["result"]["run_id"]

    v = c.kb.active_version(M)
    # a price typo in a sheet (159 → 1590): the price case regresses, nothing is published
    typo = _upload(op, "fix.csv", "sku,商品名称,直播价,日常价,库存\nSK-002,暖光 玻尿酸保湿面霜 50g,1590,229,12\n")
    j = wait_job(op, op.post(api(f"/kb/uploads/{typo}/publish")).json()["job_id"])
    r = j["result"]
    assert j["state"] == "done" and not r["published"] and r["blocked"], j
    assert "price:SK-002" in {x["id"] for x in r["regressions"]}
    assert c.kb.active_version(M) == v and c.kb.catalog(M).product("SK-002").price == 159


def test_a_prompt_publish_is_tested_on_the_set_first(env):
    op, cs = env["operator"], env["console"]
    # the merchant's own rule: no "宝子们" in answers to a compliment
    case = {"question": "主播今天好漂亮呀", "must_not_contain": ["宝子们"]}
    assert op.post(api("/regression/cases"), json=case).status_code == 201
    default = op.get(api("/prompts/system")).json()["published_text"]
    loud = default.replace("你只根据", "开场白：宝子们看这里\n你只根据")
    r = op.post(api("/prompts/system/publish"), json={"text": loud})
    assert r.status_code == 409, r.text
    assert r.json()["blocked"] and any(i.startswith("manual:") for i in r.json()["regressions"])
    assert cs.prompts.published_text(M, "system") is None  # still the default
    calm = default.replace("你只根据", "开场白：大家好\n你只根据")
    ok = op.post(api("/prompts/system/publish"), json={"text": calm, "note": "开场白"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["version"] == 1 and ok.json()["run_id"]
    assert cs.prompts.published_text(M, "system") == calm
    a = audit(env, "prompt.publish")
    assert a["after"] == calm and ok.json()["run_id"] in a["target"]


def test_a_console_run_gives_way_to_live_questions(env):
    c, cs = env["container"], env["console"]
    runner = cs.regression.runner
    assert runner.live_busy is not None and not runner.live_busy()
    assert c.admission.enter() is not None  # a viewer's question being answered
    try:
        assert runner.live_busy()
    finally:
        c.admission.leave()
    asked: list[int] = []
    busy, wait = runner.live_busy, runner.max_yield_s
    runner.live_busy, runner.max_yield_s = lambda: asked.append(1) is None, 0.001  # always busy
    try:
        r = runner.run(M, pace=0.0)  # still finishes: each case waits at most max_yield_s
    finally:
        runner.live_busy, runner.max_yield_s = busy, wait
    assert r["cases"] > 0 and len(asked) >= r["cases"]
