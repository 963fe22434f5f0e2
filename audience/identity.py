"""Verified viewers: signed, expiring viewer tokens (HS256 JWT) with a per-merchant secret.

A merchant's backend (its site, its app, a platform connector) vouches for a viewer by minting

    jwt.encode({"merchant": M, "viewer_id": V, "room": R?, "exp": now + ttl}, SECRET, "HS256",
               headers={"kid": SECRET_ID})   # kid optional

with the secret the merchant's owner created (and may rotate) in the console — shown once. A channel
that receives a valid token treats the viewer as *verified*: their profile, memory across connections
and coupons are used. Anything else that claims to be a token — forged, expired, for another merchant
or room, too long-lived — is an ``invalid_token`` error (never a silent downgrade to anonymous).

Secrets are stored as they are (HMAC needs the key); after a rotation the previous secret keeps
verifying for ``grace_s`` so tokens already handed out do not all fail at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from sqlalchemy import Column, Engine, Float, Index, MetaData, String, Table, select, text, update

from audience.db import ensure_schema, is_sqlite, read_tx, write_tx
from core.errors import LiveRoomError, NotFound
from core.ids import MERCHANT_RE, InvalidId, check_viewer

metadata = MetaData()

viewer_secrets = Table(
    "aud_viewer_secrets",
    metadata,
    Column("secret_id", String(24), primary_key=True),  # the JWT "kid"
    Column("merchant", String(64), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("created_by", String(96), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("retired_at", Float),  # set when a newer secret replaced it
    Index("ix_aud_viewer_secrets_merchant", "merchant"),
)

ALGORITHM = "HS256"
CACHE_TTL_S = 5.0
MAX_TOKEN_CHARS = 2048

# The reasons an ``invalid_token`` error gives (docs/integration.md).
REASONS = (
    "malformed",  # not a JWT, not HS256, or a required claim missing / of the wrong type
    "bad_signature",  # not signed with the merchant's current (or just-rotated) secret
    "expired",  # past its exp
    "not_yet_valid",  # nbf / iat in the future
    "too_long_lived",  # exp further away than the allowed maximum TTL
    "wrong_merchant",  # minted for another merchant than the room's
    "wrong_room",  # minted for another room
    "bad_viewer_id",  # a viewer id outside the allowed pattern (or in the anonymous namespace)
    "no_secret",  # the room's merchant has not created a viewer-token secret yet
)


class InvalidToken(LiveRoomError):
    code = "invalid_token"
    http_status = 401

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or f"viewer token rejected: {reason}", detail={"reason": reason})
        self.reason = reason


@dataclass(frozen=True)
class VerifiedViewer:
    merchant: str
    viewer_id: str
    room: str | None
    expires_at: float


@dataclass
class ViewerTokens:
    """Per-merchant viewer-token secrets: create/rotate (owner only, shown once), mint, verify."""

    engine: Engine
    grace_s: float = 600.0  # a rotated-out secret keeps verifying this long
    max_ttl_s: float = 7 * 24 * 3600.0  # tokens living longer than this are refused
    leeway_s: float = 30.0  # clock skew tolerated on exp / nbf / iat
    _cache: dict[str, tuple[float, list[tuple[str, str, float | None]]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        ensure_schema(self.engine)  # the table is in the app's migrations (audience/migrations, 0002)

    # --- secrets -------------------------------------------------------------------------------
    def rotate(self, merchant: str, actor: str = "") -> tuple[dict[str, Any], str]:
        """Create the merchant's secret, or replace the current one (which keeps verifying for
        ``grace_s``). Returns (metadata, secret): the secret is shown this once."""
        if not MERCHANT_RE.match(merchant or ""):
            raise InvalidId(f"invalid merchant id {merchant!r}")
        sid = "vk_" + secrets.token_hex(8)
        secret = "lvs_" + secrets.token_urlsafe(32)
        now = time.time()
        with write_tx(self.engine) as conn:
            if not is_sqlite(conn):  # (SQLite: the write lock) two rotations at once would both stay current
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"aud_viewer_secrets:{merchant}"}
                )
            conn.execute(
                update(viewer_secrets)
                .where(viewer_secrets.c.merchant == merchant, viewer_secrets.c.retired_at.is_(None))
                .values(retired_at=now)
            )
            conn.execute(
                viewer_secrets.insert().values(
                    secret_id=sid, merchant=merchant, secret=secret, created_by=(actor or "")[:96], created_at=now
                )
            )
        self._forget(merchant)
        info = self.info(merchant)
        assert info is not None
        return info, secret

    def info(self, merchant: str) -> dict[str, Any] | None:
        """The current secret's id and dates (never the secret), or None if there is none yet."""
        with read_tx(self.engine) as conn:
            rows = conn.execute(
                select(viewer_secrets)
                .where(viewer_secrets.c.merchant == merchant)
                .order_by(viewer_secrets.c.created_at.desc())
            ).all()
        current = next((r for r in rows if r.retired_at is None), None)
        if current is None:
            return None
        now = time.time()
        previous = [
            {"secret_id": r.secret_id, "verifies_until": r.retired_at + self.grace_s}
            for r in rows
            if r.retired_at is not None and r.retired_at + self.grace_s > now
        ]
        return {
            "secret_id": current.secret_id,
            "algorithm": ALGORITHM,
            "created_at": current.created_at,
            "created_by": current.created_by,
            "previous": previous,
        }

    def _keys(self, merchant: str) -> list[tuple[str, str, float | None]]:
        """(secret_id, secret, retired_at) of the secrets that still verify, newest first (cached)."""
        now = time.monotonic()
        hit = self._cache.get(merchant)
        if hit and now - hit[0] < CACHE_TTL_S:
            return hit[1]
        cutoff = time.time() - self.grace_s
        with read_tx(self.engine) as conn:
            rows = conn.execute(
                select(viewer_secrets.c.secret_id, viewer_secrets.c.secret, viewer_secrets.c.retired_at)
                .where(
                    viewer_secrets.c.merchant == merchant,
                    (viewer_secrets.c.retired_at.is_(None)) | (viewer_secrets.c.retired_at > cutoff),
                )
                .order_by(viewer_secrets.c.created_at.desc())
            ).all()
        keys = [(r.secret_id, r.secret, r.retired_at) for r in rows]
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[merchant] = (now, keys)
        return keys

    def _forget(self, merchant: str) -> None:
        with self._lock:
            self._cache.pop(merchant, None)

    # --- tokens --------------------------------------------------------------------------------
    def mint(self, merchant: str, viewer_id: str, room: str | None = None, ttl_s: float = 3600) -> str:
        """A token for ``viewer_id`` signed with the merchant's current secret (what the merchant's
        backend does; here for the CLI and tests)."""
        check_viewer(viewer_id)
        keys = [k for k in self._keys(merchant) if k[2] is None]
        if not keys:
            raise NotFound(f"merchant {merchant!r} has no viewer-token secret yet", code="no_secret")
        sid, secret, _ = keys[0]
        now = int(time.time())
        claims: dict[str, Any] = {"merchant": merchant, "viewer_id": viewer_id, "iat": now, "exp": now + int(ttl_s)}
        if room:
            claims["room"] = room
        return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": sid})

    def verify(self, token: str, *, merchant: str, room: str | None = None) -> VerifiedViewer:
        """The viewer the token vouches for in ``merchant``'s ``room``, else ``InvalidToken``."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("malformed")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None
        if header.get("alg") != ALGORITHM or not isinstance(unverified, dict):
            raise InvalidToken("malformed")
        if unverified.get("merchant") != merchant:
            raise InvalidToken("wrong_merchant")
        keys = self._keys(merchant)
        if not keys:
            raise InvalidToken("no_secret", "this shop has not set up viewer verification yet")
        kid = header.get("kid")
        candidates = [k for k in keys if k[0] == kid] if kid else keys
        if not candidates:
            raise InvalidToken("bad_signature")
        claims: dict[str, Any] | None = None
        for _sid, secret, _retired in candidates:
            try:
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=[ALGORITHM],
                    options={"require": ["exp"]},
                    leeway=self.leeway_s,
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise InvalidToken("expired") from None
            except jwt.ImmatureSignatureError:
                raise InvalidToken("not_yet_valid") from None
            except jwt.PyJWTError:
                raise InvalidToken("malformed") from None
        if claims is None:
            raise InvalidToken("bad_signature")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp - time.time() > self.max_ttl_s + self.leeway_s:
            raise InvalidToken("too_long_lived")
        viewer = claims.get("viewer_id", claims.get("sub"))
        try:
            check_viewer(viewer)  # type: ignore[arg-type]
        except InvalidId:
            raise InvalidToken("bad_viewer_id") from None
        token_room = claims.get("room")
        if token_room is not None and (not isinstance(token_room, str) or token_room != room):
            raise InvalidToken("wrong_room")
        return VerifiedViewer(merchant=merchant, viewer_id=viewer, room=token_room, expires_at=float(exp))
