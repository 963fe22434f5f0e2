"""Publish with proof (regression/, console/regression*.py): the per-merchant regression set generated from
the catalog, run on a draft through the production agent, the gated publish with an audited owner
override, corrected reviews as cases, the CLI/API summary and the drift watch.

The console flows run on a three-product catalog (seconds); the unseen catalogs (gadgets unmarked, pets
slow) show a broken price caught and an unrelated edit let through on data the code was not written for."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from console.service import get_console
from regression.cases import Case, contains, generate, judge, rebase
from regression.drift import DriftWatch
from regression.store import GENERATED
from tests.conftest import mini_products, write_json
from tests.support.console import console_app, login, make_container

M = "t"
ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ROOT / "evals" / "data" / "catalogs"


def api(path: str) -> str:
    return f"/console/api/m/{M}{path}"


def wait_job(client, job_id: str, timeout: float = 120) -> dict:
    stages: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = client.get(api(f"/regression/jobs/{job_id}")).json()
        if not stages or stages[-1] != j["stage"]:
            stages.append(j["stage"])
        if j["state"] != "running":
            j["stages_seen"] = stages
            return j
        time.sleep(0.05)
    raise AssertionError("job did not finish")


@pytest.fixture(scope="module")
def env(tmp_path_factory, use_embedder):
    tmp = tmp_path_factory.mktemp("regression")
    c = make_container(tmp, embedder=use_embedder)
    c.kb.import_files(M, [write_json(tmp / "products.json", mini_products())])
    app = console_app(c)
    with TestClient(app) as owner, TestClient(app) as operator:
        cs = get_console(app)
        cs.accounts.create_user(M, "owner1", "owner-pass-1", "owner")
        cs.accounts.create_user(M, "operator1", "operator-pass-1", "operator")
        owner.headers["X-CSRF-Token"] = login(owner, "owner1", "owner-pass-1")
        operator.headers["X-CSRF-Token"] = login(operator, "operator1", "operator-pass-1")
        yield {"owner": owner, "operator": operator, "console": cs, "container": c, "tmp": tmp}


def product(env, sku: str) -> dict:
    return env["operator"].get(api(f"/kb/products/{sku}")).json()["product"]


def draft(env, sku: str, data: dict) -> dict:
    r = env["operator"].post(api(f"/kb/products/{sku}/draft"), json=data)
    assert r.status_code == 200, r.text
    job = wait_job(env["operator"], r.json()["job_id"])
    assert job["state"] == "done", job
    return job


def audit(env, action: str) -> dict:
    return env["console"].audit.list(M, limit=1, action=action)["items"][0]


# --- the set ---------------------------------------------------------------------------------------
def test_set_is_generated_from_the_catalog_and_kept_with_each_version(env):
    c = env["container"]
    v = c.kb.active_version(M)
    path = c.kb.version_dir(M, v) / GENERATED  # written by the KB build hook at import
    cases = [Case.model_validate(x) for x in json.loads(path.read_text(encoding="utf-8"))]
    cat = c.kb.catalog(M)
    ids = {x.id for x in cases}
    for p in cat.products:
        assert f"price:{p.sku}" in ids and f"stock:{p.sku}" in ids
        assert all(f"spec:{p.sku}:{k}" in ids for k in p.specs)  # one question per spec …
        assert sum(x.kind == "faq" and x.sku == p.sku for x in cases) == len(p.faq)  # … and per FAQ
    serum = next(x for x in cases if x.id == "price:SK-001")
    assert serum.question.startswith(cat.product("SK-001").name) and serum.must_contain == ["129"]
    assert "159" in serum.must_not_contain  # the nearest sibling's price is what a wrong answer would say
    assert "compare:SK-001:SK-002" in ids  # the nearest sibling is the same category's closest name
    probes = [x for x in cases if x.kind == "probe"]
    assert probes and all(x.must_refuse for x in probes)
    # a probe asks for an attribute the product lacks but its category states
    for x in probes:
        attr = x.origin["key"]
        assert not any(attr in c.regression_cases.book.for_spec(k, "") for k in cat.product(x.sku).specs)
    assert cases == generate(cat, c.regression_cases.book)  # deterministic


def test_judging_matches_numbers_on_their_boundaries():
    case = Case(id="x", kind="price", question="q", must_contain=["99"], must_not_contain=["129"])
    assert judge(case, "直播价99元", False).passed
    assert not judge(case, "直播价199元", False).passed  # 99 inside 199 is not 99
    assert not judge(case, "直播价99元，另一款129元", False).passed
    assert not judge(case, "资料里没有", True).passed
    probe = Case(id="y", kind="probe", question="q", must_refuse=True, must_not_contain=["118g"])
    assert judge(probe, "资料里没有写，稍后请主播确认", True).passed
    assert not judge(probe, "重量118g", False).passed
    assert contains("ＳＰＦ５０", "spf50") and not contains("1.5m", "5m")


def test_rebase_follows_deliberate_edits_and_keeps_what_a_draft_lost(env):
    c = env["container"]
    cat = c.kb.catalog(M)
    base = generate(cat, c.regression_cases.book)

    def edited(sku, **kw):
        return cat.model_copy(
            update={"products": [p.model_copy(update=kw) if p.sku == sku else p for p in cat.products]}
        )

    st = {x.id: s for x, s, _ in rebase(base, edited("SK-001", price=119.0))}
    assert st["price:SK-001"] == "updated"
    assert {i for i, s in st.items() if s != "same"} <= {i for i in st if "SK-001" in i} | {
        "price:SK-002"
    }  # the sibling's price case now guards against 119 instead of 129
    st = {x.id: (s, x) for x, s, _ in rebase(base, edited("SK-001", price=1290.0))}
    assert st["price:SK-001"][0] == "suspect" and st["price:SK-001"][1].must_contain == ["129"]
    lost = edited("SK-002", specs={"质地": "乳霜"})
    st = {x.id: (s, x) for x, s, _ in rebase(base, lost)}
    assert st["spec:SK-002:容量"][0] == "kept" and st["spec:SK-002:容量"][1].must_contain == ["50g"]


def test_pinned_agent_answers_like_production(env):
    import asyncio

    from agent.messages import ViewerMessage
    from regression.runner import pinned_agent

    c = env["container"]
    snap = c.kb.snapshot(M)
    q = ViewerMessage(merchant=M, viewer_id="same-1", text="小蓝瓶多少钱", channel="console")
    live = asyncio.run(c.agent.answer(q))
    pinned = asyncio.run(pinned_agent(c.agent, c.kb, snap).answer(q.model_copy(update={"viewer_id": "same-2"})))
    assert pinned.answer == live.answer and pinned.citations == live.citations and pinned.intent == live.intent


# --- console: draft → run → publish -------------------------------------------------------------------
def test_price_edit_changes_exactly_that_products_price_cases_and_publishes(env):
    p = product(env, "SK-001")
    job = draft(env, "SK-001", p | {"price": 119})
    assert job["stages_seen"][-1] == "after" and job["done"] == job["total"] > 0
    r = job["result"]
    assert r["target"] == "kb" and r["version"] != r["base_version"] and not r["blocked"]
    changed = {x["id"] for x in r["changed"]}
    assert "price:SK-001" in changed
    assert changed <= {"price:SK-001", "compare:SK-001:SK-002", "compare:SK-002:SK-001"}, changed
    row = next(x for x in r["changed"] if x["id"] == "price:SK-001")
    assert "129" in row["before"]["answer"] and "119" in row["after"]["answer"] and row["after"]["passed"]
    assert row["after"]["citations"][0]["fact_id"] == "SK-001:price"  # citations shown side by side
    c = env["container"]
    assert c.kb.active_version(M) == r["base_version"]  # viewers still see the published version
    versions = env["operator"].get(api("/kb/versions")).json()
    assert next(v for v in versions if v["version"] == r["version"])["draft"]
    out = env["operator"].post(api(f"/regression/runs/{r['run_id']}/publish"), json={})
    assert out.status_code == 200, out.text
    assert c.kb.active_version(M) == r["version"]
    assert audit(env, "kb.publish")["after"]["run_id"] == r["run_id"]
    again = env["operator"].post(api(f"/regression/runs/{r['run_id']}/publish"), json={})
    assert again.status_code == 409  # published once; a stale run cannot publish again


def test_spec_deleted_by_mistake_blocks_publish_and_the_owner_override_is_audited(env):
    p = product(env, "SK-002")
    specs = {k: v for k, v in p["specs"].items() if k != "容量"}
    r = draft(env, "SK-002", p | {"specs": specs})["result"]
    assert r["blocked"] and "spec:SK-002:容量" in {x["id"] for x in r["regressions"]}
    reg = next(x for x in r["regressions"] if x["id"] == "spec:SK-002:容量")
    assert reg["status"] == "kept" and reg["before"]["passed"] and not reg["after"]["passed"]
    assert r["after"]["failed"] >= 1
    url = api(f"/regression/runs/{r['run_id']}/publish")
    blocked = env["operator"].post(url, json={})
    assert blocked.status_code == 403  # an operator cannot override
    assert env["owner"].post(url, json={}).status_code == 422  # the owner must say why
    assert env["owner"].post(url, json={"override_reason": "x"}).status_code == 422  # a reason is required
    c = env["container"]
    assert c.kb.active_version(M) == r["base_version"]
    ok = env["owner"].post(url, json={"override_reason": "容量改到详情页图片里了"})
    assert ok.status_code == 200 and ok.json()["overridden"]
    a = audit(env, "regression.override")
    assert a["actor"] == "user:owner1" and a["after"] == {"reason": "容量改到详情页图片里了"}
    assert "spec:SK-002:容量" in a["before"]["regressions"]
    assert c.kb.active_version(M) == r["version"]


def test_blocked_publish_without_override_is_refused(env):
    p = product(env, "SK-001")
    r = draft(env, "SK-001", p | {"price": p["price"] * 10})["result"]  # a typo: 119 → 1190
    assert r["blocked"] and "price:SK-001" in {x["id"] for x in r["regressions"]}
    assert next(x for x in r["regressions"] if x["id"] == "price:SK-001")["status"] == "suspect"
    res = env["owner"].post(api(f"/regression/runs/{r['run_id']}/publish"), json={})
    assert res.status_code == 422
    assert env["container"].kb.active_version(M) == r["base_version"]
    # a draft can't be switched to through the versions page either
    assert env["owner"].post(api(f"/kb/versions/{r['version']}/restore")).status_code == 409


def test_corrected_review_becomes_a_passing_case_once_published(env):
    cs, c = env["console"], env["container"]

    class Ans:
        answer_id, question, kb_version, flagged = "a1", "晚上几点前下单当天发货", None, False
        answer, citations = "这个问题我先记下，稍后请主播帮你确认哦～", []

    rid = cs.file_feedback(M, "r1", Ans(), "回答有误", "user:operator1")["id"]
    res = env["operator"].post(
        api(f"/reviews/{rid}/correct"), json={"answer": "晚上8点前下单当天发货，8点后次日发。", "add_qa": True}
    )
    assert res.status_code == 200, res.text
    case = res.json()["case"]
    assert case["id"] == f"review:{rid}" and case["must_contain"] == ["晚上8点前下单当天发货"]
    job = wait_job(env["operator"], res.json()["job"]["job_id"])
    r = job["result"]
    row = next(x for x in r["changed"] if x["id"] == case["id"])
    assert not row["before"]["passed"] and row["after"]["passed"] and not r["blocked"]
    assert env["operator"].post(api(f"/regression/runs/{r['run_id']}/publish"), json={}).status_code == 200
    assert cs.review(M, rid)["status"] == "resolved"
    ev = env["operator"].get(api("/regression/eval")).json()  # the set on the now-active version
    assert case["id"] not in ev["regressions"]
    final = c.regression.run(M)
    assert final["version"] == c.kb.active_version(M)
    assert not any(x["id"] == case["id"] for x in final["failures"])


def test_prompt_draft_is_tested_then_published(env):
    client = env["operator"]
    text = client.get(api("/prompts/system")).json()["published_text"] + "\n开场白：宝子们好"
    assert client.put(api("/prompts/system/draft"), json={"text": text}).status_code == 200
    j = wait_job(client, client.post(api("/regression/runs"), json={"prompt": "system"}).json()["job_id"])
    r = j["result"]
    assert j["state"] == "done" and r["target"] == "prompt" and r["prompt"] == ["system"]
    assert r["version"] == r["base_version"] and not r["blocked"]
    out = client.post(api(f"/regression/runs/{r['run_id']}/publish"), json={})
    assert out.status_code == 200 and out.json()["prompts"]["system"] == 1
    assert env["console"].prompts.effective_text(M, "system") == text


def test_hand_added_cases_and_the_eval_route(env):
    client = env["operator"]
    bad = client.post(api("/regression/cases"), json={"question": "能送货上门吗"})
    assert bad.status_code == 422
    made = client.post(api("/regression/cases"), json={"question": "小蓝瓶多少钱", "must_contain": ["元"]}).json()
    assert made["source"] == "manual"
    listed = client.get(api("/regression/cases?kind=manual")).json()
    assert [x["id"] for x in listed["cases"]] == [made["id"]] and listed["total"] > 10
    ev = client.get(api("/regression/eval")).json()
    assert set(ev) >= {"version", "cases", "passed", "failed", "refusals_ok", "changed"}
    assert ev["cases"] == listed["total"] and ev["changed"] == []
    assert client.delete(api(f"/regression/cases/{made['id']}")).status_code == 200
    assert client.delete(api("/regression/cases/price:SK-001")).status_code == 404  # generated: not deletable


def test_regression_routes_are_behind_the_console_guard(env):
    c = env["container"]
    app = env["owner"].app
    anon = TestClient(app)  # no `with`: leaving one would run the app's shutdown under the others
    assert anon.get(api("/regression/eval")).status_code == 401
    assert anon.get(api("/regression/runs")).status_code == 401
    get_console(app).accounts.create_user("someone-else", "stranger", "stranger-pass-1", "owner")
    s = TestClient(app)
    s.headers["X-CSRF-Token"] = login(s, "stranger", "stranger-pass-1")
    assert s.get(api("/regression/eval")).status_code == 403
    assert c.kb.active_version(M)


def test_cli_eval_merchant_json(env, monkeypatch):
    from typer.testing import CliRunner

    from liveroom.cli import app

    monkeypatch.setenv("LIVEROOM_DATA_DIR", str(env["tmp"]))
    monkeypatch.setenv("LIVEROOM_LLM_AUTOSTART", "0")
    res = CliRunner().invoke(app, ["eval", "merchant", "--merchant", M, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out) >= {"version", "cases", "passed", "failed", "refusals_ok", "changed"}
    assert out["version"] == env["container"].kb.active_version(M) and out["cases"] > 10


# --- drift watch -----------------------------------------------------------------------------------------
def test_drift_watch_samples_live_answers_and_alerts_on_a_rise_of_checks():
    from agent.bus import AnsweredEvent

    now = [1000.0]
    sampled: list[tuple[str, str]] = []
    w = DriftWatch(lambda ev, why: sampled.append((ev.question, why)), sample_every=10, clock=lambda: now[0])

    def answer(refused: bool, channel: str = "ws", at: float | None = None) -> None:
        w.on_answer(
            AnsweredEvent(
                merchant="m",
                room_id="r",
                viewer_id="v",
                channel=channel,
                question="q",
                answer="a",
                refused=refused,
                intent="detail",
                at=now[0] if at is None else at,
            )
        )

    for i in range(100):  # a calm half hour: 5% "I'll check"
        now[0] += 15
        answer(i % 20 == 0)
    w.flush()
    assert not w.status("m")["check_alert"] and len(sampled) == 10  # every 10th live answer
    for _ in range(50):
        answer(False, channel="console")  # previews are not live answers
    assert w.status("m")["seen"] == 100
    for i in range(20):  # then 40% of the answers are "I'll check"
        now[0] += 6
        answer(i % 5 < 2)
    s = w.status("m")
    assert s["check_alert"] and s["check_share"] >= 0.2 and s["baseline_check_share"] < 0.1
    assert any(a["kind"] == "drift_checks" for a in w.alerts("m"))
    w.flush()
    assert any("突增" in why for _, why in sampled)  # while alerting, every check answer is sampled
    for _ in range(6):
        w.on_review("m")
    assert w.status("m")["review_alert"]


def test_drift_samples_reach_the_review_queue_with_citations(env):
    import asyncio

    from agent.messages import ViewerMessage

    cs, c = env["console"], env["container"]
    before = len(cs.reviews(M))
    cs.regression.drift.sample_every = 2
    for i in range(4):
        asyncio.run(c.agent.answer(ViewerMessage(merchant=M, viewer_id=f"live-{i}", text="小蓝瓶多少钱", channel="ws")))
    cs.regression.drift.flush()  # filed on the watch's writer thread, off the event loop
    got = [r for r in cs.reviews(M) if r["filed_by"] == "system:drift"]
    assert len(cs.reviews(M)) - before == 2 and got[0]["citations"][0]["fact_id"] == "SK-001:price"
    assert env["operator"].get(api("/regression/drift")).json()["seen"] >= 4


# --- unseen catalogs -------------------------------------------------------------------------------------
def _catalog_env(tmp: Path, name: str, use_embedder):
    from evals.answers import import_catalog

    c = make_container(tmp, embedder=use_embedder)
    import_catalog(c, name, tmp)
    return c


def _unseen(tmp: Path, name: str, use_embedder) -> dict:
    c = _catalog_env(tmp, name, use_embedder)
    cat = c.kb.catalog(name)
    # the first product with a sibling (its price case has something to be confused with) whose price is
    # the one viewers hear (a product with priced options is answered with the option's price)
    target = next(
        p
        for p in cat.products
        if any(o.category == p.category and o.sku != p.sku for o in cat.products)
        and not any(v.price is not None for v in p.variant_list())
    )
    other = next(p for p in cat.products if p.category != target.category)

    def with_product(p):
        return cat.model_copy(update={"products": [p if x.sku == p.sku else x for x in cat.products]})

    broken = c.kb.build_draft(name, with_product(target.model_copy(update={"price": target.price * 10})), "typo")
    rb = c.regression.run(name, broken.version)
    edit = other.model_copy(update={"selling_points": [*other.selling_points, "直播间专享赠品"]})
    fine = c.kb.build_draft(name, with_product(edit), "unrelated")
    rf = c.regression.run(name, fine.version)
    return {"broken": rb, "fine": rf, "target": target, "other": other, "container": c}


def _assert_unseen(r: dict) -> None:
    rb, rf, target = r["broken"], r["fine"], r["target"]
    ids = {x["id"] for x in rb["regressions"]}
    assert rb["blocked"] and f"price:{target.sku}" in ids, (ids, rb["before"], rb["after"])
    assert all(target.sku in i for i in ids), ids  # only the broken product's cases
    assert not rf["blocked"], [(x["id"], x["after"]["answer"]) for x in rf["regressions"]]
    assert rf["cases"] == rf["before"]["cases"] and rf["before"]["accuracy"] >= 0.9
    assert {x["id"] for x in rf["changed"]} <= {x["id"] for x in rf["changed"] if r["other"].sku in x["id"]}


def test_unseen_gadgets_broken_price_caught_unrelated_edit_passes(tmp_path, use_embedder):
    _assert_unseen(_unseen(tmp_path, "gadgets", use_embedder))


@pytest.mark.slow
def test_unseen_pets_broken_price_caught_unrelated_edit_passes(tmp_path, use_embedder):
    _assert_unseen(_unseen(tmp_path, "pets", use_embedder))


def test_a_bounded_run_keeps_every_case_the_draft_can_have_changed(env):
    c = env["container"]
    cat = c.kb.catalog(M)
    p = cat.product("AP-001")
    products = [x.model_copy(update={"price": p.price - 10}) if x.sku == "AP-001" else x for x in cat.products]
    info = c.kb.build_draft(M, cat.model_copy(update={"products": products}), "bounded")
    stages: list[str] = []
    c.regression._before.clear()  # earlier tests' runs on this version answered (and cached) the sample
    r = c.regression.run(M, info.version, max_cases=8, progress=lambda st, d, t: stages.append(st))
    assert r["sampled"]["of"] > r["sampled"]["ran"] >= 8
    assert "price:AP-001" in {x["id"] for x in r["changed"]} and not r["blocked"]
    assert "before" in stages  # the first run answers the sample on the published version …
    stages.clear()
    again = c.regression.run(M, info.version, max_cases=8, progress=lambda st, d, t: stages.append(st))
    assert "before" not in stages  # … once: later drafts reuse those answers
    assert {x["id"] for x in again["changed"]} == {x["id"] for x in r["changed"]}
