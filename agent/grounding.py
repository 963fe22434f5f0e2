"""Grounding in code: is a fact relevant to the question, and is every number in an answer backed
by the facts? The small embedded model invents answers, so these decisions are never the model's."""

from __future__ import annotations

import re
from collections.abc import Sequence

from knowledge.schema import Fact, Product
from knowledge.text import normalize

# Words that carry no topic: removing them leaves what the viewer is actually asking about.
_STOP = [
    "请问",
    "主播",
    "宝宝们",
    "姐妹们",
    "家人们",
    "这个",
    "这款",
    "那个",
    "那款",
    "这件",
    "那件",
    "它",
    "的话",
    "一下",
    "能用吗",
    "能穿吗",
    "能吃吗",
    "可以用吗",
    "可以穿吗",
    "可以吃吗",
    "可以吗",
    "适合吗",
    "适不适合",
    "适合",
    "能不能",
    "可不可以",
    "会不会",
    "是不是",
    "有没有",
    "多少钱",
    "多少",
    "怎么样",
    "如何",
    "吗",
    "呢",
    "呀",
    "啊",
    "吧",
    "嘛",
    "哦",
    "我",
    "你们",
    "你",
    "的",
    "了",
    "是",
    "用",
    "穿",
    "吃",
    "能",
    "会",
    "有",
    "什么",
    "怎么",
    "还",
    "也",
    "都",
    "和",
    "跟",
    "么",
    "哪个",
    "好",
    "要",
    "想",
    "买",
    "下",
    "个",
    "款",
    "是否",
    "现在",
    "今天",
    "今晚",
    "直播间",
]
_STOP_RE = re.compile("|".join(sorted(map(re.escape, _STOP), key=len, reverse=True)))

# Viewer words → words the facts use (Chinese and English questions over Chinese facts).
SYNONYMS: dict[str, list[str]] = {
    "孕妇": ["孕妇", "孕期", "怀孕", "准妈妈", "哺乳"],
    "pregnan": ["孕妇", "孕期", "怀孕"],
    "敏感": ["敏感"],
    "sensitive": ["敏感"],
    "小个子": ["小个子", "身高", "155", "150", "160", "个子"],
    "petite": ["小个子", "身高", "个子"],
    "short": ["小个子", "身高"],
    "油皮": ["油皮", "油性", "混油"],
    "oily": ["油皮", "油性"],
    "干皮": ["干皮", "干性"],
    "dry skin": ["干皮", "干性"],
    "痘": ["痘", "闭口"],
    "acne": ["痘"],
    "微胖": ["微胖", "梨形", "遮肉", "宽松"],
    "儿童": ["儿童", "小孩", "宝宝", "孩子"],
    "kid": ["儿童", "小孩", "孩子"],
    "child": ["儿童", "小孩", "孩子"],
    "老人": ["老人", "长辈", "中老年"],
    "过敏": ["过敏"],
    "allerg": ["过敏"],
    "size": ["尺码", "码", "尺寸", "容量", "净含量"],
    "尺码": ["尺码", "码"],
    "码数": ["尺码", "码"],
    "多大": ["尺码", "尺寸", "容量", "净含量", "规格"],
    "容量": ["容量", "ml", "毫升", "净含量"],
    "几毫升": ["容量", "ml"],
    "成分": ["成分", "配料"],
    "ingredient": ["成分", "配料"],
    "配料": ["配料", "成分"],
    "面料": ["面料", "材质", "成分"],
    "材质": ["材质", "面料"],
    "fabric": ["面料", "材质"],
    "material": ["材质", "面料", "成分"],
    "保质期": ["保质期"],
    "shelf": ["保质期"],
    "expir": ["保质期"],
    "产地": ["产地"],
    "made in": ["产地"],
    "颜色": ["颜色", "色号", "色"],
    "色号": ["色号", "颜色"],
    "colou": ["颜色", "色号"],
    "热量": ["热量", "卡"],
    "calorie": ["热量"],
    "甜": ["甜", "糖"],
    "sweet": ["甜", "糖"],
    "辣": ["辣"],
    "spicy": ["辣"],
    "咸": ["咸", "盐"],
    "salty": ["咸", "盐"],
    "起球": ["起球"],
    "pill": ["起球"],
    "掉色": ["掉色", "褪色"],
    "显白": ["显白", "肤色"],
    "显瘦": ["显瘦", "遮肉"],
    "持妆": ["持妆", "小时"],
    "last": ["持妆", "小时"],
    "味道": ["味道", "口味", "香味", "气味"],
    "口味": ["口味", "味道"],
    "香": ["香", "气味", "香精"],
    "scent": ["香", "气味"],
    "质地": ["质地"],
    "texture": ["质地"],
    "多重": ["净含量", "重量", "克"],
    "weight": ["净含量", "重量"],
    "洗": ["洗涤", "洗", "机洗", "手洗"],
    "wash": ["洗涤", "机洗", "手洗"],
    "送礼": ["送礼", "礼", "礼盒", "包装"],
    "gift": ["送礼", "礼盒", "礼"],
    "包装": ["包装", "礼袋"],
    "发货": ["发货"],
    "ship": ["发货", "快递", "包邮"],
    "deliver": ["发货", "快递", "到货"],
    "包邮": ["包邮", "运费"],
    "快递": ["快递"],
    "退": ["退", "无理由"],
    "return": ["退", "无理由"],
    "refund": ["退款", "退"],
    "换": ["换"],
    "exchange": ["换"],
    "发票": ["发票"],
    "invoice": ["发票"],
    "会员": ["会员", "铁粉"],
    "member": ["会员", "铁粉"],
    "积分": ["积分"],
    "point": ["积分"],
    "保修": ["保修", "质保"],
    "warranty": ["质保", "保修"],
    "男": ["男"],
    "men": ["男"],
    "国外": ["国外", "海外", "境外"],
    "abroad": ["国外", "海外"],
    "外国": ["国外", "海外"],
}


