"""The one WebSocket wire decoder: every socket (room text, virtual host, voice) decodes its JSON text
frames here, so the same fault gives the same error code everywhere (docs/protocol.md, "Error codes").

Only the stdlib and pydantic (core/ is the ground package).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

MAX_TEXT_FRAME_BYTES = 16 * 1024  # a control / danmaku frame is tiny; bigger ones get `frame_too_large`

# The one list of wire error codes for frame faults (shared by all sockets).
FRAME_TOO_LARGE = "frame_too_large"  # a text frame over MAX_TEXT_FRAME_BYTES (or an audio frame over 1 s)
BINARY_NOT_SUPPORTED = "binary_not_supported"  # a binary frame on a text-only socket
BAD_JSON = "bad_json"  # not JSON / not UTF-8
BAD_FRAME = "bad_frame"  # JSON, but not an object
UNKNOWN_TYPE = "unknown_type"  # `type` missing or not one this socket takes
INVALID = "invalid"  # a known `type` whose fields fail validation (the message names the field)
NOT_PCM = "not_pcm"  # a binary audio frame that is not raw PCM s16le (voice only)
CODES = (FRAME_TOO_LARGE, BINARY_NOT_SUPPORTED, BAD_JSON, BAD_FRAME, UNKNOWN_TYPE, INVALID, NOT_PCM)


class WireError(Exception):
    def __init__(self, code: str, message: str, req_id: str | None = None):
        super().__init__(message)
        self.code, self.message, self.req_id = code, message, req_id


def error_frame(code: str, message: str, **fields: Any) -> dict[str, Any]:
    """The error frame every socket sends: ``{"type": "error", "code", "message", ...}``."""
    return {"type": "error", "code": code, "message": message, **fields}


def validation_message(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:3])


def decode_text(
    raw: str | bytes | None, models: Mapping[str, type[BaseModel] | None], *, max_bytes: int = MAX_TEXT_FRAME_BYTES
) -> tuple[str, Any]:
    """Decode one text frame into ``(type, payload)``; raise WireError with the shared code.

    ``models`` maps each accepted ``type`` to a pydantic model (validated against the frame; the
    ``type`` key is dropped unless the model declares it) or to None (the raw dict is returned).
    """
    if raw is None:
        raise WireError(BINARY_NOT_SUPPORTED, "this channel takes JSON text frames")
    data_bytes = raw if isinstance(raw, (bytes, bytearray)) else raw.encode("utf-8", "surrogatepass")
    if len(data_bytes) > max_bytes:
        raise WireError(FRAME_TOO_LARGE, f"text frames are at most {max_bytes} bytes")
    try:
        text = bytes(data_bytes).decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        data = json.loads(text)
    except UnicodeDecodeError:
        raise WireError(BAD_JSON, "a text frame must be UTF-8") from None
    except json.JSONDecodeError as e:
        raise WireError(BAD_JSON, f"invalid JSON: {e.msg} at {e.pos}") from None
    except RecursionError:  # "[[[[…" thousands deep: not a danmaku
        raise WireError(BAD_JSON, "invalid JSON: nested too deep") from None
    if not isinstance(data, dict):
        raise WireError(BAD_FRAME, "a frame is a JSON object with a 'type'")
    req_id = data.get("id") if isinstance(data.get("id"), str) else None
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in models:
        raise WireError(UNKNOWN_TYPE, f"unknown frame type {kind!r}", req_id)
    model = models[kind]
    if model is None:
        return kind, data
    payload = data if "type" in model.model_fields else {k: v for k, v in data.items() if k != "type"}
    try:
        return kind, model.model_validate(payload)
    except ValidationError as e:
        raise WireError(INVALID, validation_message(e), req_id) from None
