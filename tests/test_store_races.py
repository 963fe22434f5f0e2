"""Concurrent writers on the SQL stores, on SQLite and PostgreSQL. SQLite serializes writers with its write
lock; on PostgreSQL (read committed) a check-then-insert can interleave, so each store's create must hold
up by itself: one room per id, one current viewer-token secret, one campaign / experiment per id."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.support.audience import backends, temp_engine

N = 8


@pytest.fixture(params=backends())
def engine(request, tmp_path):
    with temp_engine(request.param, tmp_path) as e:
        yield e


def together(fn) -> list:
    """``fn(i)`` on N threads released at once; each result, or the exception it raised."""
    barrier = threading.Barrier(N)
    out: list = [None] * N

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - the test looks at what each got
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_one_room_per_id(engine):
    from audience.rooms import RoomRegistry
    from core.errors import Conflict

    reg = RoomRegistry(engine)
    got = together(lambda i: reg.create(f"m{i}", "same-room", "t"))
    won = [r for r in got if not isinstance(r, Exception)]
    assert len(won) == 1 and all(isinstance(r, Conflict) for r in got if r not in won), got
    assert reg.get("same-room").merchant == won[0].merchant
    ensured = together(lambda i: reg.ensure(won[0].merchant, "same-room").room_id)
    assert ensured == ["same-room"] * N


def test_one_current_viewer_secret_after_concurrent_rotations(engine):
    from sqlalchemy import func, select

    from audience.identity import ViewerTokens, viewer_secrets

    tokens = ViewerTokens(engine)
    got = together(lambda i: tokens.rotate("m")[1])
    assert not [r for r in got if isinstance(r, Exception)], got
    with engine.connect() as conn:
        current = conn.execute(
            select(func.count())
            .select_from(viewer_secrets)
            .where(viewer_secrets.c.merchant == "m", viewer_secrets.c.retired_at.is_(None))
        ).scalar_one()
    assert current == 1
    info = tokens.info("m")
    assert info is not None and len(info["previous"]) == N - 1


def test_one_campaign_and_one_experiment_per_id(engine):
    from copywriting.store import CopyStore

    store = CopyStore(engine)
    assert Counter(together(lambda i: store.put_campaign("m", "c1", {"skus": ["A"]}))) == {
        "created": 1,
        "exists": N - 1,
    }
    assert Counter(together(lambda i: store.put_experiment("m", "e1", {"v": 1}))) == {"created": 1, "exists": N - 1}
    got = together(lambda i: store.put_campaign("m", "c2", {"skus": [str(i)]}))  # different specs: one wins
    assert got.count("created") == 1 and all(isinstance(r, ValueError) for r in got if r != "created")


def test_one_console_user_per_username_and_first_logins_at_once(engine):
    from audience.db import ensure_schema
    from console.auth import Accounts, AuthError

    ensure_schema(engine)
    acc = Accounts(engine)
    together(lambda i: acc.ensure_merchant("shop-a"))  # no IntegrityError from the merchant row either
    got = together(lambda i: acc.create_user("shop-a", "same.name", f"pw-{i}-long-enough", "operator"))
    won = [r for r in got if not isinstance(r, Exception)]
    assert len(won) == 1 and all(isinstance(r, AuthError) for r in got if r not in won), got
