"""Publish with proof in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium, as
tests/test_console_browser.py): edit a product's price as a draft, watch the run's progress, see the
changed answer side by side and publish; then delete a spec by mistake, see the publish blocked, override
as the owner with a reason and see it published (and audited). Screenshots go to test-artifacts/regression/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import mini_products, write_json
from tests.test_console_browser import ARGS, CHROMIUM, HAVE_PLAYWRIGHT

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "regression"
M = "t"

pytestmark = [
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright (PyPI) not installed"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}: run scripts/install_console_deps.sh"
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory, use_embedder):
    from console.service import get_console
    from tests.support.console import ServerThread, console_app, make_container

    tmp = tmp_path_factory.mktemp("regression-browser")
    c = make_container(tmp, embedder=use_embedder)
    c.kb.import_files(M, [write_json(tmp / "products.json", mini_products())])
    c.regression.pace = 4.0  # a run paced as during a show: slow enough to watch its progress
    app = console_app(c)
    with ServerThread(app) as srv:
        cs = get_console(app)
        cs.accounts.create_user(M, "owner1", "owner-password-1", "owner", "店主小王")
        yield {"url": srv.url, "console": cs, "container": c}


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_draft_progress_side_by_side_blocked_override_published(site):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url, c = site["url"], site["container"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto(f"{url}/console/m/{M}/kb/products/SK-001")
        page.fill("#username", "owner1")
        page.fill("#password", "owner-password-1")
        page.click("#login-submit")
        expect(page.locator("input[name=price]")).to_have_value("129")

        # --- a price edit as a draft: progress, the changed answer side by side, publish ------------
        page.fill("input[name=price]", "119")
        page.click("#product-draft")
        page.wait_for_url(f"**/console/m/{M}/regression?job=*")
        expect(page.locator("#rg-progress")).to_have_attribute("data-state", "running")
        expect(page.locator("#rg-progress-text")).to_contain_text("在草稿上回答")
        shot(page, "01-run-progress")
        expect(page.locator("#rg-progress")).to_have_attribute("data-state", "done", timeout=90_000)
        expect(page.locator("#rg-verdict-text")).to_have_attribute("data-blocked", "0")
        row = page.locator("#rg-changed tr[data-case='price:SK-001']")
        expect(row.locator("td").nth(1)).to_contain_text("129元")  # the published version's answer …
        expect(row.locator("td").nth(2)).to_contain_text("119元")  # … and the draft's, with their citations
        expect(row.locator("td").nth(2)).to_contain_text("直播价119元")
        shot(page, "02-changed-side-by-side")
        draft1 = c.kb.versions(M)[-1].version
        assert c.kb.active_version(M) != draft1  # viewers still see the published version
        page.click("#rg-publish")
        expect(page.locator("#rg-publish-status")).to_contain_text(f"已发布 知识库 {draft1}")
        assert c.kb.active_version(M) == draft1

        # --- a spec deleted by mistake: blocked, owner override with a reason --------------------------
        page.goto(f"{url}/console/m/{M}/kb/products/SK-002")
        specs = page.locator("textarea[name=specs]")
        expect(specs).to_have_value(re.compile("容量"))
        specs.fill("\n".join(x for x in specs.input_value().split("\n") if not x.startswith("容量")))
        page.click("#product-draft")
        expect(page.locator("#rg-progress")).to_have_attribute("data-state", "done", timeout=90_000)
        expect(page.locator("#rg-verdict-text")).to_have_attribute("data-blocked", "1")
        expect(page.locator("#rg-regressions tr[data-case='spec:SK-002:容量']")).to_contain_text("50g")
        expect(page.locator("#rg-publish")).to_be_disabled()
        shot(page, "03-publish-blocked")
        page.fill("#rg-override-reason", "容量写进详情页图片了，今晚先这样")
        page.click("#rg-override")
        draft2 = c.kb.versions(M)[-1].version
        expect(page.locator("#rg-publish-status")).to_contain_text(f"已发布 知识库 {draft2}（店主强制发布")
        shot(page, "04-override-published")
        assert c.kb.active_version(M) == draft2
        a = site["console"].audit.list(M, limit=1, action="regression.override")["items"][0]
        assert a["actor"] == "user:owner1" and a["after"]["reason"] == "容量写进详情页图片了，今晚先这样"

        # the runs list shows both, the blocked one marked
        expect(page.locator("#rg-runs tbody tr")).to_have_count(2)
        expect(page.locator("#rg-runs tbody tr").first).to_contain_text("拦截")

        # --- a review corrected on the reviews page: a case, a Q&A draft tested, published -----------
        class Ans:
            answer_id, question, kb_version, flagged = "a1", "晚上几点前下单当天发货", None, False
            answer, citations = "这个问题我先记下，稍后请主播帮你确认哦～", []

        rid = site["console"].file_feedback(M, "r1", Ans(), "回答有误", "user:owner1")["id"]
        page.goto(f"{url}/console/m/{M}/reviews")
        li = page.locator(f"#reviews li[data-review='{rid}']")
        li.locator("input[name=correction]").fill("晚上8点前下单当天发货，8点后次日发。")
        shot(page, "05-review-correction")
        li.locator("button", has_text="更正").click()
        page.wait_for_url(f"**/console/m/{M}/regression?job=*")
        expect(page.locator("#rg-progress")).to_have_attribute("data-state", "done", timeout=90_000)
        row = page.locator(f"#rg-changed tr[data-case='review:{rid}']")
        expect(row.locator("td").nth(2)).to_contain_text("晚上8点前下单当天发货")
        expect(row.locator("td").nth(3)).to_contain_text("未通过 → 通过")
        page.click("#rg-publish")
        expect(page.locator("#rg-publish-status")).to_contain_text("已发布 知识库")
        shot(page, "06-correction-published")
        assert site["console"].review(M, rid)["status"] == "resolved"

        # --- the page's plain save is tested too: held when it breaks a case, linked to its run ---------
        page.goto(f"{url}/console/m/{M}/kb/products/SK-001")
        specs = page.locator("textarea[name=specs]")
        expect(specs).to_have_value(re.compile("主要成分"))
        specs.fill("\n".join(x for x in specs.input_value().split("\n") if not x.startswith("主要成分")))
        held_from = c.kb.active_version(M)
        page.click("#product-save")
        expect(page.locator("#product-status")).to_contain_text("未发布", timeout=90_000)
        assert c.kb.active_version(M) == held_from
        shot(page, "07-save-held")
        page.click("#publish-held")
        page.wait_for_url(f"**/console/m/{M}/regression?run=*")
        expect(page.locator("#rg-verdict-text")).to_have_attribute("data-blocked", "1")
        expect(page.locator("#rg-regressions tr[data-case='spec:SK-001:主要成分']")).to_contain_text("玻尿酸")
        page.fill("#rg-override-reason", "成分表今晚由主播口播")
        page.click("#rg-override")
        expect(page.locator("#rg-publish-status")).to_contain_text("店主强制发布")
        shot(page, "08-held-save-overridden")
        assert c.kb.active_version(M) != held_from

        # … and a save that breaks nothing goes straight out, with the run's figures
        page.goto(f"{url}/console/m/{M}/kb/products/SK-002")
        expect(page.locator("input[name=stock]")).to_have_value("12")
        page.fill("input[name=stock]", "11")
        page.click("#product-save")
        expect(page.locator("#product-status")).to_contain_text(
            re.compile("在(已发布版本|草稿)上回答")
        )  # the run's progress
        expect(page.locator("#product-status")).to_contain_text(
            re.compile(r"已发布 v\d+.*发布检查 \d+/\d+ 通过"), timeout=90_000
        )
        shot(page, "09-save-tested-published")
        assert c.kb.catalog(M).product("SK-002").stock == 11
        assert not errors, errors
        browser.close()
