"""Accounts, passwords, sessions, API tokens and the login rate limiter.

- Passwords: Argon2id (argon2-cffi, RFC 9106 parameters); unknown users are checked against a dummy
  hash so a failed login takes as long whether or not the user exists.
- Sessions: a random 256-bit id in an HttpOnly, SameSite=Lax cookie; only its SHA-256 is stored, a
  new id is issued at every login (no fixation), and each session has its own CSRF token.
- API tokens: ``lrk_<id>_<secret>``, shown once; only the secret's SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, delete, select, update

from audience.db import insert_for, read_tx, write_tx
from console import db as t
from core.errors import BadRequest
from core.ids import MERCHANT_RE

Role = Literal["owner", "operator", "viewer"]
ROLES: tuple[str, ...] = ("viewer", "operator", "owner")  # ascending power
ROLE_ZH = {"owner": "店主", "operator": "运营", "viewer": "只读"}
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
SESSION_TTL_S = 12 * 3600
SESSION_IDLE_S = 4 * 3600
MIN_PASSWORD = 8

_ph = PasswordHasher()
_DUMMY_HASH = _ph.hash("not-a-real-password-" + secrets.token_hex(8))


class AuthError(BadRequest):
    code = "auth_error"


# An "agent" API token only calls the agent as an OpenAI-compatible model (/v1/chat/completions):
# it is below every console role, so the guard refuses it everywhere else.
TOKEN_ROLES = ("operator", "viewer", "agent")


def role_at_least(role: str, need: str) -> bool:
    if role not in ROLES or need not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(need)


def sha256(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def hash_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AuthError(f"密码至少 {MIN_PASSWORD} 位")
    if len(password) > 256:
        raise AuthError("密码过长")
    return _ph.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _ph.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Principal:
    """Who is calling: a console user (session) or an integration (API token)."""

    kind: Literal["session", "token", "admin"]
    merchant: str | None
    role: str
    actor: str  # for the audit log: "user:alice", "token:erp-sync"
    user_id: str | None = None
    username: str | None = None
    display_name: str | None = None
    csrf: str | None = None
    token_id: str | None = None

    def can(self, need: str) -> bool:
        return role_at_least(self.role, need)


class LoginLimiter:
    """Sliding windows: attempts per client IP, failures per (username, client IP). In-process (one per
    worker). Failures count per (user, IP) so that nobody can lock an account for everyone by failing on
    purpose from their own address; guessing from one address is still stopped after ``per_user``. The IP
    is the socket peer (behind a proxy: set LIVEROOM_ACCESS_TRUSTED_PROXIES so the server sees clients)."""

    def __init__(self, per_ip: int = 20, ip_window_s: float = 300, per_user: int = 5, user_window_s: float = 900):
        self.per_ip, self.ip_window_s, self.per_user, self.user_window_s = per_ip, ip_window_s, per_user, user_window_s
        self._ip: dict[str, deque] = {}
        self._user: dict[tuple[str, str], deque] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _trim(q: deque, now: float, window: float) -> None:
        while q and now - q[0] > window:
            q.popleft()

    def check(self, ip: str, username: str) -> float:
        """0 if this attempt may proceed, else seconds to wait. Counts the attempt against the IP."""
        now = time.monotonic()
        with self._lock:
            qi = self._ip.setdefault(ip, deque())
            self._trim(qi, now, self.ip_window_s)
            qu = self._user.get((username.lower(), ip))
            if qu is not None:
                self._trim(qu, now, self.user_window_s)
                if len(qu) >= self.per_user:
                    return max(1.0, self.user_window_s - (now - qu[0]))
            if len(qi) >= self.per_ip:
                return max(1.0, self.ip_window_s - (now - qi[0]))
            qi.append(now)
            if len(self._ip) > 50_000:
                self._ip.clear()
            return 0.0

    def failed(self, username: str, ip: str = "") -> None:
        with self._lock:
            self._user.setdefault((username.lower(), ip), deque()).append(time.monotonic())
            if len(self._user) > 50_000:
                self._user.clear()

    def succeeded(self, username: str, ip: str | None = None) -> None:
        """A good login clears that address's failures (``ip=None``: every address's)."""
        u = username.lower()
        with self._lock:
            for key in [k for k in self._user if k[0] == u and (ip is None or k[1] == ip)]:
                self._user.pop(key, None)


class Accounts:
    """Users, sessions and tokens of every merchant; every query names the merchant it is for."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # --- merchants & users -----------------------------------------------------------------
    def ensure_merchant(self, merchant: str, name: str = "") -> None:
        if not MERCHANT_RE.match(merchant or ""):
            raise AuthError(f"商家ID无效：{merchant!r}")
        with write_tx(self.engine) as conn:  # insert-or-nothing: two first logins at once on PostgreSQL
            conn.execute(
                insert_for(conn)(t.merchants)
                .values(merchant=merchant, name=name or merchant, created_at=time.time())
                .on_conflict_do_nothing(index_elements=["merchant"])
            )

    def merchant_name(self, merchant: str) -> str:
        with read_tx(self.engine) as conn:
            return (
                conn.execute(select(t.merchants.c.name).where(t.merchants.c.merchant == merchant)).scalar() or merchant
            )

    def create_user(self, merchant: str, username: str, password: str, role: str, display_name: str = "") -> dict:
        if not USERNAME_RE.match(username or ""):
            raise AuthError("用户名需为 3-64 位字母、数字或 _.@-")
        if role not in ROLES:
            raise AuthError(f"角色无效：{role!r}")
        self.ensure_merchant(merchant)
        pw = hash_password(password)
        now = time.time()
        uid = uuid.uuid4().hex
        with write_tx(self.engine) as conn:
            # insert-or-nothing on the unique username (a check, then an insert, interleaves on PostgreSQL)
            made = conn.execute(
                insert_for(conn)(t.users)
                .values(
                    user_id=uid,
                    merchant=merchant,
                    username=username,
                    display_name=(display_name or username)[:64],
                    password_hash=pw,
                    role=role,
                    disabled=False,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["username"])
                .returning(t.users.c.user_id)
            ).first()
            if made is None:
                raise AuthError(f"用户名 {username} 已存在")
        return self.user(merchant, uid)

    def user(self, merchant: str, user_id: str) -> dict | None:
        with read_tx(self.engine) as conn:
            r = conn.execute(
                select(t.users).where(t.users.c.merchant == merchant, t.users.c.user_id == user_id)
            ).first()
        return _user_out(r) if r else None

    def users(self, merchant: str) -> list[dict]:
        with read_tx(self.engine) as conn:
            rows = conn.execute(
                select(t.users).where(t.users.c.merchant == merchant).order_by(t.users.c.created_at)
            ).all()
        return [_user_out(r) for r in rows]

    def update_user(
        self,
        merchant: str,
        user_id: str,
        *,
        role: str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> dict | None:
        vals: dict = {"updated_at": time.time()}
        if role is not None:
            if role not in ROLES:
                raise AuthError(f"角色无效：{role!r}")
            vals["role"] = role
        if disabled is not None:
            vals["disabled"] = bool(disabled)
        if password is not None:
            vals["password_hash"] = hash_password(password)
        with write_tx(self.engine) as conn:
            n = conn.execute(
                update(t.users).where(t.users.c.merchant == merchant, t.users.c.user_id == user_id).values(**vals)
            ).rowcount
            if n and (disabled or password is not None or role is not None):
                # a changed role, password or a disabled account ends its sessions
                conn.execute(
                    delete(t.sessions).where(t.sessions.c.merchant == merchant, t.sessions.c.user_id == user_id)
                )
        return self.user(merchant, user_id) if n else None

    def owners(self, merchant: str) -> int:
        return sum(1 for u in self.users(merchant) if u["role"] == "owner" and not u["disabled"])

    def authenticate(self, username: str, password: str) -> dict | None:
        with read_tx(self.engine) as conn:
            r = conn.execute(select(t.users).where(t.users.c.username == username)).first()
        ok = verify_password(r.password_hash if r else None, password)
        if not ok or r is None or r.disabled:
            return None
        return _user_out(r)

    # --- sessions --------------------------------------------------------------------------
    def create_session(self, user: dict, ip: str = "") -> tuple[str, str]:
        """(cookie value, csrf token): a brand-new session id every time."""
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = time.time()
        with write_tx(self.engine) as conn:
            conn.execute(delete(t.sessions).where(t.sessions.c.expires_at < now))
            conn.execute(
                t.sessions.insert().values(
                    sid_hash=sha256(sid),
                    user_id=user["user_id"],
                    merchant=user["merchant"],
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + SESSION_TTL_S,
                    last_seen=now,
                    ip=ip[:64],
                )
            )
        return sid, csrf

    def end_session(self, sid: str | None) -> None:
        if sid:
            with write_tx(self.engine) as conn:
                conn.execute(delete(t.sessions).where(t.sessions.c.sid_hash == sha256(sid)))

    def session_principal(self, sid: str) -> Principal | None:
        if not sid or len(sid) > 128:
            return None
        now = time.time()
        h = sha256(sid)
        with read_tx(self.engine) as conn:
            r = conn.execute(
                select(t.sessions, t.users.c.role, t.users.c.username, t.users.c.display_name, t.users.c.disabled)
                .join(
                    t.users, (t.users.c.user_id == t.sessions.c.user_id) & (t.users.c.merchant == t.sessions.c.merchant)
                )
                .where(t.sessions.c.sid_hash == h)
            ).first()
        if r is None or r.disabled or r.expires_at < now or now - r.last_seen > SESSION_IDLE_S:
            return None
        if now - r.last_seen > 60:
            with write_tx(self.engine) as conn:
                conn.execute(update(t.sessions).where(t.sessions.c.sid_hash == h).values(last_seen=now))
        return Principal(
            "session",
            r.merchant,
            r.role,
            f"user:{r.username}",
            user_id=r.user_id,
            username=r.username,
            display_name=r.display_name,
            csrf=r.csrf,
        )

    # --- API tokens ------------------------------------------------------------------------
    def create_token(self, merchant: str, name: str, role: str, created_by: str) -> tuple[dict, str]:
        if role not in TOKEN_ROLES:
            raise AuthError("令牌角色只能是 operator、viewer 或 agent")
        name = (name or "").strip()[:64]
        if not name:
            raise AuthError("请填写令牌名称")
        tid = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = time.time()
        with write_tx(self.engine) as conn:
            conn.execute(
                t.tokens.insert().values(
                    token_id=tid,
                    merchant=merchant,
                    name=name,
                    secret_hash=sha256(secret),
                    role=role,
                    created_by=created_by,
                    created_at=now,
                )
            )
        return self.token(merchant, tid), f"lrk_{tid}_{secret}"

    def token(self, merchant: str, token_id: str) -> dict | None:
        with read_tx(self.engine) as conn:
            r = conn.execute(
                select(t.tokens).where(t.tokens.c.merchant == merchant, t.tokens.c.token_id == token_id)
            ).first()
        return _token_out(r) if r else None

    def tokens(self, merchant: str) -> list[dict]:
        with read_tx(self.engine) as conn:
            rows = conn.execute(
                select(t.tokens).where(t.tokens.c.merchant == merchant).order_by(t.tokens.c.created_at)
            ).all()
        return [_token_out(r) for r in rows]

    def revoke_token(self, merchant: str, token_id: str) -> dict | None:
        with write_tx(self.engine) as conn:
            n = conn.execute(
                update(t.tokens)
                .where(
                    t.tokens.c.merchant == merchant, t.tokens.c.token_id == token_id, t.tokens.c.revoked_at.is_(None)
                )
                .values(revoked_at=time.time())
            ).rowcount
        return self.token(merchant, token_id) if n else None

    def token_principal(self, raw: str) -> Principal | None:
        m = re.fullmatch(r"lrk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,64})", raw or "")
        if not m:
            return None
        tid, secret = m.groups()
        with read_tx(self.engine) as conn:
            r = conn.execute(select(t.tokens).where(t.tokens.c.token_id == tid)).first()
        if r is None or r.revoked_at is not None or not hmac.compare_digest(r.secret_hash, sha256(secret)):
            return None
        now = time.time()
        if not r.last_used or now - r.last_used > 60:
            with write_tx(self.engine) as conn:
                conn.execute(update(t.tokens).where(t.tokens.c.token_id == tid).values(last_used=now))
        return Principal("token", r.merchant, r.role, f"token:{r.name}", token_id=tid)


def _user_out(r) -> dict:
    return {
        "user_id": r.user_id,
        "merchant": r.merchant,
        "username": r.username,
        "display_name": r.display_name,
        "role": r.role,
        "disabled": bool(r.disabled),
        "created_at": r.created_at,
    }


def _token_out(r) -> dict:
    return {
        "token_id": r.token_id,
        "merchant": r.merchant,
        "name": r.name,
        "role": r.role,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "last_used": r.last_used,
        "revoked": r.revoked_at is not None,
    }
