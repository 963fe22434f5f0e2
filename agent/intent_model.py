"""A learned intent classifier for danmaku questions, replacing hand-written regular expressions.

Features are the query's sentence embedding (the packaged USE-multilingual-v3, 512-d, unit norm)
concatenated with a TF-IDF bag of character 1–3-grams over the NFKC-lowercased text (unit norm),
each scaled by a weight so that neither swamps the other. Two multinomial logistic regressions sit
on the same features: the intent head (``INTENTS``) and a direction head (more / less / none, for
"哪个更轻" → less, "which lasts longer" → more).

The labelled set ships with the package (``agent/data/intent_labelled.jsonl``, 12 product
categories). ``python -m evals.parser`` measures it leave-one-category-out.

``load_or_train`` caches the fitted model as an ``.npz`` of plain arrays (the n-gram vocabulary,
IDF weights and both heads' coefficients — no pickle) keyed by sha256 of the data file, the
embedder's name and ``CODE_VERSION``; a cache miss costs one embedding pass over the set.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, cast

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from knowledge.embedder import Embedder
from knowledge.lru import LruCache

INTENTS: tuple[str, ...] = (
    "price",
    "stock",
    "detail",
    "suitability",
    "compare",
    "recommend",
    "policy",
    "coupon",
    "greeting",
    "chitchat",
    "profile",
    "noise",
)
DIRECTIONS: tuple[str, ...] = ("more", "less", "none")

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "intent_labelled.jsonl"
DEFAULT_CACHE = Path.home() / ".cache" / "liveroom" / "intent_model"

# Bump when features, hyper-parameters or the cache layout change: it is part of the cache key.
CODE_VERSION = "1"
# Tuned leave-one-category-out on the labelled set only (`python -m evals.parser --tune`).
C_INTENT = 10.0
C_DIRECTION = 30.0
EMB_WEIGHT = 1.0
CHAR_WEIGHT = 1.0
# Direction is mostly lexical (更轻 / 更重, lighter / heavier): its head leans on the n-grams.
DIR_EMB_WEIGHT = 0.5
NGRAMS = (1, 3)
# The direction head answers only when its top class is more/less with at least this probability.
DIRECTION_MIN_PROBA = 0.5

Direction = Literal["more", "less"]


@dataclass(frozen=True)
class LabelledRow:
    text: str
    intent: str
    category: str = ""
    attribute: str | None = None
    direction: Direction | None = None
    lang: str = "zh"


@dataclass(frozen=True)
class IntentPrediction:
    intent: str
    confidence: float  # probability of the top intent
    proba: dict[str, float]
    direction: Direction | None  # only from the direction head; None when unsure


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def load_labelled(path: Path = DEFAULT_DATA) -> list[LabelledRow]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if d["intent"] not in INTENTS:
            raise ValueError(f"{path}:{n}: unknown intent {d['intent']!r}")
        if d.get("direction") not in (None, "more", "less"):
            raise ValueError(f"{path}:{n}: bad direction {d['direction']!r}")
        rows.append(
            LabelledRow(
                text=d["text"],
                intent=d["intent"],
                category=d.get("category", ""),
                attribute=d.get("attribute"),
                direction=d.get("direction"),
                lang=d.get("lang", "zh"),
            )
        )
    return rows


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=NGRAMS,
        lowercase=False,  # the text is normalised first
        sublinear_tf=True,
        vocabulary=vocabulary,
        dtype=np.float32,
    )


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def _fit_head(x: sp.csr_matrix, y: list[str], c: float) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(coef [k, d], intercept [k], classes): one row per class, so softmax(x @ coef.T + b) is predict_proba."""
    labels = sorted(set(y))
    if len(labels) == 1:  # e.g. a set with no direction labels: the head always says that one class
        return np.zeros((1, x.shape[1]), np.float32), np.zeros(1, np.float32), (labels[0],)
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
    clf.fit(x, y)
    classes = tuple(str(k) for k in clf.classes_)
    coef = np.asarray(clf.coef_, dtype=np.float32)
    intercept = np.asarray(clf.intercept_, dtype=np.float32)
    if len(classes) == 2:  # sklearn keeps one row, P(classes[1]) = sigmoid(w·x + b) = softmax([0, w·x + b])[1]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    return coef, intercept, classes


