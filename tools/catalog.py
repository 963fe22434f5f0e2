"""search_products and get_product: the agent's read access to the merchant's knowledge base."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from knowledge.store import KnowledgeBase
from tools.registry import Tool, ToolContext, ToolError


class SearchArgs(BaseModel):
    """Search the store's products, FAQs and policies."""

    query: str = Field(min_length=1, max_length=200, description="viewer question or keywords")
    k: int = Field(default=5, ge=1, le=10)
    sku: str | None = Field(default=None, max_length=64, description="only facts of this product")
    scope: Literal["all", "store"] = Field(default="all", description="store = policies and store Q&A only")


class GetProductArgs(BaseModel):
    """Get one product's facts by sku."""

    sku: str = Field(min_length=1, max_length=64)


def catalog_tools(kb: KnowledgeBase) -> list[Tool]:
    def search_products(ctx: ToolContext, args: SearchArgs) -> dict[str, Any]:
        skus: set[str | None] | None = {None} if args.scope == "store" else None  # store facts have no sku
        if args.sku:
            if kb.snapshot(ctx.merchant).product(args.sku) is None:
                raise ToolError(f"unknown sku {args.sku!r}")
            skus = {args.sku}
        version, hits = kb.search(ctx.merchant, args.query, k=args.k, skus=skus)
        return {
            "version": version,
            "hits": [h.model_dump(include={"fact_id", "sku", "name", "kind", "text", "score"}) for h in hits],
        }

    def get_product(ctx: ToolContext, args: GetProductArgs) -> dict[str, Any]:
        snap = kb.snapshot(ctx.merchant)
        p = snap.product(args.sku.strip())
        if p is None:  # a model-produced sku is checked, never trusted
            raise ToolError(f"unknown sku {args.sku!r}")
        return {"version": snap.version, "product": p.model_dump(exclude_none=True)}

    return [
        Tool(
            "search_products",
            "Search the store's products, FAQs and policies (hybrid retrieval).",
            SearchArgs,
            search_products,
        ),
        Tool("get_product", "Get one product's price, stock and specs by sku.", GetProductArgs, get_product),
    ]
