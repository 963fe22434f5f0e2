"""Versioned, per-merchant knowledge base on disk.

Layout under ``<data_dir>/kb/<merchant>/``::

    ACTIVE                  the active version id (replaced atomically with os.replace)
    embeddings.sqlite       content-addressed vector cache shared by that merchant's versions
    versions/v0007/         catalog.json, facts.jsonl, dense.faiss, bm25/, manifest.json

A new version is built in ``versions/.build-*`` and renamed into place before ACTIVE moves, so a
reader (in this process or another) sees the old version or the new one, never a half-built one.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from core.errors import LiveRoomError
from core.filelock import dir_lock
from core.ids import MERCHANT_RE
from knowledge.embedder import Embedder, EmbeddingCache, embed_with_cache
from knowledge.facts import catalog_facts
from knowledge.importers import parse_files
from knowledge.index import HybridIndex, RetrievalParams
from knowledge.lexicon import CatalogLexicon
from knowledge.lru import LruCache
from knowledge.schema import Catalog, Fact, Product, SearchHit, VersionInfo

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class KBError(LiveRoomError):
    code = "kb_error"
    http_status = 400


class UnknownMerchant(KBError):
    code = "unknown_merchant"
    http_status = 404


class UnknownVersion(KBError):
    code = "unknown_version"
    http_status = 404


@dataclass(frozen=True)
class LoadedVersion:
    """An immutable snapshot: everything a search needs, swapped in as one reference."""

    merchant: str
    version: str
    catalog: Catalog
    index: HybridIndex
    products: dict[str, Product]

    def product(self, sku: str) -> Product | None:
        return self.products.get(sku)

    def fact(self, fact_id: str) -> Fact | None:
        return self.index.fact(fact_id)

    @cached_property
    def lexicon(self) -> CatalogLexicon:
        """How viewers refer to this version's products, built on first use (a large catalog takes
        seconds: build it off the event loop) and gone with the version."""
        return CatalogLexicon(self.catalog.products)

    @property
    def lexicon_ready(self) -> bool:
        return "lexicon" in self.__dict__


def check_merchant_id(merchant: str) -> str:
    if not MERCHANT_RE.match(merchant or ""):
        raise KBError(f"invalid merchant id {merchant!r}: use letters, digits, '-' or '_'")
    return merchant


class KnowledgeBase:
    def __init__(
        self,
        root: Path,
        embedder: Embedder,
        params: RetrievalParams = RetrievalParams(),
        search_cache_size: int = 4096,
    ):
        self.root = Path(root)
        self.embedder = embedder
        self.params = params
        self._loaded: dict[str, LoadedVersion] = {}
        self._load_lock = threading.Lock()
        self.active_recheck_s = 0.25
        self._active: dict[str, tuple[float, str | None]] = {}  # merchant → (read at, version)
        self._caches: dict[str, EmbeddingCache] = {}
        self._drafts: dict[tuple[str, str], LoadedVersion] = {}
        self.search_cache: LruCache[tuple[object, ...], list[SearchHit]] = LruCache(search_cache_size)
        # Called with (merchant, catalog, build dir) before a new version is renamed into place: what
        # upper layers keep with each version (the regression set, regression/store.py) is written here.
        self.on_build: list[Callable[[str, Catalog, Path], None]] = []

    # --- paths ---------------------------------------------------------------------------
    def _mdir(self, merchant: str) -> Path:
        return self.root / check_merchant_id(merchant)

    def _vdir(self, merchant: str, version: str) -> Path:
        if not re.fullmatch(r"v\d{4,}", version):
            raise UnknownVersion(f"invalid version id {version!r}")
        return self._mdir(merchant) / "versions" / version

    def _write_lock(self, merchant: str) -> AbstractContextManager[None]:
        """One writer per merchant across processes (CLI import while the server runs)."""
        return dir_lock(self._mdir(merchant))

    def _cache(self, merchant: str) -> EmbeddingCache:
        if merchant not in self._caches:
            self._caches[merchant] = EmbeddingCache(self._mdir(merchant) / "embeddings.sqlite", self.embedder.name)
        return self._caches[merchant]

    def merchant_dir(self, merchant: str) -> Path:
        """``<root>/<merchant>``: where what belongs with the merchant's KB is kept."""
        return self._mdir(merchant)

    def version_dir(self, merchant: str, version: str) -> Path:
        return self._vdir(merchant, version)

    # --- reading -------------------------------------------------------------------------
    def merchants(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "ACTIVE").exists())

    def active_version(self, merchant: str) -> str | None:
        """The ACTIVE file, re-read at most every ``active_recheck_s``: what lets a CLI import, or a publish
        on another worker sharing this KB root, take effect here without a restart — within that time —
        without a file read per answer under load. A switch made by this process is seen at once."""
        now = time.monotonic()
        seen = self._active.get(merchant)
        if seen is not None and now - seen[0] < self.active_recheck_s:
            return seen[1]
        try:
            version = (self._mdir(merchant) / "ACTIVE").read_text().strip() or None
        except FileNotFoundError:
            version = None
        self._active[merchant] = (now, version)
        return version

    def snapshot(self, merchant: str) -> LoadedVersion:
        """The active version, reloaded if another process switched it since we last looked."""
        version = self.active_version(merchant)
        if version is None:
            raise UnknownMerchant(f"merchant {merchant!r} has no knowledge base; import one first")
        cur = self._loaded.get(merchant)
        if cur and cur.version == version:
            return cur
        with self._load_lock:
            cur = self._loaded.get(merchant)
            if cur and cur.version == version:
                return cur
            snap = self._load(merchant, version)
            self._loaded[merchant] = snap  # one reference swap: readers never see a mix
            return snap

    def _load(self, merchant: str, version: str) -> LoadedVersion:
        vdir = self._vdir(merchant, version)
        catalog = Catalog.model_validate_json((vdir / "catalog.json").read_text(encoding="utf-8"))
        index = HybridIndex.load(vdir, catalog.products)
        return LoadedVersion(merchant, version, catalog, index, {p.sku: p for p in catalog.products})

    def search(
        self,
        merchant: str,
        query: str,
        k: int = 5,
        params: RetrievalParams | None = None,
        skus: set[str | None] | None = None,
    ) -> tuple[str, list[SearchHit]]:
        """(version searched, hits). The version is read once, so all hits come from it. Results are
        kept per (merchant, version, exact question, k, params, skus): a live room asks the same few
        questions over and over, and a new version is a new key (nothing stale is ever served)."""
        snap = self.snapshot(merchant)
        params = params or self.params
        key = (merchant, snap.version, query, k, params, frozenset(skus) if skus is not None else None)
        hits = self.search_cache.get(key)
        if hits is None:
            qvec = self.embedder.encode([query])[0]
            hits = snap.index.search(query, qvec, k=k, params=params, skus=skus)
            self.search_cache.put(key, hits)
        return snap.version, [h.model_copy() for h in hits]  # callers may change theirs

    def load_version(self, merchant: str, version: str) -> LoadedVersion:
        """Any version (a draft, an old one) as a snapshot, without making it active. The active one is
        the live snapshot itself; others are kept (a few) so a run and its publish share one load."""
        if not (self._vdir(merchant, version) / "manifest.json").exists():
            raise UnknownVersion(f"merchant {merchant!r} has no version {version!r}")
        cur = self._loaded.get(merchant)
        if cur is not None and cur.version == version:
            return cur
        key = (merchant, version)
        with self._load_lock:
            snap = self._drafts.get(key)
            if snap is None:
                snap = self._load(merchant, version)
                self._drafts[key] = snap
                while len(self._drafts) > 4:
                    self._drafts.pop(next(iter(self._drafts)))
            return snap

    def pinned(self, snap: LoadedVersion) -> KnowledgeBase:
        """A read-only view on which ``snap``'s merchant always reads ``snap`` (an agent built on it
        answers from a draft exactly as it would once the draft is published)."""
        return PinnedKnowledgeBase(self, snap)

    def versions(self, merchant: str) -> list[VersionInfo]:
        vroot = self._mdir(merchant) / "versions"
        active = self.active_version(merchant)
        out = []
        for d in sorted(vroot.glob("v*")) if vroot.exists() else []:
            try:
                info = VersionInfo.model_validate_json((d / "manifest.json").read_text())
            except (FileNotFoundError, ValueError):
                continue
            info.active = info.version == active
            out.append(info)
        return out

    def catalog(self, merchant: str, version: str | None = None) -> Catalog:
        if version is None:
            return self.snapshot(merchant).catalog
        return Catalog.model_validate_json((self._vdir(merchant, version) / "catalog.json").read_text("utf-8"))

    # --- writing -------------------------------------------------------------------------
    def import_files(
        self,
        merchant: str,
        paths: Sequence[Path],
        replace: bool = False,
        note: str = "",
        progress: Progress | None = None,
        if_changed: bool = False,
    ) -> VersionInfo:
        """Parse, merge into the active catalog (upsert by sku / document / Q&A file), build, switch.

        Raises ``KBImportError`` (with file and row of every problem) before anything is written.
        With ``if_changed``, an import that changes nothing returns the active version as it is.
        """
        fragment = parse_files(paths)
        with self._write_lock(merchant):
            active = self.active_version(merchant)
            base = Catalog() if replace or active is None else self.catalog(merchant, active)
            merged = merge_catalogs(base, fragment)
            if if_changed and active is not None and merged == self.catalog(merchant, active):
                return next(v for v in self.versions(merchant) if v.version == active)
            return self._publish(merchant, merged, note or "import " + ", ".join(Path(p).name for p in paths), progress)

    def publish_catalog(
        self, merchant: str, catalog: Catalog, note: str, progress: Progress | None = None
    ) -> VersionInfo:
        """Publish a whole catalog as a new version (used by inline edits in the console)."""
        with self._write_lock(merchant):
            return self._publish(merchant, catalog, note, progress)

    def build_draft(self, merchant: str, catalog: Catalog, note: str, progress: Progress | None = None) -> VersionInfo:
        """Build ``catalog`` as a new version without switching to it (``draft`` in its manifest):
        viewers keep the active version until ``publish_draft``."""
        with self._write_lock(merchant):
            return self._publish(merchant, catalog, note, progress, activate=False)

    def publish_draft(self, merchant: str, version: str) -> VersionInfo:
        """Switch to a draft built by ``build_draft`` (it is an ordinary version from then on)."""
        vdir = self._vdir(merchant, version)
        if not (vdir / "manifest.json").exists():
            raise UnknownVersion(f"merchant {merchant!r} has no version {version!r}")
        with self._write_lock(merchant):
            info = VersionInfo.model_validate_json((vdir / "manifest.json").read_text())
            if info.draft:
                info.draft = False
                tmp = vdir / f".manifest.{os.getpid()}.{threading.get_ident()}"
                tmp.write_text(info.model_dump_json(indent=1, exclude={"active"}), encoding="utf-8")
                os.replace(tmp, vdir / "manifest.json")
            self._switch(merchant, version)
        self._drafts.pop((merchant, version), None)
        return next(v for v in self.versions(merchant) if v.version == version)

    def restore(self, merchant: str, version: str) -> VersionInfo:
        vdir = self._vdir(merchant, version)
        if not (vdir / "manifest.json").exists():
            raise UnknownVersion(f"merchant {merchant!r} has no version {version!r}")
        with self._write_lock(merchant):
            self._switch(merchant, version)
        return next(v for v in self.versions(merchant) if v.version == version)

    def _publish(
        self, merchant: str, catalog: Catalog, note: str, progress: Progress | None, activate: bool = True
    ) -> VersionInfo:
        mdir = self._mdir(merchant)
        vroot = mdir / "versions"
        vroot.mkdir(parents=True, exist_ok=True)
        existing = [int(p.name[1:]) for p in vroot.glob("v*") if p.name[1:].isdigit()]
        version = f"v{(max(existing) + 1 if existing else 1):04d}"
        facts = catalog_facts(catalog)
        texts = [f.text for f in facts]
        total = len(set(texts))
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress("embedding", done, total)

        vectors, embedded = embed_with_cache(self.embedder, self._cache(merchant), texts, on_progress=tick)
        if progress:
            progress("indexing", 0, 1)
        index = HybridIndex(facts, vectors, catalog.products)
        build = Path(vroot / f".build-{version}-{os.getpid()}")
        if build.exists():
            shutil.rmtree(build)
        build.mkdir()
        index.save(build)
        (build / "catalog.json").write_text(catalog.model_dump_json(), encoding="utf-8")
        info = VersionInfo(
            merchant=merchant,
            version=version,
            created_at=datetime.now(UTC).isoformat(),
            products=len(catalog.products),
            facts=len(facts),
            documents=len(catalog.documents),
            embedded=embedded,
            note=note[:500],
            draft=not activate,
        )
        (build / "manifest.json").write_text(info.model_dump_json(indent=1), encoding="utf-8")
        for hook in self.on_build:
            hook(merchant, catalog, build)
        _fsync_dir(build)
        os.rename(build, vroot / version)
        if activate:
            self._switch(merchant, version)
        if progress:
            progress("indexing", 1, 1)
        info.active = activate
        return info

    def _switch(self, merchant: str, version: str) -> None:
        mdir = self._mdir(merchant)
        tmp = mdir / f".ACTIVE.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(version)
        os.replace(tmp, mdir / "ACTIVE")
        _fsync_dir(mdir)
        self._active[merchant] = (time.monotonic(), version)
        # Load eagerly so this process's next search doesn't pay for it.
        self.snapshot(merchant)