class IntentModel:
    """Intent + direction classifier over [USE embedding | char n-gram TF-IDF]."""

    def __init__(
        self,
        embedder: Embedder,
        vectorizer: TfidfVectorizer,
        intent_head: tuple[np.ndarray, np.ndarray, tuple[str, ...]],
        direction_head: tuple[np.ndarray, np.ndarray, tuple[str, ...]],
        emb_weight: float = EMB_WEIGHT,
        char_weight: float = CHAR_WEIGHT,
        dir_emb_weight: float = DIR_EMB_WEIGHT,
    ):
        self.embedder = embedder
        self._vec = vectorizer
        self._icoef, self._iint, self.classes = intent_head
        self._dcoef, self._dint, self._dclasses = direction_head
        self._emb_w, self._char_w, self._dir_emb_w = emb_weight, char_weight, dir_emb_weight
        self.loaded_from_cache = False
        self.memo: LruCache[tuple[str, bytes], IntentPrediction] = LruCache(4096)

    # ----------------------------------------------------------------- training

    @classmethod
    def train(
        cls,
        rows: Sequence[LabelledRow],
        embedder: Embedder,
        *,
        vecs: np.ndarray | None = None,
        c_intent: float = C_INTENT,
        c_direction: float = C_DIRECTION,
        emb_weight: float = EMB_WEIGHT,
        char_weight: float = CHAR_WEIGHT,
        dir_emb_weight: float = DIR_EMB_WEIGHT,
    ) -> IntentModel:
        """Fit both heads. ``vecs``: the rows' embeddings if the caller has them (evals reuse one pass)."""
        if not rows:
            raise ValueError("no training rows")
        texts = [normalize(r.text) for r in rows]
        emb = embedder.encode([r.text for r in rows]) if vecs is None else vecs
        vectorizer = _vectorizer()
        chars = vectorizer.fit_transform(texts)
        x = sp.hstack([sp.csr_matrix(emb * emb_weight), chars * char_weight], format="csr")
        xd = sp.hstack([sp.csr_matrix(emb * dir_emb_weight), chars * char_weight], format="csr")
        intent_head = _fit_head(x, [r.intent for r in rows], c_intent)
        direction_head = _fit_head(xd, [r.direction or "none" for r in rows], c_direction)
        return cls(embedder, vectorizer, intent_head, direction_head, emb_weight, char_weight, dir_emb_weight)

    @classmethod
    def load_or_train(cls, embedder: Embedder, cache_dir: Path | None = None, data: Path | None = None) -> IntentModel:
        """The model trained on ``data`` (default: the packaged set), from ``cache_dir`` when fitted before."""
        data = data or DEFAULT_DATA
        cache_dir = cache_dir or DEFAULT_CACHE
        raw = data.read_bytes()
        key = hashlib.sha256(
            raw + b"\x00" + embedder.name.encode() + b"\x00" + CODE_VERSION.encode() + _hyper_tag()
        ).hexdigest()[:24]
        path = cache_dir / f"intent-{key}.npz"
        if path.exists():
            try:
                model = cls._load(path, embedder)
                model.loaded_from_cache = True
                return model
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass  # a torn or foreign file: retrain and overwrite
        model = cls.train(load_labelled(data), embedder)
        try:
            model._save(path)
        except OSError:
            pass  # read-only cache: the model still works, the next start trains again
        return model

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                self._write(f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write(self, f: BinaryIO) -> None:
        vocab: dict[str, int] = self._vec.vocabulary_
        grams = [""] * len(vocab)
        for g, i in vocab.items():
            grams[i] = g
        np.savez(
            f,
            grams=np.asarray(grams, dtype=np.str_),
            idf=np.asarray(self._vec.idf_, dtype=np.float64),
            icoef=self._icoef,
            iint=self._iint,
            iclasses=np.asarray(self.classes, dtype=np.str_),
            dcoef=self._dcoef,
            dint=self._dint,
            dclasses=np.asarray(self._dclasses, dtype=np.str_),
            weights=np.asarray([self._emb_w, self._char_w, self._dir_emb_w], dtype=np.float64),
        )

    @classmethod
    def _load(cls, path: Path, embedder: Embedder) -> IntentModel:
        with np.load(path, allow_pickle=False) as z:
            grams = [str(g) for g in z["grams"]]
            vectorizer = _vectorizer({g: i for i, g in enumerate(grams)})
            vectorizer.idf_ = z["idf"]
            ihead = (z["icoef"], z["iint"], tuple(str(c) for c in z["iclasses"]))
            dhead = (z["dcoef"], z["dint"], tuple(str(c) for c in z["dclasses"]))
            emb_w, char_w, dir_emb_w = (float(w) for w in z["weights"])
        if ihead[0].shape[1] != embedder.dim + len(grams):
            raise ValueError("cached model does not match the embedder")
        return cls(embedder, vectorizer, ihead, dhead, emb_w, char_w, dir_emb_w)

    # ---------------------------------------------------------------- inference

    def _predict(self, texts: Sequence[str], emb: np.ndarray) -> list[IntentPrediction]:
        chars = self._vec.transform([normalize(t) for t in texts]) * self._char_w
        e = np.asarray(emb, dtype=np.float32).reshape(len(texts), -1)
        # [emb·w | chars] @ coef.T, split so no sparse matrix is assembled per query.
        d = e.shape[1]
        ip = _softmax(self._emb_w * (e @ self._icoef[:, :d].T) + np.asarray(chars @ self._icoef[:, d:].T) + self._iint)
        dp = _softmax(
            self._dir_emb_w * (e @ self._dcoef[:, :d].T) + np.asarray(chars @ self._dcoef[:, d:].T) + self._dint
        )
        out = []
        for prow, drow in zip(ip, dp):
            top = int(np.argmax(prow))
            dtop = int(np.argmax(drow))
            dlabel = self._dclasses[dtop]
            direction: Direction | None = None
            if dlabel in ("more", "less") and drow[dtop] >= DIRECTION_MIN_PROBA:
                direction = cast(Direction, dlabel)
            out.append(
                IntentPrediction(
                    intent=self.classes[top],
                    confidence=float(prow[top]),
                    proba={c: float(p) for c, p in zip(self.classes, prow)},
                    direction=direction,
                )
            )
        return out

    def predict(self, text: str, vec: np.ndarray | None = None) -> IntentPrediction:
        """``vec``: the query's embedding if the caller already has it (saves the ~2 ms encode)."""
        emb = self.embedder.encode([text]) if vec is None else np.asarray(vec, dtype=np.float32).reshape(1, -1)
        key = (text, emb.tobytes())  # a live room asks the same few questions: their predictions are kept
        pred = self.memo.get(key)
        if pred is None:
            pred = self._predict([text], emb)[0]
            self.memo.put(key, pred)
        return pred

    def predict_many(self, texts: Sequence[str], vecs: np.ndarray | None = None) -> list[IntentPrediction]:
        if not texts:
            return []
        emb = self.embedder.encode(list(texts)) if vecs is None else vecs
        return self._predict(texts, emb)


def _hyper_tag() -> bytes:
    return repr((C_INTENT, C_DIRECTION, EMB_WEIGHT, CHAR_WEIGHT, DIR_EMB_WEIGHT, NGRAMS)).encode()
