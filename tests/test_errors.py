"""One exception tree: every deliberate error is a `LiveRoomError` with a code and an HTTP status."""

from __future__ import annotations

import pytest

from agent.llm import LLMUnavailable
from audience.coupons import CampaignExists
from audience.events import EventError
from audience.service import BatchTooLarge
from console.auth import AuthError
from console.kb import UploadRejected
from copywriting.ab import UnknownExperiment
from copywriting.generator import DraftRejected
from core.errors import LiveRoomError
from core.provision import ChecksumError, ProvisionError
from core.timeutil import BadTimestamp
from host.rundown import RundownError
from host.speech import SpeechError
from knowledge.importers import KBImportError
from knowledge.store import KBError, UnknownMerchant, UnknownVersion
from prompts.loader import PromptError
from tools.registry import ToolError
from vision.ocr import OCRUnavailable
from vision.store import ImageNotFound
from vision.upload import ImageRejected
from voice.services import VoiceUnavailable

ALL = [
    LLMUnavailable,
    CampaignExists,
    EventError,
    BatchTooLarge,
    AuthError,
    UploadRejected,
    UnknownExperiment,
    DraftRejected,
    ProvisionError,
    ChecksumError,
    BadTimestamp,
    RundownError,
    SpeechError,
    KBImportError,
    KBError,
    UnknownMerchant,
    UnknownVersion,
    PromptError,
    ToolError,
    OCRUnavailable,
    ImageNotFound,
    ImageRejected,
    VoiceUnavailable,
]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_has_the_one_root(cls):
    assert issubclass(cls, LiveRoomError)
    assert isinstance(cls.code, str) and cls.code
    assert 400 <= cls.http_status < 600


def test_codes_are_distinct_where_the_faults_differ():
    assert UnknownMerchant.http_status == 404 and KBError.http_status == 400
    e = EventError("bad_type", "unknown event type")
    assert (e.code, e.to_dict()["code"], str(e)) == ("bad_type", "bad_type", "unknown event type")
    assert str(ImageNotFound("no such image")) == "no such image"


def test_unhandled_liveroom_errors_render_through_the_one_handler():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from server import install_error_handler

    app = FastAPI()
    install_error_handler(app)

    @app.get("/boom")
    def boom() -> None:
        raise UnknownVersion("version v0099 does not exist")

    r = TestClient(app).get("/boom")
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "unknown_version", "message": "version v0099 does not exist"}