def _terms_for_query(text: str) -> list[list[str]]:
    """Topic terms of a question, each with the alternatives that count as covering it."""
    low = normalize(text)
    groups: list[list[str]] = []
    for key, alts in SYNONYMS.items():
        if key in low:
            groups.append(alts)
    return groups


def residual_terms(question: str, product: Product | None = None) -> list[str]:
    """Chinese bigrams left after removing product names and stop words: what the viewer asks about."""
    q = normalize(question)
    if product:
        for n in [product.name, product.series, *product.aliases, product.sku]:
            for part in re.split(r"\s+", normalize(n or "")):
                if len(part) >= 2:
                    q = q.replace(part, " ")
    q = _STOP_RE.sub(" ", q)
    out: list[str] = []
    for run in re.findall(r"[\u4e00-\u9fff]+", q):
        if len(run) == 1:
            continue
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


def coverage(question: str, fact_texts: list[str], product: Product | None = None) -> float:
    """How much of what the question asks about appears in the facts (0..1); 1.0 when nothing
    topical is left to check (e.g. "多少钱")."""
    blob = normalize(" ".join(fact_texts))
    groups = _terms_for_query(question)
    scores = []
    for alts in groups:
        scores.append(1.0 if any(normalize(a) in blob for a in alts) else 0.0)
    if not groups:
        res = residual_terms(question, product)
        if res:
            scores.append(sum(1 for b in res if b in blob) / len(res))
    return min(scores) if scores else 1.0


_NUM_RE = re.compile(r"\d+(?:\.\d+)?")


def numbers(text: str) -> set[str]:
    out = set()
    for n in _NUM_RE.findall(normalize(text)):
        out.add(n.rstrip("0").rstrip(".") if "." in n else n)
    return out


def ungrounded_numbers(answer: str, facts: list[Fact], question: str = "", extra: Sequence[str] = ()) -> set[str]:
    """Numbers in ``answer`` that appear in no fact, no tool result (``extra``) nor the question."""
    allowed = numbers(question)
    for text in extra:
        allowed |= numbers(text)
    for f in facts:
        allowed |= numbers(f.text)
    return {n for n in numbers(answer) if n not in allowed}
