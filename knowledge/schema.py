"""Typed shapes of the merchant knowledge base: what imports produce and what retrieval returns."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Merchants write list fields as lists or as one string. Short items (who it suits, aliases) split on
# any list punctuation; selling points are sentences that may contain commas, so only on ; | newline.
_SHORT_ITEM_SEP = re.compile(r"[、，,;；|｜/\n]+")
_SENTENCE_ITEM_SEP = re.compile(r"[;；|｜\n]+")


def _as_list(v: Any, sep: re.Pattern[str]) -> Any:
    if v is None:
        return []
    if isinstance(v, str):
        return [x.strip() for x in sep.split(v) if x.strip()]
    if isinstance(v, (list, tuple)):
        return [str(x).strip() for x in v if x is not None and str(x).strip()]
    return v  # anything else: pydantic reports it


class FAQItem(BaseModel):
    q: str = Field(min_length=1)
    a: str = Field(min_length=1)


class Variant(BaseModel):
    """A colour/size/capacity option of a product, with its own price when it differs."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)
    price: float | None = Field(default=None, ge=0)
    stock: int | None = Field(default=None, ge=0)


class Merchant(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    name: str | None = None


class Product(BaseModel):
    """One sellable item. Unknown extra fields are kept (``extra="allow"``) and round-trip."""

    model_config = ConfigDict(extra="allow")

    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    category: str = ""
    series: str = ""
    aliases: list[str] = Field(default_factory=list)
    price: float = Field(ge=0)
    list_price: float | None = Field(default=None, ge=0)
    stock: int | None = Field(default=None, ge=0)
    specs: dict[str, str] = Field(default_factory=dict)
    selling_points: list[str] = Field(default_factory=list)
    faq: list[FAQItem] = Field(default_factory=list)
    suitable_for: list[str] = Field(default_factory=list)
    not_suitable_for: list[str] = Field(default_factory=list)

    def variant_list(self) -> list[Variant]:
        """``variants`` as merchants write them (kept as an extra field so it round-trips): a list of
        {name, price, stock} objects, a list of names, or one string of names. Unusable items are skipped."""
        raw = (self.model_extra or {}).get("variants")
        items = _as_list(raw, _SHORT_ITEM_SEP) if isinstance(raw, str) else raw
        out: list[Variant] = []
        for v in items if isinstance(items, list) else []:
            try:
                out.append(Variant(name=v) if isinstance(v, str) else Variant.model_validate(v))
            except ValueError:
                continue
        return out

    @field_validator("sku", "name", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v

    @field_validator("suitable_for", "not_suitable_for", "aliases", mode="before")
    @classmethod
    def _short_list(cls, v: Any) -> Any:
        return _as_list(v, _SHORT_ITEM_SEP)

    @field_validator("selling_points", mode="before")
    @classmethod
    def _sentence_list(cls, v: Any) -> Any:
        return _as_list(v, _SENTENCE_ITEM_SEP)

    @field_validator("specs", mode="before")
    @classmethod
    def _specs_as_text(cls, v: Any) -> Any:
        # Spreadsheets give numbers; facts are text.
        if isinstance(v, dict):
            return {str(k): str(val) for k, val in v.items() if val is not None and str(val) != ""}
        return v


class Document(BaseModel):
    """A store document (shipping, returns, warranty ...), identified by its file stem."""

    doc_id: str
    title: str
    text: str


class QAPair(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    sku: str | None = None


class QASet(BaseModel):
    source: str
    pairs: list[QAPair]


class Catalog(BaseModel):
    """Everything one KB version holds: the source of truth the indexes are built from."""

    merchant: Merchant = Field(default_factory=Merchant)
    products: list[Product] = Field(default_factory=list)
    documents: list[Document] = Field(default_factory=list)
    qa_sets: list[QASet] = Field(default_factory=list)

    def product(self, sku: str) -> Product | None:
        for p in self.products:
            if p.sku == sku:
                return p
        return None


FactKind = Literal[
    "summary", "price", "stock", "variant", "spec", "selling_point", "faq", "suitable", "not_suitable", "doc", "qa"
]


class Fact(BaseModel):
    """An atomic, citable statement. Product facts always carry sku and product name."""

    id: str
    kind: FactKind
    text: str
    sku: str | None = None
    name: str | None = None
    key: str | None = None  # spec name, FAQ question, document heading
    value: str | None = None  # spec value, FAQ answer


class SearchHit(BaseModel):
    fact_id: str
    sku: str | None
    name: str | None
    kind: str
    text: str
    score: float
    dense_rank: int | None = None
    bm25_rank: int | None = None
    product_boost: float = 0.0


class VersionInfo(BaseModel):
    merchant: str
    version: str
    created_at: str
    products: int
    facts: int
    documents: int
    embedded: int = 0  # facts whose vectors were computed (the rest came from the cache)
    note: str = ""
    active: bool = False
    draft: bool = False  # built by KnowledgeBase.build_draft and not published yet
