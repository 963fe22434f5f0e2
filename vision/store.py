"""Per-room picture store with reference ids (``img_<random>``).

Layout under ``root``::

    <room_id>/<image_id>.jpg     the sanitised JPEG (never the original upload)
    <room_id>/<image_id>.json    metadata: created_at, expires_at, sha256, size, viewer_id, source format

Pictures flagged ``ephemeral`` (they may show a person: a selfie, a skin or outfit photo) are kept
only in this process's memory, never written to disk, and are dropped by ``purge_room`` when the
session ends, by their (shorter) TTL, or when the process exits. Persisted pictures expire after
``ttl_seconds`` (``purge_expired``). Ids are random, unguessable and validated on every lookup, so a
reference cannot address a file outside its room.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import NotFound
from core.ids import ROOM_RE
from vision.upload import SanitizedImage

_ID_RE = re.compile(r"^img_[A-Za-z0-9_-]{16,32}$")

DEFAULT_TTL = 24 * 3600
EPHEMERAL_TTL = 2 * 3600
MAX_PER_ROOM = 500


class ImageNotFound(NotFound):
    code = "image_not_found"


@dataclass(frozen=True)
class StoredImage:
    image_id: str
    room_id: str
    ephemeral: bool
    created_at: float
    expires_at: float
    sha256: str
    width: int
    height: int
    bytes: int
    mime: str = "image/jpeg"
    viewer_id: str | None = None
    source_format: str = ""


def check_room_id(room_id: str) -> str:
    if not isinstance(room_id, str) or not ROOM_RE.match(room_id):
        raise ValueError(f"invalid room id {room_id!r}: use letters, digits, '-' or '_' (max 64)")
    return room_id


def is_image_id(image_id: str) -> bool:
    return isinstance(image_id, str) and bool(_ID_RE.match(image_id))


def new_image_id() -> str:
    return "img_" + secrets.token_urlsafe(12)  # 16 url-safe chars, 96 random bits


class ImageStore:
    def __init__(
        self,
        root: Path,
        ttl_seconds: float = DEFAULT_TTL,
        ephemeral_ttl_seconds: float = EPHEMERAL_TTL,
        max_per_room: int = MAX_PER_ROOM,
        clock=time.time,
    ):
        self.root = Path(root)
        self.ttl = ttl_seconds
        self.ephemeral_ttl = ephemeral_ttl_seconds
        self.max_per_room = max_per_room
        self._clock = clock
        self._lock = threading.Lock()
        # room → image_id → (meta, jpeg bytes); only ephemeral pictures live here.
        self._mem: dict[str, dict[str, tuple[StoredImage, bytes]]] = {}

    # --- writing -------------------------------------------------------------------------
    def put(
        self, room_id: str, image: SanitizedImage, *, ephemeral: bool = False, viewer_id: str | None = None
    ) -> StoredImage:
        check_room_id(room_id)
        now = self._clock()
        meta = StoredImage(
            image_id=new_image_id(),
            room_id=room_id,
            ephemeral=ephemeral,
            created_at=now,
            expires_at=now + (self.ephemeral_ttl if ephemeral else self.ttl),
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            bytes=len(image.data),
            mime=image.mime,
            viewer_id=viewer_id,
            source_format=image.source_format,
        )
        with self._lock:
            if ephemeral:
                self._mem.setdefault(room_id, {})[meta.image_id] = (meta, image.data)
            else:
                d = self.root / room_id
                d.mkdir(parents=True, exist_ok=True)
                _atomic_write(d / f"{meta.image_id}.jpg", image.data)
                _atomic_write(d / f"{meta.image_id}.json", json.dumps(asdict(meta)).encode())
            self._enforce_quota(room_id)
        return meta

    def delete(self, room_id: str, image_id: str) -> bool:
        check_room_id(room_id)
        if not is_image_id(image_id):
            return False
        with self._lock:
            if self._mem.get(room_id, {}).pop(image_id, None) is not None:
                return True
            found = False
            for suffix in (".jpg", ".json"):
                try:
                    (self.root / room_id / f"{image_id}{suffix}").unlink()
                    found = True
                except FileNotFoundError:
                    pass
            return found

    def purge_room(self, room_id: str) -> int:
        """End of session: drop every picture of the room (memory and disk). Returns how many."""
        check_room_id(room_id)
        with self._lock:
            n = len(self._mem.pop(room_id, {}))
            d = self.root / room_id
            if d.is_dir():
                n += sum(1 for _ in d.glob("img_*.jpg"))
                shutil.rmtree(d, ignore_errors=True)
        return n

    def purge_expired(self) -> int:
        """Drop pictures past their TTL (call periodically, e.g. from the server's housekeeping)."""
        now = self._clock()
        n = 0
        with self._lock:
            for room, items in list(self._mem.items()):
                for iid, (meta, _) in list(items.items()):
                    if meta.expires_at <= now:
                        del items[iid]
                        n += 1
                if not items:
                    del self._mem[room]
            if self.root.is_dir():
                for room_dir in self.root.iterdir():
                    if not room_dir.is_dir():
                        continue
                    for mpath in room_dir.glob("img_*.json"):
                        meta = self._read_meta(mpath)
                        if meta is None or meta.expires_at <= now:
                            mpath.unlink(missing_ok=True)
                            mpath.with_suffix(".jpg").unlink(missing_ok=True)
                            n += 1
                    for orphan in room_dir.glob("img_*.jpg"):  # a crash between the two writes
                        if not orphan.with_suffix(".json").exists():
                            orphan.unlink(missing_ok=True)
                    try:
                        room_dir.rmdir()  # only if empty
                    except OSError:
                        pass
        return n

    # --- reading -------------------------------------------------------------------------
    def meta(self, room_id: str, image_id: str) -> StoredImage:
        check_room_id(room_id)
        if not is_image_id(image_id):
            raise ImageNotFound(image_id)
        hit = self._mem.get(room_id, {}).get(image_id)
        if hit is not None:
            meta = hit[0]
        else:
            meta = self._read_meta(self.root / room_id / f"{image_id}.json")
            if meta is None:
                raise ImageNotFound(image_id)
        if meta.expires_at <= self._clock():
            raise ImageNotFound(image_id)
        return meta

    def get(self, room_id: str, image_id: str) -> bytes:
        """The sanitised JPEG bytes; ``ImageNotFound`` if unknown, expired, purged or of another room."""
        self.meta(room_id, image_id)
        hit = self._mem.get(room_id, {}).get(image_id)
        if hit is not None:
            return hit[1]
        try:
            return (self.root / room_id / f"{image_id}.jpg").read_bytes()
        except FileNotFoundError:
            raise ImageNotFound(image_id) from None

    def list_room(self, room_id: str) -> list[StoredImage]:
        check_room_id(room_id)
        now = self._clock()
        out = [m for m, _ in self._mem.get(room_id, {}).values()]
        d = self.root / room_id
        if d.is_dir():
            out += [m for p in d.glob("img_*.json") if (m := self._read_meta(p)) is not None]
        return sorted((m for m in out if m.expires_at > now), key=lambda m: m.created_at)

    # --- internals -----------------------------------------------------------------------
    @staticmethod
    def _read_meta(path: Path) -> StoredImage | None:
        try:
            return StoredImage(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _enforce_quota(self, room_id: str) -> None:
        """Oldest pictures go first once a room holds more than ``max_per_room`` (lock held)."""
        mem = self._mem.get(room_id, {})
        d = self.root / room_id
        disk = (
            [(m.created_at, m.image_id, False) for p in d.glob("img_*.json") if (m := self._read_meta(p)) is not None]
            if d.is_dir()
            else []
        )
        items = sorted([(m.created_at, iid, True) for iid, (m, _) in mem.items()] + disk)
        for _, iid, in_mem in items[: max(0, len(items) - self.max_per_room)]:
            if in_mem:
                mem.pop(iid, None)
            else:
                (d / f"{iid}.jpg").unlink(missing_ok=True)
                (d / f"{iid}.json").unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
