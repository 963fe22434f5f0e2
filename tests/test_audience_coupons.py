"""Coupon ledger: eligibility, idempotency, budgets and limits under thread/process concurrency, crash safety."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audience.service import AudienceService
from sim.audience_bench import bench_coupons
from tests.support.audience import backends, pg_url, store_url, temp_service
from tools.contracts import CouponLedger, CouponResult, ProfileStore

NOW = time.time()


@pytest.fixture(params=backends())
def backend(request):
    return request.param


@pytest.fixture()
def svc(backend, tmp_path):
    with temp_service(backend, tmp_path) as s:
        yield s


def campaign(svc, cid: str, **kw) -> str:
    spec = {
        "campaign_id": cid,
        "title": f"券{cid}",
        "kind": "amount",
        "amount": 10,
        "threshold": 99,
        "budget_count": 100,
        "per_viewer_limit": 1,
        **kw,
    }
    return svc.create_campaign("m1", spec).campaign_id


def people(svc) -> None:
    """fan (3 orders, member), lipstick fan (browser with 口红 interest), a passer-by."""
    svc.upsert_products(
        "m1",
        [
            {"sku": "LS-1", "name": "丝绒口红", "category": "彩妆"},
            {"sku": "DR-1", "name": "碎花连衣裙", "category": "女装"},
        ],
    )
    svc.upsert_viewers(
        "m1",
        [
            {"viewer_id": "fan", "member": True, "orders": 3, "spent": 600},
            {"viewer_id": "lip"},
            {"viewer_id": "passer"},
        ],
    )
    svc.ingest(
        "m1",
        [
            {
                "event_id": f"w{i}",
                "viewer_id": "lip",
                "type": "watch",
                "sku": "LS-1",
                "seconds": 60,
                "ts": NOW - 600 + 60 * i,
            }
            for i in range(8)
        ],
    )


def iso(dt: datetime) -> str:
    return dt.isoformat()


def test_service_implements_the_agent_contracts(svc):
    import inspect

    for proto in (ProfileStore, CouponLedger):
        for name, fn in vars(proto).items():
            if callable(fn) and not name.startswith("_"):
                want = list(inspect.signature(fn).parameters)
                assert list(inspect.signature(getattr(svc, name)).parameters) == want[1:], name  # minus self


def test_eligibility_decides_offers_and_issue(svc):
    people(svc)
    now = datetime.now(UTC)
    campaign(svc, "ALL")
    campaign(svc, "FANS", eligible_tiers=["铁粉"], amount=30)
    campaign(
        svc,
        "LIPSTICK",
        kind="discount",
        amount=None,
        discount=0.9,
        max_off=20,
        eligible_tags=["口红兴趣"],
        skus=["LS-1"],
    )
    campaign(svc, "MEMBERS", members_only=True, amount=50, threshold=399)
    campaign(svc, "LATER", valid_from=iso(now + timedelta(hours=1)))
    campaign(svc, "OVER", valid_from=iso(now - timedelta(days=2)), valid_until=iso(now - timedelta(days=1)))
    campaign(svc, "PAUSED", status="paused")
    ids = lambda v, sku=None: [o.campaign_id for o in svc.eligible_offers("m1", v, sku)]  # noqa: E731
    assert ids("fan") == ["MEMBERS", "FANS", "ALL"]  # biggest first
    assert ids("lip") == ["LIPSTICK", "ALL"]
    assert ids("lip", "DR-1") == ["ALL"]  # product-specific coupons only for their products
    assert ids("passer") == ["ALL"]
    assert ids("nobody") == []
    assert svc.lookup("m1", "lip").interest_tags[0].tag == "口红兴趣"

    for viewer, cid, code in [
        ("passer", "FANS", "not_eligible"),
        ("passer", "LIPSTICK", "not_eligible"),
        ("lip", "MEMBERS", "not_eligible"),
        ("fan", "LATER", "not_eligible"),
        ("fan", "OVER", "expired"),
        ("fan", "PAUSED", "not_eligible"),
        ("fan", "NOPE", "unknown_campaign"),
        ("nobody", "ALL", "not_eligible"),
    ]:
        r = svc.issue("m1", viewer, cid, f"{viewer}-{cid}")
        assert (r.ok, r.code, r.coupon_id) == (False, code, None), (viewer, cid, r)
        assert r.message and "～" in r.message  # a polite sentence for the viewer
    r = svc.issue("m1", "lip", "LIPSTICK", "k1")
    assert r.ok and r.code == "issued" and r.offer.discount == 0.9 and r.offer.skus == ["LS-1"]
    assert ids("lip") == ["ALL"]  # at the per-viewer limit now
    assert "暂时不适用" in svc.issue("m1", "passer", "FANS", "x").message


def test_idempotency_keys_and_per_viewer_limit(svc):
    people(svc)
    campaign(svc, "C", per_viewer_limit=2)
    a = svc.issue("m1", "fan", "C", "order-1")
    again = svc.issue("m1", "fan", "C", "order-1")
    assert a.code == "issued" and again.code == "already_issued" and again.ok
    assert again.coupon_id == a.coupon_id
    b = svc.issue("m1", "fan", "C", "order-2")
    assert b.code == "issued" and b.coupon_id != a.coupon_id
    c = svc.issue("m1", "fan", "C", "order-3")
    assert (c.ok, c.code) == (False, "limit_reached") and "限领2张" in c.message
    assert svc.issue("m1", "fan", "C", "order-2").coupon_id == b.coupon_id  # replays still answer
    stolen = svc.issue("m1", "passer", "C", "order-1")  # someone else's key: no coupon for anyone
    assert not stolen.ok and stolen.coupon_id is None
    audit = svc.ledger_check("m1", "C")
    assert audit["ok"] and audit["coupons"] == 2 and audit["claims"] == 2
    assert [c["coupon_id"] for c in svc.coupons_of("m1", "fan")] == [a.coupon_id, b.coupon_id]


def test_budget_count_and_money_cap(svc):
    svc.upsert_viewers("m1", [{"viewer_id": f"v{i}"} for i in range(10)])
    campaign(svc, "N", budget_count=3)
    campaign(svc, "MONEY", amount=20, budget_count=10, budget_money=50)  # 2 coupons fit in 50 yuan
    campaign(
        svc, "DISC", kind="discount", amount=None, discount=0.8, max_off=30, budget_count=10, budget_money=100
    )  # 3 × 30 fit
    got = {cid: [svc.issue("m1", f"v{i}", cid, f"{cid}-{i}").code for i in range(6)] for cid in ("N", "MONEY", "DISC")}
    assert got["N"] == ["issued"] * 3 + ["budget_exhausted"] * 3
    assert got["MONEY"] == ["issued"] * 2 + ["budget_exhausted"] * 4
    assert got["DISC"] == ["issued"] * 3 + ["budget_exhausted"] * 3
    assert "抢光" in svc.issue("m1", "v9", "N", "late").message
    c = svc.get_campaign("m1", "MONEY")
    assert (c.issued_count, c.issued_value, c.remaining) == (2, 40.0, 8)
    assert svc.eligible_offers("m1", "v9") == []  # nothing left to offer
    for cid in ("N", "MONEY", "DISC"):
        assert svc.ledger_check("m1", cid)["ok"]
    with pytest.raises(ValueError):  # a discount campaign with a money cap needs a per-coupon cap
        svc.create_campaign(
            "m1", {"title": "x", "kind": "discount", "discount": 0.9, "budget_count": 5, "budget_money": 100}
        )


def test_the_database_refuses_to_exceed_the_budget_or_rewrite_the_ledger(svc):
    svc.upsert_viewers("m1", [{"viewer_id": "v"}])
    campaign(svc, "C", budget_count=1)
    assert svc.issue("m1", "v", "C", "k").ok
    with pytest.raises(DBAPIError):  # CHECK constraint: a buggy writer still cannot overspend
        with svc.engine.begin() as conn:
            conn.execute(text("UPDATE aud_coupon_campaigns SET issued_count = issued_count + 1"))
    for sql in ("UPDATE aud_coupon_ledger SET value_fen = 0", "DELETE FROM aud_coupon_ledger"):
        with pytest.raises(DBAPIError, match="append-only"):
            with svc.engine.begin() as conn:
                conn.execute(text(sql))
    assert svc.ledger_check("m1", "C")["ok"]


def test_redeem_checks_threshold_stacking_and_is_idempotent(svc):
    svc.upsert_viewers("m1", [{"viewer_id": "v"}, {"viewer_id": "w"}])
    campaign(svc, "A", amount=20, threshold=199, stackable=True)
    campaign(svc, "B", amount=5, threshold=0, stackable=True)
    campaign(svc, "SOLO", kind="discount", amount=None, discount=0.9, max_off=15, threshold=0)
    campaign(svc, "LIP", amount=10, threshold=0, skus=["LS-1"])
    a, b, solo, lip = (svc.issue("m1", "v", c, "k").coupon_id for c in ("A", "B", "SOLO", "LIP"))
    red = lambda ids, order, value, **kw: svc.redeem(
        "m1",
        {
            "viewer_id": kw.pop("viewer", "v"),  # noqa: E731
            "coupon_ids": ids,
            "order_id": order,
            "order_value": value,
            **kw,
        },
    )
    assert red([a], "o1", 150).code == "below_threshold"
    assert red([a, solo], "o1", 300).code == "not_stackable"
    assert red([a], "o1", 300, viewer="w").code == "not_owner"
    assert red(["CPnope"], "o1", 300).code == "not_found"
    assert red([lip], "o1", 300, skus=["DR-1"]).code == "not_applicable"
    ok = red([a, b], "o1", 300)
    assert ok.ok and ok.code == "redeemed" and ok.discount == 25.0
    assert red([a, b], "o1", 300).code == "already_redeemed" and red([a, b], "o1", 300).ok  # replay
    assert not red([a], "o2", 300).ok  # used
    s = red([solo], "o3", 1000)
    assert s.discount == 15.0  # 10% of 1000 capped at 15
    assert red([lip], "o4", 50, skus=["LS-1"]).discount == 10.0
    for cid in ("A", "B", "SOLO", "LIP"):
        assert svc.ledger_check("m1", cid)["ok"]


def test_concurrent_threads_respect_budget_and_limits(backend, tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}" if backend == "sqlite" else pg_url()
    res = bench_coupons(claims=300, budget=40, workers=0, url=url, threads=12, per_viewer_limit=2, seed=4)
    assert (res["issued"], res["duplicates"], res["over_limit"]) == (40, 0, 0), res
    assert res["ledger_ok"] and res["codes"]["issued"] == 40


def test_four_worker_processes_1000_claims_100_budget(backend, tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}" if backend == "sqlite" else pg_url()
    res = bench_coupons(claims=1000, budget=100, workers=4, url=url, threads=6)
    assert (res["issued"], res["budget"], res["duplicates"], res["over_limit"]) == (100, 100, 0, 0), res
    assert res["ledger_ok"] and res["codes"]["issued"] == 100 and res["codes"]["already_issued"] > 0


# --- crash safety -----------------------------------------------------------------------------------


def _die_at(point: str):
    def fault(p: str) -> None:
        if p == point:
            os.kill(os.getpid(), signal.SIGKILL)

    return fault


def _issue_then_die(url: str, point: str) -> None:  # child process
    svc = AudienceService(url, auto_migrate=False)
    svc._fault = _die_at(point)
    svc.issue("m1", "v", "C", "crash-key")
    os._exit(3)  # not reached: the fault point kills us inside the transaction


@pytest.mark.parametrize("point", ["after_claim", "after_budget", "after_coupon", "before_commit"])
def test_killed_inside_the_issue_transaction_leaves_no_trace(backend, tmp_path, point):
    with store_url(backend, tmp_path) as url:
        svc = AudienceService(url)
        svc.upsert_viewers("m1", [{"viewer_id": "v"}])
        campaign(svc, "C", budget_count=5)
        svc.engine.dispose()  # nothing shared with the child
        p = mp.get_context("fork").Process(target=_issue_then_die, args=(url, point))
        p.start()
        p.join(30)
        assert p.exitcode == -signal.SIGKILL
        audit = svc.ledger_check("m1", "C")
        assert audit["ok"] and audit["coupons"] == audit["issued_count"] == audit["claims"] == 0, audit
        r = svc.issue("m1", "v", "C", "crash-key")  # the client retries with its key
        assert r.code == "issued"
        assert svc.issue("m1", "v", "C", "crash-key").coupon_id == r.coupon_id
        audit = svc.ledger_check("m1", "C")
        assert audit["ok"] and audit["coupons"] == audit["ledger_issues"] == audit["issued_count"] == 1
        svc.close()


def _issue_loop(url: str, n: int) -> None:  # child process, killed from outside at a random moment
    svc = AudienceService(url, auto_migrate=False)
    svc._fault = lambda p: time.sleep(0.001)  # linger inside the transaction so the kill often lands there
    for i in range(n):
        svc.issue("m1", f"v{i}", "C", f"key-{i}")
    os._exit(0)


def test_worker_killed_mid_loop_then_retried(backend, tmp_path):
    n, budget = 120, 90
    with store_url(backend, tmp_path) as url:
        svc = AudienceService(url)
        svc.upsert_viewers("m1", [{"viewer_id": f"v{i}"} for i in range(n)])
        campaign(svc, "C", budget_count=budget)
        svc.engine.dispose()
        for kill_after in (15, 45):  # two crashes, each somewhere in the middle of the loop
            p = mp.get_context("fork").Process(target=_issue_loop, args=(url, n))
            p.start()
            deadline = time.time() + 30
            while svc.ledger_check("m1", "C")["coupons"] < kill_after and time.time() < deadline:
                time.sleep(0.002)
            os.kill(p.pid, signal.SIGKILL)
            p.join(10)
            audit = svc.ledger_check("m1", "C")
            assert audit["ok"], audit  # issued count == coupons == ledger rows == claims, within budget
            assert kill_after <= audit["coupons"] < budget
        before = {c["coupon_id"] for i in range(n) for c in svc.coupons_of("m1", f"v{i}")}
        results = [svc.issue("m1", f"v{i}", "C", f"key-{i}") for i in range(n)]  # clients retry everything
        issued = [r for r in results if r.ok]
        assert len(issued) == budget and len({r.coupon_id for r in issued}) == budget
        assert before <= {r.coupon_id for r in issued}  # nothing issued before the crash was lost
        assert sum(r.code == "budget_exhausted" for r in results) == n - budget
        audit = svc.ledger_check("m1", "C")
        assert audit["ok"] and audit["coupons"] == audit["ledger_issues"] == budget
        svc.close()


def test_the_agent_asking_for_more_gets_a_polite_no(svc):
    people(svc)
    campaign(svc, "ALL", budget_count=1)
    campaign(svc, "FANS", eligible_tiers=["铁粉"])
    offers = svc.eligible_offers("m1", "passer")
    assert [o.campaign_id for o in offers] == ["ALL"]
    attempts = [
        svc.issue("m1", "passer", "FANS", "a1"),  # a campaign it was not offered
        svc.issue("m1", "passer", "ALL-100-YUAN", "a2"),  # one made up
        svc.issue("m1", "passer", "ALL", "a3"),  # the real one...
        svc.issue("m1", "passer", "ALL", "a4"),  # ...and again, with a fresh key
        svc.issue("m1", "fan", "ALL", "a5"),
    ]  # budget of 1 is gone
    assert [r.code for r in attempts] == [
        "not_eligible",
        "unknown_campaign",
        "issued",
        "limit_reached",
        "budget_exhausted",
    ]
    for r in attempts:
        assert isinstance(r, CouponResult) and r.message
        assert r.ok == (r.code == "issued")
