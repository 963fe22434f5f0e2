from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge.embedder import UseEmbedder
from knowledge.store import KnowledgeBase

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "knowledge" / "demo"


class CountingEmbedder:
    """The real encoder, counting the texts it is asked to embed."""

    def __init__(self, inner: UseEmbedder):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.texts: list[str] = []

    def encode(self, texts):
        self.texts.extend(texts)
        return self.inner.encode(texts)


@pytest.fixture(scope="session")
def use_embedder() -> UseEmbedder:
    return UseEmbedder(threads=1)


@pytest.fixture()
def embedder(use_embedder) -> CountingEmbedder:
    return CountingEmbedder(use_embedder)


@pytest.fixture()
def kb(tmp_path, embedder) -> KnowledgeBase:
    return KnowledgeBase(tmp_path / "kb", embedder)


def mini_products(price: float = 129.0, extra: dict | None = None) -> dict:
    serum = {
        "sku": "SK-001",
        "name": "暖光 玻尿酸保湿精华液 30ml",
        "category": "护肤",
        "series": "水光系列",
        "aliases": ["小蓝瓶"],
        "price": price,
        "list_price": 199,
        "stock": 300,
        "specs": {"容量": "30ml", "主要成分": "玻尿酸、泛醇"},
        "selling_points": ["补水保湿，质地清爽"],
        "faq": [{"q": "敏感肌能用吗?", "a": "无酒精无香精，敏感肌建议先在耳后试用"}],
        "suitable_for": ["干皮", "混干皮"],
        "not_suitable_for": ["对玻尿酸过敏者"],
    }
    if extra:
        serum.update(extra)
    return {
        "merchant": {"id": "t", "name": "测试店"},
        "products": [
            serum,
            {
                "sku": "SK-002",
                "name": "暖光 玻尿酸保湿面霜 50g",
                "category": "护肤",
                "series": "水光系列",
                "price": 159,
                "list_price": 229,
                "stock": 12,
                "specs": {"容量": "50g", "质地": "乳霜"},
                "faq": [{"q": "油皮能用吗", "a": "偏滋润，油皮建议夜间少量使用"}],
            },
            {
                "sku": "AP-001",
                "name": "法式碎花连衣裙 短款",
                "category": "女装",
                "price": 199,
                "list_price": 299,
                "stock": 50,
                "specs": {"尺码建议": "155cm/45kg 建议S码", "面料": "雪纺"},
                "faq": [{"q": "小个子能穿吗", "a": "短款裙长85cm，155cm左右穿着在膝盖上方"}],
            },
        ],
    }


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory, use_embedder):
    """The demo catalog imported once per test session (read-only for tests)."""
    root = tmp_path_factory.mktemp("demo-kb")
    kb = KnowledgeBase(root / "kb", use_embedder)
    files = sorted(p for p in DEMO.rglob("*") if p.suffix in {".json", ".md", ".csv"} and p.is_file())
    kb.import_files("demo", files)
    return root


@pytest.fixture()
def demo_container(demo_root, use_embedder, tmp_path):
    """A container on the demo KB, fast path only (no LLM)."""
    from core.settings import Settings
    from liveroom.container import Container

    c = Container(Settings(data_dir=demo_root, llm_autostart=False))
    c.__dict__["embedder"] = use_embedder  # share the loaded encoder across tests
    c.rooms.ensure("demo", "r1", "demo room", "test")  # public channels answer only in registered rooms
    return c
