"""One exception tree. Every error we raise on purpose is a `LiveRoomError` with a stable machine
`code` and the HTTP status a route should answer with; the app has one handler that renders it."""

from __future__ import annotations

from typing import Any, ClassVar


class LiveRoomError(Exception):
    """Root of every deliberate LiveRoom error. Subclasses set `code` and `http_status`."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500

    def __init__(
        self, message: str = "", *, code: str | None = None, http_status: int | None = None, detail: Any = None
    ) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        if code is not None:
            self.code = code  # type: ignore[misc]  # per-instance refinement of the class default
        if http_status is not None:
            self.http_status = http_status  # type: ignore[misc]
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body


class BadRequest(LiveRoomError, ValueError):
    """The caller sent something we cannot accept (malformed, oversized, invalid)."""

    code = "bad_request"
    http_status = 400


class NotFound(LiveRoomError, KeyError):
    code = "not_found"
    http_status = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class Conflict(LiveRoomError):
    code = "conflict"
    http_status = 409


class Forbidden(LiveRoomError):
    code = "forbidden"
    http_status = 403


class Unavailable(LiveRoomError, RuntimeError):
    """A dependency (model, OCR, LLM endpoint) is not available right now."""

    code = "unavailable"
    http_status = 503
