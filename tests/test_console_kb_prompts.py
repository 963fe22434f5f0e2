"""Console API: uploads with per-row errors, fact/chunk preview, publish with progress, inline product edits
(re-indexing just that product), the retrieval test, version diff/restore, and prompt drafts →
preview → publish → history → restore, with broken templates refused."""

from __future__ import annotations

import io
import time

import pytest
from fastapi.testclient import TestClient

from console.service import get_console
from core.settings import ConsoleSettings
from prompts import loader
from prompts import store as pstore
from tests.support.console import FakeLLM, console_app, login, make_container

M = "demo"


@pytest.fixture(scope="module")
def env(tmp_path_factory, demo_root, use_embedder):
    tmp = tmp_path_factory.mktemp("console-kb")
    llm = FakeLLM()
    c = make_container(tmp, demo_root, use_embedder, llm=llm)
    # every publish runs the regression set first: bounded here (the changed cases + a fixed sample), unpaced
    c.regression.pace, c.regression.max_cases = 0.0, 120
    app = console_app(c, ConsoleSettings(simulator="*"))
    with TestClient(app) as client:
        cs = get_console(app)
        cs.accounts.create_user(M, "operator1", "operator-pass-1", "operator")
        csrf = login(client, "operator1", "operator-pass-1")
        client.headers["X-CSRF-Token"] = csrf
        yield {"client": client, "console": cs, "container": c, "llm": llm}


def api(path: str) -> str:
    return f"/console/api/m/{M}{path}"


def wait_job(client, job_id: str, timeout: float = 60) -> dict:
    seen = set()
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = client.get(api(f"/kb/jobs/{job_id}")).json()
        seen.add(j["stage"])
        if j["state"] != "running":
            j["stages_seen"] = seen
            return j
        time.sleep(0.05)
    raise AssertionError("job did not finish")


BAD_CSV = (
    "sku,商品名称,直播价,库存,卖点\n"
    "NEW-001,晨光 燕麦牛奶 250ml,12.9,100,早餐好搭档\n"
    "NEW-002,晨光 黑芝麻糊 500g,abc,50,香浓顺滑\n"
    ",无编码商品,9.9,1,\n"
    "NEW-003,晨光 坚果燕麦片 1kg,-5,20,\n"
)
GOOD_CSV = (
    "sku,商品名称,直播价,日常价,库存,卖点,规格参数\n"
    "NEW-001,晨光 燕麦牛奶 250ml,12.9,19.9,100,早餐好搭档,容量:250ml;保质期:6个月\n"
    "NEW-002,晨光 黑芝麻糊 500g,29.9,39.9,50,香浓顺滑,净含量:500g\n"
)
DOC = "# 早餐专区说明\n\n## 配送\n早餐专区商品冷链配送，下单后次日达。\n\n## 售后\n牛奶类商品签收后24小时内可申请破损理赔。\n"


def upload(client, files: list[tuple[str, bytes, str]]):
    return client.post(api("/kb/uploads"), files=[("files", (n, io.BytesIO(b), t)) for n, b, t in files])


def test_upload_shows_every_bad_row_then_previews_and_publishes(env):
    client, c = env["client"], env["container"]
    r = upload(client, [("breakfast.csv", BAD_CSV.encode(), "text/csv")])
    assert r.status_code == 422
    issues = r.json()["issues"]
    by_row = {(i["row"], i["field"]): i for i in issues}
    assert by_row[(3, "price")]["message"].startswith("不是有效数字") and by_row[(3, "price")]["field_zh"] == "直播价"
    assert (4, "sku") in by_row and "缺少商品编码" in by_row[(4, "sku")]["message"]
    assert (5, "price") in by_row and "不能小于" in by_row[(5, "price")]["message"]
    assert all(i["file"] == "breakfast.csv" for i in issues)
    assert c.kb.active_version(M) == "v0001"  # nothing was imported

    r = upload(
        client, [("breakfast.csv", GOOD_CSV.encode(), "text/csv"), ("早餐专区.md", DOC.encode(), "text/markdown")]
    )
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["counts"] == {"products": 2, "documents": 1, "qa": 0, "facts": p["counts"]["facts"]}
    assert {x["sku"] for x in p["diff"]["products"]["added"]} == {"NEW-001", "NEW-002"}
    kinds = {f["kind"] for f in p["facts"]}
    assert {"price", "spec", "selling_point", "doc"} <= kinds  # facts and document chunks
    assert any(f["kind"] == "doc" and "次日达" in f["text"] for f in p["facts"])
    assert c.kb.active_version(M) == "v0001"  # preview only

    job = client.post(api(f"/kb/uploads/{p['upload_id']}/publish")).json()
    done = wait_job(client, job["job_id"])
    assert done["state"] == "done", done
    assert done["result"]["version"] == "v0002" and done["result"]["products"] == 67
    hits = client.post(api("/kb/search"), json={"q": "燕麦牛奶多少钱"}).json()
    assert hits["hits"][0]["sku"] == "NEW-001" and "12.9" in hits["answer"]["answer"]
    audit = get_console_audit(env, "kb.import")
    assert audit["before"] == {"version": "v0001"} and audit["after"]["version"] == "v0002"


