"""Prompt templates live as files in this package; variables use ``${name}`` (string.Template).

A template's variables are validated when it is loaded, so a broken template fails loudly at
start-up, not in front of a viewer.

Merchant overrides (console): ``prompts.store.PromptStore`` keeps each merchant's drafts and published
versions. ``render`` uses the published override of the merchant in scope (see ``scope``) and the
shipped file otherwise; ``render_for(merchant, name, ...)`` names the merchant explicitly. Drafts only
ever apply inside ``scope(..., drafts={...})`` (the console's side-by-side preview).
"""

from __future__ import annotations

import logging
import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import BadRequest

if TYPE_CHECKING:  # pragma: no cover
    from prompts.store import PromptStore

log = logging.getLogger("liveroom.prompts")

PROMPTS_DIR = Path(__file__).resolve().parent
REQUIRED_VARS = {
    "system": {"shop", "max_chars"},
    "answer": {"facts", "profile", "history", "question"},
}


class PromptError(BadRequest):
    code = "bad_prompt"


def variables(template: str) -> set[str]:
    return {
        m.group("named") or m.group("braced")
        for m in string.Template.pattern.finditer(template)
        if m.group("named") or m.group("braced")
    }


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


@dataclass(frozen=True)
class _Scope:
    merchant: str | None
    store: PromptStore | None = None
    drafts: Mapping[str, str] = field(default_factory=dict)


_scope: ContextVar[_Scope | None] = ContextVar("liveroom_prompt_scope", default=None)


@contextmanager
def scope(
    merchant: str | None, store: PromptStore | None = None, drafts: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Within this block (and tasks started in it), ``render`` uses ``merchant``'s published prompts
    from ``store`` (default: the configured data directory), and ``drafts`` over those."""
    token = _scope.set(_Scope(merchant, store, dict(drafts or {})))
    try:
        yield
    finally:
        _scope.reset(token)


@lru_cache(maxsize=256)
def _compiled(text: str) -> string.Template:
    return string.Template(text)


def _override(name: str, merchant: str | None, store: PromptStore | None) -> str | None:
    cur = _scope.get()
    if cur is not None and (merchant is None or merchant == cur.merchant):
        if name in cur.drafts:
            return cur.drafts[name]
        merchant, store = cur.merchant, store or cur.store
    if not merchant:
        return None
    try:
        if store is None:  # no store wired in (a bare library call): the packaged defaults
            return None
        return store.published_text(merchant, name)
    except Exception:  # an unreadable override never takes the agent down: the default is used
        log.exception("prompt override %s/%s unreadable; using the default", merchant, name)
        return None


def render(name: str, **values: object) -> str:
    text = _override(name, None, None)
    if text is not None:
        try:
            return _compiled(text).substitute({k: str(v) for k, v in values.items()})
        except (KeyError, ValueError) as e:
            log.warning("prompt override %s failed to render (%s); using the default", name, e)
    return load(name).substitute({k: str(v) for k, v in values.items()})


def render_for(merchant: str | None, name: str, store: PromptStore | None = None, **values: object) -> str:
    """``render`` for a named merchant (its published override, else the shipped template)."""
    text = _override(name, merchant, store)
    if text is not None:
        try:
            return _compiled(text).substitute({k: str(v) for k, v in values.items()})
        except (KeyError, ValueError) as e:
            log.warning("prompt override %s/%s failed to render (%s); using the default", merchant, name, e)
    return load(name).substitute({k: str(v) for k, v in values.items()})
