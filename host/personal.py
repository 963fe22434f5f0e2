"""Viewers' personal details never go on air: a danmaku read aloud loses its body measurements, phone
numbers, addresses and names ("能退吗，我49斤" → "能退吗")."""

from __future__ import annotations

import re

# clause-level: a clause carrying any of these is dropped, not half-read
_PERSONAL = re.compile(
    r"1[3-9]\d{9}"  # a mobile number
    r"|\d{3,4}-?\d{7,8}"  # a landline
    r"|\d+(?:\.\d+)?\s*(?:斤|公斤|kg|KG|cm|CM|厘米|米\d)"  # weight, height
    r"|(?:身高|体重|胸围|腰围|臀围|三围)"
    r"|(?:省|市|区|县|镇|路|街|号楼|小区|单元|室)\S{0,3}\d|\d+\s*号(?!码)"  # an address
    r"|我(?:叫|是|姓)[\u4e00-\u9fff]{2,3}(?=[，,。！!？?\s]|$)"  # a name
    r"|(?:电话|手机|微信|地址|收货人)"
)
_CLAUSE = re.compile(r"[^，,。！!？?；;\s]+[，,。！!？?；;\s]*")


def has_personal(text: str) -> bool:
    return bool(_PERSONAL.search(text))


def redact(text: str) -> str:
    """The text without its clauses that carry a personal detail ("" if nothing else is left)."""
    kept = [c for c in _CLAUSE.findall(text) if not _PERSONAL.search(c)]
    return "".join(kept).strip("，,；; ")