def get_console_audit(env, action: str) -> dict:
    return env["console"].audit.list(M, limit=1, action=action)["items"][0]


def test_uploads_are_limited_in_type_and_size(env):
    client = env["client"]
    assert upload(client, [("evil.exe", b"MZ\x90\x00", "application/octet-stream")]).status_code == 415
    assert upload(client, [("fake.xlsx", b"not a zip at all", "application/vnd.ms-excel")]).status_code == 415
    assert upload(client, [("bin.csv", b"sku,name\x00\x01\x02", "text/csv")]).status_code == 415
    big = b"sku,name,price\n" + b"X-1,n,1\n" * (5 * 1024 * 1024 // 8 + 10)
    r = upload(client, [("big.csv", big, "text/csv")])
    assert r.status_code == 413 and "上限" in r.json()["detail"]
    many = [(f"f{i}.md", b"# t\n\nx", "text/markdown") for i in range(11)]
    assert upload(client, many).status_code == 400
    r = client.post(
        api("/kb/uploads"),
        content=b"x" * 10,
        headers={"Content-Length": str(60 * 1024 * 1024), "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 413
    # path tricks in the filename are flattened to a plain name
    r = upload(client, [("../../etc/passwd.md", b"# x\n\nhello", "text/markdown")])
    assert r.status_code == 200 and r.json()["files"] == ["passwd.md"]


def test_inline_edit_reindexes_one_product_and_changes_the_answer(env):
    client, c = env["client"], env["container"]
    before = client.post(api("/kb/search"), json={"q": "小蓝瓶多少钱"}).json()["answer"]["answer"]
    assert "129" in before
    prod = client.get(api("/kb/products/SK-001")).json()["product"]
    bad = client.put(api("/kb/products/SK-001"), json={**prod, "price": "abc", "stock": -1})
    assert bad.status_code == 422
    assert {i["field"] for i in bad.json()["issues"]} == {"price", "stock"}
    preview = client.post(api("/kb/products/SK-001/preview"), json={**prod, "price": 119}).json()
    # the 30ml option the product's name names was priced as the product: it follows the edit
    assert [f["fact_id"] for f in preview["facts"] if f["changed"]] == ["SK-001:price", "SK-001:variant:0"]
    n_facts = len(preview["facts"])
    v0 = c.kb.active_version(M)
    r = client.put(api("/kb/products/SK-001"), json={**prod, "price": 119})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["changed"] and res["version"] != v0
    assert 1 <= res["embedded"] <= n_facts  # only the edited product's changed facts were embedded
    after = client.post(api("/kb/search"), json={"q": "小蓝瓶多少钱"}).json()
    assert "119" in after["answer"]["answer"] and "129" not in after["answer"]["answer"]
    assert after["answer"]["citations"][0]["fact_id"] == "SK-001:price"
    audit = get_console_audit(env, "kb.product.edit")
    assert audit["before"]["price"] == 129 and audit["after"]["price"] == 119 and audit["actor"] == "user:operator1"
    # unchanged save (the form as it reloads after the save) is a no-op
    saved = client.get(api("/kb/products/SK-001")).json()["product"]
    assert client.put(api("/kb/products/SK-001"), json=saved).json()["changed"] is False


def test_version_diff_and_restore(env):
    client, c = env["client"], env["container"]
    versions = client.get(api("/kb/versions")).json()
    latest = versions[0]["version"]
    d = client.get(api(f"/kb/versions/{latest}/diff")).json()
    ch = {x["sku"]: x for x in d["products"]["changed"]}
    price, options = ch["SK-001"]["fields"]
    assert price == {"field": "price", "field_zh": "直播价", "before": 129.0, "after": 119.0}
    assert options["field"] == "variants" and options["after"][0] == {"name": "30ml", "price": 119}
    new_price = "暖光 玻尿酸保湿精华液 30ml（SK-001）直播价119元，日常价199元"
    assert {"op": "+", "fact_id": "SK-001:price", "text": new_price} in d["facts"]["lines"]
    r = client.post(api("/kb/versions/v0001/restore"))
    assert r.status_code == 200 and c.kb.active_version(M) == "v0001"
    ans = client.post(api("/kb/search"), json={"q": "小蓝瓶多少钱"}).json()["answer"]["answer"]
    assert "129" in ans
    assert client.post(api("/kb/versions/v9999/restore")).status_code == 404
    assert client.post(api("/kb/versions/..%2F..%2Fetc/restore")).status_code in (400, 404)


def test_prompt_draft_preview_publish_history_restore(env):
    client, cs = env["client"], env["console"]
    default = pstore.default_text("system")
    info = client.get(api("/prompts/system")).json()
    assert info["published_version"] == 0 and info["required"] == ["max_chars", "shop"]

    broken = default.replace("${shop}", "${shopp}") + "\n价格 $5 起"
    v = client.post(api("/prompts/system/validate"), json={"text": broken}).json()
    assert not v["ok"] and any("缺少变量" in p for p in v["problems"]) and any("未知变量" in p for p in v["problems"])
    assert any("美元符号" in p for p in v["problems"])
    r = client.put(api("/prompts/system/draft"), json={"text": broken})
    assert r.status_code == 200 and r.json()["problems"]  # a draft may be broken …
    r = client.post(api("/prompts/system/publish"), json={})
    assert r.status_code == 422 and r.json()["problems"]  # … but it cannot be published
    assert client.post(api("/prompts/system/preview"), json={"question": "推荐一下"}).status_code == 422
    assert cs.prompts.published_text(M, "system") is None

    draft = default.replace("你只根据", "开场白：宝子们看这里\n你只根据")
    client.put(api("/prompts/system/draft"), json={"text": draft})
    pv = client.post(api("/prompts/system/preview"), json={"question": "主播今天好漂亮呀"}).json()
    assert pv["llm"] and pv["draft"]["path"] == "llm" and pv["published"]["path"] == "llm"
    assert pv["draft"]["answer"].startswith("宝子们看这里") and not pv["published"]["answer"].startswith("宝子们")
    assert "开场白" in pv["draft"]["rendered"] and "开场白" not in pv["published"]["rendered"]
    assert cs.prompts.published_text(M, "system") is None  # previews publish nothing

    r = client.post(api("/prompts/system/publish"), json={"note": "加开场白"})
    assert r.status_code == 200 and r.json()["version"] == 1
    assert client.get(api("/prompts/system")).json()["draft"] is None
    # the agent now uses the merchant's published prompt; other merchants keep the default
    assert "开场白" in loader.render_for(M, "system", store=cs.prompts, shop="店", max_chars=60)
    assert "开场白" not in loader.render_for("other", "system", store=cs.prompts, shop="店", max_chars=60)
    with loader.scope(M, cs.prompts):
        assert "开场白" in loader.render("system", shop="店", max_chars=60)
    assert "开场白" not in loader.render("system", shop="店", max_chars=60)  # no scope: the shipped file
    ans = client.post(api("/kb/search"), json={"q": "有什么适合干皮的推荐吗？"}).json()["answer"]
    hist = client.get(api("/prompts/system/history")).json()
    assert [(h["version"], h["published"]) for h in hist] == [(1, True), (0, False)]
    d = client.get(api("/prompts/system/diff"), params={"a": 0, "b": "published"}).json()
    assert any(x["op"] == "+" and x["text"].endswith("开场白：宝子们看这里") for x in d["lines"])
    assert any(x["op"] == " " for x in d["lines"])

    r = client.post(api("/prompts/system/restore"), json={"version": 0})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert cs.prompts.effective_text(M, "system") == default
    assert [h["version"] for h in client.get(api("/prompts/system/history")).json()] == [2, 1, 0]
    assert client.post(api("/prompts/system/restore"), json={"version": 7}).status_code == 404
    actions = [a["action"] for a in cs.audit.list(M, limit=20)["items"]]
    assert {"prompt.draft", "prompt.publish", "prompt.restore"} <= set(actions)
    pub = get_console_audit(env, "prompt.publish")
    assert pub["before"] == default and "开场白" in pub["after"]
    assert ans["answer"]  # the retrieval test's answer ran on the published prompt without error


def test_unknown_prompt_and_other_templates(env):
    client = env["client"]
    assert client.get(api("/prompts/nope")).status_code == 404
    assert client.get(api("/prompts/..%2Fsystem")).status_code == 404
    names = {p["name"] for p in client.get(api("/prompts")).json()}
    assert {"system", "answer"} <= names
    pv = client.post(api("/prompts/answer/preview"), json={"question": "小蓝瓶多少钱"}).json()
    assert "小蓝瓶多少钱" in pv["draft"]["rendered"] and "SK-001" in pv["draft"]["rendered"]
