"""Redis key names for shared state: ``<prefix>:<kind>:<part>|<part>…`` with ``|`` and ``\\`` escaped in
the parts, so (merchant, room, viewer) triples cannot collide whatever characters their ids hold."""

from __future__ import annotations


def part(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|")


def key(prefix: str, kind: str, *parts: str) -> str:
    return f"{prefix}:{kind}:" + "|".join(map(part, parts))
