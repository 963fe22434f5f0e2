"""Channels and their limits, enforced in code (the model is told them, but never trusted with them).

Lengths are counted in characters (a Chinese character, a digit and a punctuation mark each count 1),
which is how Chinese SMS gateways and push consoles count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SMS_OPT_OUT = "拒收请回复R"  # required unsubscribe notice (工信部: commercial SMS must say how to opt out)
SMS_LIMIT = 70  # one SMS segment for Unicode text, signature and opt-out included


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    label: str  # how the prompt names it
    title_max: int = 0  # push only
    body_max: int = 0  # the text the model writes (SMS: without signature and opt-out)
    body_min: int = 8
    max_sentences: int = 0  # host: one or two spoken sentences
    quiet_hours: bool = False  # delivered to a phone: respects quiet hours


def sms_signature(shop: str) -> str:
    return f"【{shop[:8]}】"


def spec(channel: str, shop: str = "") -> ChannelSpec:
    if channel == "push":
        return ChannelSpec("push", "推送通知", title_max=20, body_max=50, body_min=8, quiet_hours=True)
    if channel == "sms":
        room = SMS_LIMIT - len(sms_signature(shop or "店铺")) - len(SMS_OPT_OUT)
        return ChannelSpec("sms", "短信", body_max=room, body_min=10, quiet_hours=True)
    if channel == "popup":
        return ChannelSpec("popup", "直播间弹窗", body_max=30, body_min=6)
    if channel == "host":
        return ChannelSpec("host", "主播口播", body_max=60, body_min=8, max_sentences=2)
    raise ValueError(f"unknown channel {channel!r}: push, sms, popup or host")


def assemble(channel: str, shop: str, title: str | None, body: str) -> str:
    """The text as delivered."""
    if channel == "push":
        return f"{title}\n{body}"
    if channel == "sms":
        return f"{sms_signature(shop)}{body}{SMS_OPT_OUT}"
    return body


_SENT_END = re.compile(r"[。！？!?…]+")


def spoken_sentences(text: str) -> int:
    parts = [p for p in _SENT_END.split(text) if p.strip()]
    return len(parts)


def length_issues(channel: str, shop: str, title: str | None, body: str) -> list[str]:
    """Every limit the piece breaks (empty = within limits)."""
    s = spec(channel, shop)
    out = []
    if channel == "push":
        if not title or not title.strip():
            out.append("push title is empty")
        elif len(title) > s.title_max:
            out.append(f"push title {len(title)} > {s.title_max} chars")
    if len(body.strip()) < 2:
        out.append("text is empty")
    elif len(body) > s.body_max:
        out.append(f"{channel} text {len(body)} > {s.body_max} chars")
    if channel == "sms":
        full = assemble("sms", shop, None, body)
        if len(full) > SMS_LIMIT:
            out.append(f"sms {len(full)} > {SMS_LIMIT} chars incl. signature and opt-out")
    if s.max_sentences and spoken_sentences(body) > s.max_sentences:
        out.append(f"host line has {spoken_sentences(body)} sentences (max {s.max_sentences})")
    if "\n" in body or (title and "\n" in title):
        out.append("line breaks inside the text")
    return out


def lengths(channel: str, shop: str, title: str | None, body: str) -> tuple[dict[str, int], dict[str, int]]:
    s = spec(channel, shop)
    if channel == "push":
        return {"title": len(title or ""), "body": len(body)}, {"title": s.title_max, "body": s.body_max}
    if channel == "sms":
        return {"text": len(assemble("sms", shop, None, body))}, {"text": SMS_LIMIT}
    return {"text": len(body)}, {"text": s.body_max}
