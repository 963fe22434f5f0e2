"""Turn a catalog into atomic, citable facts: one spec, FAQ or selling point each, plus a summary.

Every product fact's text names the product and sku, so a fact read alone (by the model, by a
merchant in the retrieval test) is unambiguous. Ids are stable across versions for unchanged content.
"""

from __future__ import annotations

import hashlib

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from knowledge.schema import Catalog, Document, Fact, Product, QASet

CHUNK_CHARS = 220
CHUNK_OVERLAP = 40

_splitter = RecursiveCharacterTextSplitter(
    chunk_size=CHUNK_CHARS,
    chunk_overlap=CHUNK_OVERLAP,
    separators=["\n\n", "\n", "。", "！", "？", "；", "，", " ", ""],
    keep_separator="end",
)
_md_splitter = MarkdownHeaderTextSplitter(
    headers_to_split_on=[("#", "h1"), ("##", "h2"), ("###", "h3")], strip_headers=True
)


def fmt_price(v: float) -> str:
    return f"{v:g}"


def product_facts(p: Product) -> list[Fact]:
    head = f"{p.name}（{p.sku}）"
    base = {"sku": p.sku, "name": p.name}
    facts: list[Fact] = []
    summary = [head]
    if p.category:
        summary.append(f"类目：{p.category}")
    if p.series:
        summary.append(f"系列：{p.series}")
    if p.aliases:
        summary.append("又称：" + "、".join(p.aliases))
    if p.selling_points:
        summary.append("卖点：" + "；".join(p.selling_points[:2]))
    facts.append(Fact(id=f"{p.sku}:summary", kind="summary", text="，".join(summary), **base))

    price = f"{head}直播价{fmt_price(p.price)}元"
    if p.list_price and p.list_price > p.price:
        price += f"，日常价{fmt_price(p.list_price)}元"
    facts.append(Fact(id=f"{p.sku}:price", kind="price", text=price, key="价格", value=fmt_price(p.price), **base))
    if p.stock is not None:
        facts.append(
            Fact(
                id=f"{p.sku}:stock", kind="stock", text=f"{head}库存{p.stock}件", key="库存", value=str(p.stock), **base
            )
        )
    for i, var in enumerate(p.variant_list()):
        bits = [f"{head}可选{var.name}"]
        if var.price is not None:
            bits.append(f"{var.name}直播价{fmt_price(var.price)}元")
        if var.stock is not None:
            bits.append(f"{var.name}库存{var.stock}件")
        value = fmt_price(var.price) if var.price is not None else None
        facts.append(
            Fact(id=f"{p.sku}:variant:{i}", kind="variant", text="，".join(bits), key=var.name, value=value, **base)
        )
    for k, v in p.specs.items():
        facts.append(Fact(id=f"{p.sku}:spec:{k}", kind="spec", text=f"{head}{k}：{v}", key=k, value=v, **base))
    for i, sp in enumerate(p.selling_points):
        facts.append(Fact(id=f"{p.sku}:sp:{i}", kind="selling_point", text=f"{head}卖点：{sp}", value=sp, **base))
    for i, qa in enumerate(p.faq):
        facts.append(
            Fact(id=f"{p.sku}:faq:{i}", kind="faq", text=f"{head}问：{qa.q} 答：{qa.a}", key=qa.q, value=qa.a, **base)
        )
    if p.suitable_for:
        v = "、".join(p.suitable_for)
        facts.append(
            Fact(id=f"{p.sku}:suitable", kind="suitable", text=f"{head}适合：{v}", key="适合", value=v, **base)
        )
    if p.not_suitable_for:
        v = "、".join(p.not_suitable_for)
        facts.append(
            Fact(
                id=f"{p.sku}:not_suitable",
                kind="not_suitable",
                text=f"{head}不适合：{v}",
                key="不适合",
                value=v,
                **base,
            )
        )
    return facts


def document_facts(doc: Document) -> list[Fact]:
    facts: list[Fact] = []
    for section in _md_splitter.split_text(doc.text):
        heading = " / ".join(v for k, v in sorted(section.metadata.items()) if v) or doc.title
        for chunk in _splitter.split_text(section.page_content):
            chunk = chunk.strip()
            if not chunk:
                continue
            # Content-derived id: an unchanged chunk keeps its id (and its cached vector) across versions.
            digest = hashlib.sha1(f"{heading}\n{chunk}".encode()).hexdigest()[:10]
            facts.append(
                Fact(
                    id=f"doc:{doc.doc_id}:{digest}",
                    kind="doc",
                    text=f"【{doc.title}·{heading}】{chunk}",
                    key=heading,
                    value=chunk,
                )
            )
    return facts


def qa_facts(qa: QASet, names: dict[str, str]) -> list[Fact]:
    facts = []
    for i, pair in enumerate(qa.pairs):
        name = names.get(pair.sku) if pair.sku else None
        prefix = f"{name}（{pair.sku}）" if name else ""
        facts.append(
            Fact(
                id=f"qa:{qa.source}:{i}",
                kind="qa",
                text=f"{prefix}问：{pair.question} 答：{pair.answer}",
                sku=pair.sku if name else None,
                name=name,
                key=pair.question,
                value=pair.answer,
            )
        )
    return facts


def catalog_facts(catalog: Catalog) -> list[Fact]:
    names = {p.sku: p.name for p in catalog.products}
    facts: list[Fact] = []
    for p in catalog.products:
        facts.extend(product_facts(p))
    for d in catalog.documents:
        facts.extend(document_facts(d))
    for q in catalog.qa_sets:
        facts.extend(qa_facts(q, names))
    return facts
