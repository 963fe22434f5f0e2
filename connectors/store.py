"""Connector configurations and their secrets, one JSON file per app (``<data_dir>/connectors/``).

A connector binds one platform source to one LiveRoom room of one merchant. Its secret (the webhook's
HMAC key, the Douyin app's push secret) is created by the console and shown once; the file is written
0600 and atomically. The overlay-token key (connectors/overlay.py) lives here too, so tokens survive a
restart.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.errors import BadRequest, NotFound
from core.ids import MERCHANT_RE, ROOM_RE

ConnectorKind = Literal["douyin", "webhook", "bilibili", "replay"]
CONNECTOR_ID_RE = r"^[A-Za-z0-9_-]{1,64}$"


class UnknownConnector(NotFound):
    code = "unknown_connector"


class ConnectorConfig(BaseModel):
    connector_id: str = Field(pattern=CONNECTOR_ID_RE)
    merchant: str = Field(pattern=MERCHANT_RE.pattern)
    room_id: str = Field(pattern=ROOM_RE.pattern)
    kind: ConnectorKind
    platform: str = ""  # the webhook's platform name (kuaishou, taobao, …); douyin/bilibili for those
    secret: str = ""  # HMAC key (webhook) / push secret (douyin); never returned after creation
    platform_room: str = ""  # Douyin roomid / Bilibili room id
    app_id: str = ""  # Douyin 小玩法 appid
    access_token: str = ""  # Douyin: the app's access_token for the task API (refreshed every 2 h)
    api_base: str = ""  # Douyin task API base URL (default: the platform; tests: the emulator)
    # The merchant's middleware signs its webhook and may vouch for its users (verified viewers); off by
    # default: a platform user id is a stranger until someone signs who they are.
    trust_identity: bool = False
    dry_run: bool = True  # replies to the platform API are logged, not sent
    window_s: float = 300.0  # signed requests older or newer than this are refused (replay window)
    created_at: float = Field(default_factory=time.time)
    enabled: bool = True

    def public(self) -> dict:
        return self.model_dump(exclude={"secret", "access_token"}) | {"has_secret": bool(self.secret)}


class ConnectorStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / "connectors.json"
        self._lock = threading.Lock()
        self._data: dict = {"connectors": {}, "overlay_key": ""}
        if self.path.exists():
            self._data = json.loads(self.path.read_text(encoding="utf-8"))

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self._data, f, ensure_ascii=False, indent=1)
        os.replace(tmp, self.path)

    # --- connectors -------------------------------------------------------------------------------
    def create(self, cfg: ConnectorConfig) -> tuple[ConnectorConfig, str]:
        """Store ``cfg`` with a fresh secret (unless it brings one); returns it and the secret (shown once)."""
        with self._lock:
            if cfg.connector_id in self._data["connectors"]:
                raise BadRequest(f"connector {cfg.connector_id!r} exists", code="connector_exists")
            if not cfg.secret and cfg.kind in ("webhook", "douyin"):
                cfg = cfg.model_copy(update={"secret": "lcs_" + secrets.token_urlsafe(24)})
            self._data["connectors"][cfg.connector_id] = cfg.model_dump()
            self._save()
        return cfg, cfg.secret

    def rotate(self, connector_id: str) -> str:
        with self._lock:
            c = self._data["connectors"].get(connector_id)
            if c is None:
                raise UnknownConnector(f"no connector {connector_id!r}")
            c["secret"] = "lcs_" + secrets.token_urlsafe(24)
            self._save()
            return c["secret"]

    def get(self, connector_id: str) -> ConnectorConfig:
        c = self._data["connectors"].get(connector_id)
        if c is None:
            raise UnknownConnector(f"no connector {connector_id!r}")
        return ConnectorConfig.model_validate(c)

    def list(self, merchant: str | None = None) -> list[ConnectorConfig]:
        out = [ConnectorConfig.model_validate(c) for c in self._data["connectors"].values()]
        return [c for c in out if merchant is None or c.merchant == merchant]

    def delete(self, connector_id: str) -> None:
        with self._lock:
            self._data["connectors"].pop(connector_id, None)
            self._save()

    # --- the overlay-token key --------------------------------------------------------------------
    def overlay_key(self) -> bytes:
        with self._lock:
            if not self._data.get("overlay_key"):
                self._data["overlay_key"] = secrets.token_hex(32)
                self._save()
            return bytes.fromhex(self._data["overlay_key"])
