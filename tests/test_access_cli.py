"""`liveroom rooms create|list|close` and `liveroom viewers secret|token`: what an integrator runs."""

from __future__ import annotations

import json

import jwt
import pytest
from typer.testing import CliRunner

from liveroom.cli import app
from tests.support.audience import backends, store_url


@pytest.fixture(params=backends())
def database(request, tmp_path, monkeypatch):
    """The CLI's database: the data dir's SQLite file, or LIVEROOM_DATABASE_URL on a throwaway schema."""
    monkeypatch.setenv("LIVEROOM_DATA_DIR", str(tmp_path))
    if request.param == "sqlite":
        monkeypatch.delenv("LIVEROOM_DATABASE_URL", raising=False)
        yield
        return
    with store_url("pg", tmp_path) as url:
        monkeypatch.setenv("LIVEROOM_DATABASE_URL", url)
        yield


def test_rooms_and_viewer_tokens_from_the_cli(database):
    run = CliRunner().invoke
    r = run(app, ["rooms", "create", "--merchant", "demo", "--room", "spring", "--title", "春季", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["url"].endswith("/rooms/spring")
    assert run(app, ["rooms", "create", "--merchant", "demo", "--room", "spring"]).exit_code == 1  # taken
    assert run(app, ["rooms", "create", "--merchant", "demo", "--room", "spring", "--if-missing"]).exit_code == 0
    assert run(app, ["rooms", "create", "--merchant", "other", "--room", "spring", "--if-missing"]).exit_code == 1
    assert run(app, ["rooms", "create", "--merchant", "demo", "--room", "a.b"]).exit_code == 1
    r = run(app, ["rooms", "list", "--merchant", "demo", "--json"])
    assert [x["room_id"] for x in json.loads(r.stdout)] == ["spring"]
    assert run(app, ["rooms", "close", "--merchant", "demo", "--room", "spring"]).exit_code == 0
    assert json.loads(run(app, ["rooms", "list", "--merchant", "demo", "--json"]).stdout)[0]["status"] == "closed"
    assert run(app, ["rooms", "close", "--merchant", "other", "--room", "spring"]).exit_code == 1

    r = run(app, ["viewers", "secret", "--merchant", "demo", "--json"])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert first["secret"].startswith("lvs_")
    assert run(app, ["viewers", "secret", "--merchant", "demo"]).exit_code == 1  # not shown twice
    r = run(app, ["viewers", "token", "--merchant", "demo", "--viewer", "u-42", "--room", "spring", "--ttl", "600"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    claims = jwt.decode(token, first["secret"], algorithms=["HS256"])
    assert claims["merchant"] == "demo" and claims["viewer_id"] == "u-42" and claims["room"] == "spring"
    assert 590 <= claims["exp"] - claims["iat"] <= 600
    assert jwt.get_unverified_header(token)["kid"] == first["secret_id"]
    # rotation: a new secret; tokens of the old one still verify during the grace period
    second = json.loads(run(app, ["viewers", "secret", "--merchant", "demo", "--rotate", "--json"]).stdout)
    assert second["secret"] != first["secret"] and second["previous"][0]["secret_id"] == first["secret_id"]
    from audience.identity import ViewerTokens
    from audience.service import AudienceService
    from core.settings import Settings

    s = Settings()
    svc = AudienceService.from_settings(s)
    try:
        tokens = ViewerTokens(svc.engine)
        assert tokens.verify(token, merchant="demo", room="spring").viewer_id == "u-42"
        tokens.grace_s = 0
        tokens._forget("demo")
        from audience.identity import InvalidToken

        try:
            tokens.verify(token, merchant="demo", room="spring")
            raise AssertionError("a token of a rotated-out secret verified after its grace period")
        except InvalidToken as e:
            assert e.reason == "bad_signature"
    finally:
        svc.close()
    # a token for an anonymous-namespace id cannot be minted
    assert run(app, ["viewers", "token", "--merchant", "demo", "--viewer", "anon-1"]).exit_code == 1
