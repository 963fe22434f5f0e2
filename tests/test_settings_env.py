"""One `Settings`, read from env and `.env`, reaches every area's component (issue: `.env` was ignored
for `LIVEROOM_DATABASE_URL` because the audience store read `os.environ` itself)."""

from __future__ import annotations

import os

import pytest

from core.settings import Settings
from liveroom.container import Container


@pytest.fixture
def dotenv_dir(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("LIVEROOM_"):
            monkeypatch.delenv(k)
    db = tmp_path / "from-dotenv.db"
    (tmp_path / ".env").write_text(
        f"LIVEROOM_DATA_DIR={tmp_path / 'data'}\n"
        f"LIVEROOM_DATABASE_URL=sqlite:///{db}\n"
        "LIVEROOM_LLM_BACKEND=openai\n"
        "LIVEROOM_LLM_BASE_URL=http://llm.example:9000/v1\n"
        "LIVEROOM_VOICE_STT=stub\n"
        'LIVEROOM_VOICE_STT_OPTIONS={"lang": "zh"}\n'
        "LIVEROOM_VOICE_VAD_STOP_SECS=0.4\n"
        "LIVEROOM_CONSOLE_SIMULATOR=shop-a,shop-b\n"
        "LIVEROOM_CONSOLE_ADMIN_TOKEN=t0ken-from-dotenv-xxxxxxxxxxxx\n"
        "LIVEROOM_ACCESS_QUESTIONS_PER_IP=7\n"
        "LIVEROOM_ACCESS_TRUSTED_PROXIES=10.0.0.0/8, 192.168.1.1\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dotenv_fields_of_every_area_are_read(dotenv_dir):
    s = Settings()
    assert s.data_dir == dotenv_dir / "data"
    assert s.database_url == f"sqlite:///{dotenv_dir / 'from-dotenv.db'}"
    assert (s.llm_backend, s.llm_base_url) == ("openai", "http://llm.example:9000/v1")
    assert (s.voice.stt, s.voice.stt_options, s.voice.vad_stop_secs) == ("stub", {"lang": "zh"}, 0.4)
    assert s.console.simulator_allowed("shop-b") and not s.console.simulator_allowed("demo")
    assert s.console.admin_token.get_secret_value() == "t0ken-from-dotenv-xxxxxxxxxxxx"
    assert "t0ken" not in repr(s)  # secrets do not leak into logs
    assert s.access.questions_per_ip == 7 and s.access.proxies() == ["10.0.0.0/8", "192.168.1.1"]


def test_env_var_beats_dotenv(dotenv_dir, monkeypatch):
    monkeypatch.setenv("LIVEROOM_VOICE_STT", "whisper")
    assert Settings().voice.stt == "whisper"


def test_dotenv_reaches_the_components_that_use_it(dotenv_dir):
    from console.service import ConsoleService
    from voice.services import VoiceServices

    c = Container(Settings())
    try:
        # audience store: the database named in .env, not the data-dir default
        assert c.audience.engine.url.database == str(dotenv_dir / "from-dotenv.db")
        assert (dotenv_dir / "from-dotenv.db").exists()
        # voice: the services see the .env STT choice
        assert VoiceServices(c).settings.stt == "stub"
        # console: the simulator allow-list from .env
        assert ConsoleService(c).config.simulator_allowed("shop-a")
        # prompts: the store lives under the .env data dir
        assert c.prompts.root == (dotenv_dir / "data").resolve() / "prompts"
    finally:
        c.audience.close()