class PinnedKnowledgeBase(KnowledgeBase):
    """``KnowledgeBase.pinned``: one merchant reads one fixed snapshot; nothing can be written."""

    def __init__(self, base: KnowledgeBase, snap: LoadedVersion):
        super().__init__(base.root, base.embedder, base.params)
        self._caches = base._caches
        self.search_cache = base.search_cache  # keys carry the version: the pinned one is its own key
        self.base, self.pin = base, snap

    def active_version(self, merchant: str) -> str | None:
        return self.pin.version if merchant == self.pin.merchant else self.base.active_version(merchant)

    def snapshot(self, merchant: str) -> LoadedVersion:
        return self.pin if merchant == self.pin.merchant else self.base.snapshot(merchant)

    def _publish(
        self, merchant: str, catalog: Catalog, note: str, progress: Progress | None, activate: bool = True
    ) -> VersionInfo:
        raise KBError("a pinned knowledge base is read-only")

    def _switch(self, merchant: str, version: str) -> None:
        raise KBError("a pinned knowledge base is read-only")


def merge_catalogs(base: Catalog, new: Catalog) -> Catalog:
    """Upsert products by sku, documents by id and Q&A sets by source file; order is kept stable."""
    products = {p.sku: p for p in base.products}
    products.update({p.sku: p for p in new.products})
    docs = {d.doc_id: d for d in base.documents}
    docs.update({d.doc_id: d for d in new.documents})
    qas = {q.source: q for q in base.qa_sets}
    qas.update({q.source: q for q in new.qa_sets})
    merchant = new.merchant if (new.merchant.name or new.merchant.id) else base.merchant
    return Catalog(
        merchant=merchant, products=list(products.values()), documents=list(docs.values()), qa_sets=list(qas.values())
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
