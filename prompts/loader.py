"""Prompt templates live as files in this package; variables use ``${name}`` (string.Template).

A template's variables are validated when it is loaded, so a broken template fails loudly at
start-up, not in front of a viewer. Merchant overrides and versioning build on this (console issue).
"""
from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent
REQUIRED_VARS = {
    "system": {"shop", "max_chars"},
    "answer": {"facts", "profile", "history", "question"},
}


class PromptError(ValueError):
    pass


def variables(template: str) -> set[str]:
    return {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(template)
            if m.group("named") or m.group("braced")}


def validate(name: str, text: str) -> None:
    want = REQUIRED_VARS.get(name, set())
    have = variables(text)
    if want - have:
        raise PromptError(f"prompt {name!r} lacks variables: {sorted(want - have)}")
    if have - want:
        raise PromptError(f"prompt {name!r} has unknown variables: {sorted(have - want)}")


@lru_cache(maxsize=32)
def load(name: str) -> string.Template:
    text = (PROMPTS_DIR / f"{name}.md").read_text(encoding="utf-8")
    validate(name, text)
    return string.Template(text)


def render(name: str, **values: object) -> str:
    return load(name).substitute({k: str(v) for k, v in values.items()})
