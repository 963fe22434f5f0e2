"""Fast, deterministic reading of a viewer message: language, intent, follow-up, hostility.

Runs on every danmaku, so it is rules, not a model call (microseconds, and it cannot be talked
out of its job by the message it reads).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MAX_TEXT_CHARS = 500
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_REPEAT_RE = re.compile(r"(.{1,4}?)\1{5,}", re.S)

INTENT_PATTERNS: dict[str, list[str]] = {
    "coupon": [
        r"(领|发|要|给|送|抢|来)(我)?(一|几)?(张|个|点|些)?.{0,4}(券|红包|优惠码)",
        r"有(没有|什么)?.{0,4}(券|红包|优惠码)",
        r"(券|红包)(呢|吗)?[?？]?$",
        r"\bcoupons?\b",
        r"voucher",
        r"discount code",
    ],
    "compare": [
        r"区别",
        r"哪个好",
        r"哪个更",
        r"有什么不同",
        r"和.{1,12}(比|相比|对比)",
        r"对比",
        r"\bvs\.?\b",
        r"差(几|多少)",
        r"比.{0,8}(多|少|贵|便宜|好|大|小|长|短)",
        r"differen",
        r"compare",
        r"which (one )?is better",
        r"还是.{1,12}(好|适合)",
    ],
    "price": [
        r"多少钱",
        r"价格",
        r"几块",
        r"几元",
        r"什么价",
        r"价位",
        r"贵不贵",
        r"直播价",
        r"便宜",
        r"多钱",
        r"原价",
        r"日常价",
        r"(今天|今晚|现在)多少",
        r"(号|款|盒|瓶|个)多少[?？]?$",
        r"\bprice\b",
        r"how much",
        r"\bcost",
        r"\bcheap",
    ],
    "stock": [
        r"有货",
        r"没货",
        r"库存",
        r"还有吗",
        r"卖完",
        r"售罄",
        r"现货",
        r"补货",
        r"还剩",
        r"剩几",
        r"剩多少",
        r"还有多少",
        r"in stock",
        r"sold out",
        r"available",
    ],
    "policy": [
        r"发货",
        r"包邮",
        r"邮费",
        r"运费",
        r"快递",
        r"退货",
        r"退换",
        r"换货",
        r"退款",
        r"七天无理由",
        r"发票",
        r"能退",
        r"可以退",
        r"退吗",
        r"退不",
        r"开线",
        r"质量问题",
        r"瑕疵",
        r"破损",
        r"胀袋",
        r"漏液",
        r"坏了",
        r"券.{0,6}(过期|有效期|怎么用|使用|叠加|一起用)",
        r"怎么成为",
        r"等级",
        r"售后",
        r"质保",
        r"保修",
        r"会员",
        r"积分",
        r"几天到",
        r"shipping",
        r"deliver",
        r"return",
        r"refund",
        r"invoice",
        r"warranty",
        r"member",
    ],
    "recommend": [
        r"推荐",
        r"适合我",
        r"选哪",
        r"买哪",
        r"有什么好",
        r"种草",
        r"recommend",
        r"suggest",
        r"what should i",
        r"送.{0,4}(礼|人)",
    ],
    "suitability": [
        r"能用吗",
        r"能穿吗",
        r"能吃吗",
        r"适合",
        r"可以用",
        r"可以穿",
        r"可以吃",
        r"敏感肌",
        r"孕妇",
        r"孕期",
        r"小个子",
        r"微胖",
        r"宝宝",
        r"儿童",
        r"老人",
        r"过敏",
        r"干皮",
        r"油皮",
        r"痘痘肌",
        r"\bsuitable\b",
        r"\bok for\b",
        r"\bgood for\b",
        r"\bcan i\b",
        r"sensitive",
        r"pregnan",
        r"petite",
    ],
    "spec": [
        r"尺码",
        r"码数",
        r"多大",
        r"多长",
        r"容量",
        r"成分",
        r"面料",
        r"材质",
        r"保质期",
        r"产地",
        r"颜色",
        r"色号",
        r"几毫升",
        r"多重",
        r"净含量",
        r"配料",
        r"热量",
        r"持妆",
        r"质地",
        r"味道",
        r"口味",
        r"甜不甜",
        r"辣不辣",
        r"起球",
        r"掉色",
        r"透不透",
        r"显白",
        r"显瘦",
        r"\bsize\b",
        r"ingredient",
        r"material",
        r"fabric",
        r"colou?r",
        r"shelf life",
        r"how big",
        r"weight",
        r"made of",
    ],
    "greeting": [r"^(你好|您好|哈喽|hello|hi|hey|主播好|大家好|来了|晚上好|早上好)", r"谢谢", r"thank"],
    "profile": [r"我是什么(等级|会员)", r"我的(等级|积分|会员)", r"my (tier|level|points)"],
}
_COMPILED = {k: [re.compile(p, re.I) for p in v] for k, v in INTENT_PATTERNS.items()}

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
_COUPON_RULES = re.compile(r"券.{0,6}(过期|有效期|怎么用|使用|叠加|一起用|规则)")
ABUSE_TERMS = ["傻逼", "sb主播", "垃圾主播", "去死", "滚", "操你", "fuck", "shit", "骗子", "智障"]
FOLLOWUP_RE = re.compile(
    r"^(那|那么|这个|这款|它|那个|还有|再|大号|小号|其他|另外)|呢[?？]?$|^(what about|and the|how about)", re.I
)


@dataclass
class Triage:
    text: str
    lang: str
    intents: list[str] = field(default_factory=list)
    injection: bool = False
    abuse: bool = False
    followup: bool = False
    truncated: bool = False

    @property
    def primary(self) -> str:
        return self.intents[0] if self.intents else "other"


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
    order = ["coupon", "compare", "price", "stock", "policy", "recommend", "suitability", "spec", "profile", "greeting"]
    t.intents = [name for name in order if any(p.search(text) for p in _COMPILED[name])]
    if "coupon" in t.intents and _COUPON_RULES.search(text):  # "券多久过期" asks about rules, not for a coupon
        t.intents.remove("coupon")
    t.followup = bool(FOLLOWUP_RE.search(text)) and len(text) <= 20
    return t
