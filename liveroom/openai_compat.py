"""The OpenAI wire details of ``/v1``: the model names served, the error shape, ``usage``.

The agent is not a token-priced LLM, so ``usage`` counts tokens the way a CJK-aware tokenizer roughly
would — one per Han/kana/hangul character, one per run of letters/digits, one per other symbol — which
keeps clients that budget or log by ``usage`` working with numbers of the right order.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import JSONResponse

MODELS: tuple[str, ...] = ("liveroom",)

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]|[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text or ""))


def usage(prompt: str, completion: str) -> dict[str, int]:
    p, c = count_tokens(prompt), count_tokens(completion)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def model_list() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "liveroom"} for m in MODELS],
    }


def unknown_model(name: str) -> JSONResponse:
    """OpenAI's answer to a model it does not serve: 404 ``model_not_found``."""
    return JSONResponse(
        {
            "error": {
                "message": f"The model {name!r} does not exist; available: {', '.join(MODELS)}",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
        },
        status_code=404,
    )
