"""Server-rendered pages (Jinja2, autoescaped). Pages carry no inline script: data reaches the page's
script through ``data-*`` attributes and JSON fetched from the API, rendered with ``textContent``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from console.auth import ROLE_ZH

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

NAV = [
    ("rooms", "直播间"),
    ("campaigns", "优惠券活动"),
    ("style", "回答风格"),
    ("kb", "知识库"),
    ("search", "检索测试"),
    ("versions", "版本"),
    ("regression", "发布检查"),
    ("prompts", "提示词"),
    ("reviews", "回答复核"),
    ("team", "团队与审计"),
]
ACTIVE = {"product": "kb", "prompt": "prompts", "dashboard": "rooms"}


def _asset_version() -> str:
    try:
        return str(int(max(p.stat().st_mtime for p in STATIC_DIR.glob("*.*"))))
    except ValueError:
        return "0"


def render_page(name: str, request, merchant: str, who, c, **ctx: Any) -> str:
    tpl = env.get_template(f"{name}.html")
    return tpl.render(
        page=name,
        nav=NAV,
        active=ACTIVE.get(name, name),
        merchant=merchant,
        merchant_name=c.accounts.merchant_name(merchant),
        who=who,
        role_zh=ROLE_ZH.get(who.role, who.role),
        can_write=who.can("operator"),
        is_owner=who.can("owner"),
        csrf=who.csrf or "",
        v=_asset_version(),
        **ctx,
    )


def login_page(csrf: str, next_url: str, error: str | None, username: str = "") -> str:
    return env.get_template("login.html").render(
        csrf=csrf, next=next_url, error=error, username=username, v=_asset_version()
    )


def error_page(status: int, detail: str) -> str:
    return env.get_template("error.html").render(status=status, detail=detail, v=_asset_version())
