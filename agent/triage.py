"""Fast, deterministic reading of a viewer message: sanitised text, language, follow-up, hostility.

Runs on every danmaku, so it is rules, not a model call (microseconds, and it cannot be talked
out of its job by the message it reads). What the viewer asks (the intent) is not read here: it is
learned from data (``agent.intent_model``), so no category's phrasings live in code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_TEXT_CHARS = 500
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_REPEAT_RE = re.compile(r"(.{1,4}?)\1{5,}", re.S)

# Danmaku that try to act on the agent rather than ask it something. They are still only viewer
# text (never instructions); detection decides the reply and feeds the adversarial eval.
INJECTION_PATTERNS = [
    r"忽略(之前|上面|以上|前面|所有)?的?(指令|指示|提示|规则|设定)",
    r"无视.{0,6}(规则|指令|设定)",
    r"系统(提示|通知|消息|指令)\s*[:：]",
    r"\[?system\]?\s*[:：]",
    r"ignore (all |any )?(previous|prior|above)",
    r"you are now",
    r"你现在(是|扮演)",
    r"开发者模式",
    r"developer mode",
    r"\bDAN\b",
    r"越狱",
    r"jailbreak",
    r"(输出|告诉我|显示|打印|重复).{0,8}(系统)?(提示词|prompt|指令|设定)",
    r"system prompt",
    r"(管理员|admin|主播|商家)(说了?|通知|授权|命令)\s*[:：]",
    r"<\|im_start\|>",
    r"</?(system|assistant)>",
    r"把.{0,6}(价格|价钱)(改|设)成",
    r"(改|设置?)成.{0,4}(0|零|1|一)元",
    r"(所有|其他|别的)(观众|用户|人)的.{0,6}(信息|资料|手机|地址|画像|订单)",
    r"(手机号|电话|住址|地址|身份证).{0,6}(是多少|告诉我|发我)",
]
_INJECTION = [re.compile(p, re.I) for p in INJECTION_PATTERNS]
ABUSE_TERMS = ["傻逼", "sb主播", "垃圾主播", "去死", "滚", "操你", "fuck", "shit", "骗子", "智障"]
FOLLOWUP_RE = re.compile(
    r"^(那|那么|这个|这款|它|那个|还有|再|大号|小号|其他|另外)|呢[?？]?$|^(what about|and the|how about)", re.I
)


@dataclass
class Triage:
    text: str
    lang: str
    injection: bool = False
    abuse: bool = False
    followup: bool = False
    truncated: bool = False


def sanitize(text: str) -> tuple[str, bool]:
    """NFKC, strip control/bidi characters, squeeze floods, cap the length."""
    t = unicodedata.normalize("NFKC", text or "")
    t = _CONTROL_RE.sub("", t).replace("\r", " ")
    t = _REPEAT_RE.sub(lambda m: m.group(1) * 3, t)
    t = re.sub(r"\s+", " ", t).strip()
    truncated = len(t) > MAX_TEXT_CHARS
    return t[:MAX_TEXT_CHARS], truncated


def detect_lang(text: str) -> str:
    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    latin = sum(1 for c in text if c.isascii() and c.isalpha())
    return "en" if latin > 2 * cjk and latin >= 3 else "zh"


def triage(raw: str) -> Triage:
    text, truncated = sanitize(raw)
    t = Triage(text=text, lang=detect_lang(text), truncated=truncated)
    t.injection = any(p.search(text) for p in _INJECTION)
    low = text.lower()
    t.abuse = any(term in low for term in ABUSE_TERMS)
    t.followup = bool(FOLLOWUP_RE.search(text)) and len(text) <= 20
    return t
