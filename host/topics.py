"""What a danmaku question is about: a normalized key and a set of topics.

Sentence embeddings alone confuse "敏感肌能用吗" with "油皮能用吗" (same frame, one word differs:
cosine 0.8), so clustering also compares topics from this lexicon: two questions with topics that
don't overlap are never merged. Topics also name a cluster for the host ("敏感肌适用性").
Store-level topics (shipping, returns, coupons) don't depend on the product on screen.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    label: str  # for "多位观众关注{label}"
    patterns: tuple[str, ...]
    store: bool = False  # about the shop, not the product on screen


TOPICS: list[Topic] = [
    Topic("sensitive", "敏感肌适用性", (r"敏感", r"敏皮", r"泛红", r"刺激", r"刺痛", r"过敏", r"红血丝", r"屏障")),
    Topic("pregnancy", "孕期/哺乳期能否使用", (r"孕", r"准妈妈", r"哺乳", r"喂奶", r"备孕")),
    Topic("oily", "油皮适用性", (r"油皮", r"油性", r"油田", r"混油", r"出油", r"闷痘", r"油痘")),
    Topic(
        "dry",
        "干皮是否够滋润",
        (r"干皮", r"干性", r"起皮", r"(皮肤|脸).{0,2}干", r"很干", r"干燥", r"够不够滋润", r"滋润吗", r"滋不滋润"),
    ),
    Topic("acne", "痘痘肌适用性", (r"痘痘", r"长痘", r"闭口", r"粉刺", r"痘肌")),
    Topic("kids", "儿童能否使用", (r"儿童", r"小孩", r"孩子", r"几岁", r"小朋友")),
    Topic("elderly", "老人/长辈适用性", (r"老人", r"长辈", r"爸妈", r"父母", r"中老年", r"奶奶", r"外婆")),
    Topic("men", "男生能否使用", (r"男生", r"男士", r"男朋友", r"男友", r"老公", r"男的")),
    Topic(
        "height",
        "小个子/身高怎么选",
        (
            r"小个子",
            r"个子",
            r"矮",
            r"身高",
            r"一米[四五六七八]",
            r"1[4-8]\d\s*(cm|厘米)?(?!\s*(ml|g|斤))",
            r"拖地",
            r"裙长",
            r"多长",
            r"到膝",
        ),
    ),
    Topic(
        "size",
        "尺码建议",
        (
            r"尺码",
            r"码数",
            r"什么码",
            r"多大码",
            r"哪个码",
            r"[SMLX]{1,3}码",
            r"偏大",
            r"偏小",
            r"\d+\s*斤",
            r"微胖",
            r"偏胖",
            r"腰围",
            r"胸围",
            r"尺寸",
        ),
    ),
    Topic(
        "shipping",
        "发货时效与快递",
        (
            r"发货",
            r"发出",
            r"几天到",
            r"多久到",
            r"快递",
            r"物流",
            r"(明天|后天|几天|多久|什么时候)能?到",
            r"到货",
            r"包邮",
            r"运费",
            r"偏远",
            r"顺丰",
            r"发什么",
        ),
        store=True,
    ),
    Topic(
        "price",
        "价格",
        (
            r"多少钱",
            r"价格",
            r"什么价",
            r"到手价?",
            r"几块",
            r"多钱",
            r"贵不贵",
            r"价位",
            r"原价",
            r"直播价",
            r"多少一",
        ),
    ),
    Topic(
        "coupon", "优惠券与福利", (r"券", r"红包", r"满减", r"优惠", r"福利", r"折扣", r"打折", r"便宜点"), store=True
    ),
    Topic("returns", "退换货政策", (r"退", r"无理由", r"换货", r"换码", r"售后", r"不合适"), store=True),
    Topic("shelf_life", "保质期", (r"保质期", r"放多久", r"过期", r"开封", r"有效期", r"生产日期", r"新鲜")),
    Topic(
        "stock",
        "库存/补货",
        (
            r"有货",
            r"库存",
            r"卖完",
            r"补货",
            r"还能拍",
            r"还有吗",
            r"抢不到",
            r"没抢到",
            r"售罄",
            r"断货",
            r"上架",
            r"链接",
        ),
    ),
    Topic("shade", "色号/显白", (r"色号", r"黄皮", r"黑皮", r"显白", r"肤色", r"颜色", r"试色", r"显黑", r"白皮")),
    Topic("sweet", "甜度/含糖", (r"甜", r"糖", r"齁")),
    Topic("spicy", "辣度", (r"辣",)),
    Topic("pilling", "起球/掉毛", (r"起球", r"毛球", r"掉毛", r"起毛")),
    Topic(
        "fabric",
        "面料/厚薄",
        (
            r"面料",
            r"材质",
            r"纯棉",
            r"透气",
            r"厚不厚",
            r"厚吗",
            r"薄吗",
            r"透不透",
            r"透吗",
            r"扎不扎",
            r"扎人",
            r"闷不闷",
            r"含棉",
        ),
    ),
    Topic("ingredients", "成分/配方", (r"成分", r"配方", r"酒精", r"香精", r"添加", r"配料", r"防腐剂")),
    Topic(
        "usage",
        "用法/搭配",
        (r"怎么用", r"用法", r"顺序", r"一起用", r"搭配", r"叠加用", r"早上.{0,3}晚上", r"几滴", r"用量", r"能用多久"),
    ),
    Topic("wear", "持妆/防水", (r"持妆", r"脱妆", r"掉妆", r"防水", r"晕染", r"沾杯", r"卡粉", r"浮粉")),
    Topic("gift", "送礼/包装", (r"送礼", r"送人", r"礼盒", r"包装", r"礼袋", r"送女", r"送妈", r"送长辈", r"贺卡")),
    Topic("authentic", "正品保障", (r"正品", r"假货", r"假的", r"专柜", r"防伪", r"旗舰")),
    Topic("taste", "味道/口感", (r"味道", r"口感", r"好吃", r"咸不咸", r"脆不脆", r"硬不硬", r"口味")),
    Topic("scent", "气味/香味", (r"味道", r"香味", r"气味", r"闻起来", r"香不香", r"什么味", r"有味")),
    Topic("effect", "多久见效", (r"见效", r"效果", r"多久能看到", r"有用吗", r"管用")),
    Topic("calories", "热量", (r"热量", r"卡路里", r"长胖", r"减脂", r"会胖")),
    Topic("care", "洗护/缩水掉色", (r"机洗", r"手洗", r"缩水", r"掉色", r"褪色", r"变形", r"洗了")),
    Topic(
        "capacity",
        "容量/规格",
        (r"容量", r"几毫升", r"多少ml", r"多大瓶", r"规格", r"多少克", r"几片", r"几枚", r"多重", r"净含量"),
    ),
    Topic(
        "compare",
        "和其他款的区别",
        (r"区别", r"哪个好", r"哪个更", r"有什么不同", r"对比", r"比.{0,6}(好|差)", r"选哪"),
    ),
]
_BY_NAME = {t.name: t for t in TOPICS}
_COMPILED = [(t.name, re.compile("|".join(t.patterns), re.I)) for t in TOPICS]
_INTENT_TOPIC = {"price": "price", "coupon": "coupon", "stock": "stock", "compare": "compare"}

# Address terms, fillers and particles: dropped from the dedupe / embedding key.
_NOISE = re.compile(
    r"请问一下|请问|问一下|问下|主播|小姐姐|宝宝们|宝子们|宝子|家人们|姐妹们|集美们|集美|亲们|亲亲|老师|麻烦|想问|我想问|"
    r"那个|这个|这款|那款|这件|一下|呀|啊|呢|哈+|哦|嘛|吧|啦|哇|嗯|呐|滴|捏"
)
_PUNCT = re.compile(r"[\s\W_]+", re.U)
_REPEAT = re.compile(r"(.)\1{2,}")


def normalize_key(text: str) -> str:
    """NFKC, lower-case, no punctuation/emoji/fillers: "主播～敏感肌能用吗？？😊" → "敏感肌能用吗"."""
    t = unicodedata.normalize("NFKC", text or "").lower()
    t = _NOISE.sub("", t)
    t = _PUNCT.sub("", t)
    t = _REPEAT.sub(r"\1\1", t)
    return t[:80]


def topics_of(text: str, intent: str | None = None) -> frozenset[str]:
    found = {name for name, rx in _COMPILED if rx.search(text)}
    if intent in _INTENT_TOPIC:
        found.add(_INTENT_TOPIC[intent])
    if "sensitive" in found and "pregnancy" in found:
        pass  # "孕妇敏感肌" asks both
    return frozenset(found)


def on_topic(text: str, names: frozenset[str] | set[str]) -> bool:
    """Does ``text`` (an answer) talk about any of the topics? True when there are no topics."""
    if not names:
        return True
    return any(rx.search(text) for name, rx in _COMPILED if name in names)


def topic(name: str | None) -> Topic | None:
    return _BY_NAME.get(name) if name else None


def is_store_topic(names: frozenset[str] | set[str]) -> bool:
    return bool(names) and all(_BY_NAME[n].store for n in names if n in _BY_NAME)


def label_for(names: frozenset[str] | set[str] | list[str]) -> str | None:
    labels = [
        _BY_NAME[n].label for n in sorted(names, key=lambda n: [t.name for t in TOPICS].index(n)) if n in _BY_NAME
    ]
    return "、".join(labels[:2]) if labels else None
