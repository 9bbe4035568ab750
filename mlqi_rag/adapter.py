"""A linear map on the embedding space, fitted on the dev questions' gold quotes, that question
and passage vectors pass through before they are compared.

Why: MiniLM was trained on web pairs, not on "which interviewees talk about weather data?"
against a hesitant spoken answer, and no better model ships offline. A 384 x 384 matrix ``W``
(started at the identity) is fitted so that ``normalise(W q) . normalise(W p)`` ranks a
question's gold spans above the corpus's other spans (``adapter_fit``). Being applied to stored
vectors, it costs no embedding: the index keeps the model's own vectors (the build cache, and
what passage-to-passage features such as quote grouping and code suggestions read), and loads
the adapted copy beside them. A refitted adapter re-writes Chroma, never re-embeds.

``Settings.embed_adapter`` names the file: empty is the shipped fit, ``none`` the raw vectors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import MlqiError

BUNDLED = Path(__file__).with_name("adapter.npz")
DECIMALS = 5  # the shipped matrix is rounded: a refit on another machine gives the same file


@dataclass(frozen=True)
class Adapter:
    """``matrix`` None is the identity (raw vectors); ``digest`` names the matrix."""

    matrix: np.ndarray | None
    digest: str = "none"

    @property
    def identity(self) -> bool:
        return self.matrix is None

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Rows (or one vector) mapped and L2-normalised again; the identity returns them."""
        if self.matrix is None:
            return vectors
        mapped = np.asarray(vectors, dtype=np.float32) @ self.matrix.T
        norms = np.linalg.norm(mapped, axis=-1, keepdims=True)
        return np.asarray(mapped / np.maximum(norms, 1e-12), dtype=np.float32)

    @classmethod
    def of(cls, matrix: np.ndarray) -> Adapter:
        m = np.round(np.asarray(matrix, dtype=np.float64), DECIMALS).astype(np.float32)
        return cls(m, hashlib.sha256(m.tobytes()).hexdigest()[:12])

    def save(self, path: Path) -> None:
        if self.matrix is None:
            raise MlqiError("the identity adapter has no file")
        np.savez_compressed(path, matrix=self.matrix)


@lru_cache(maxsize=8)
def _load(path: str, stamp: tuple[int, int]) -> Adapter:
    try:
        matrix = np.load(path)["matrix"]
    except (OSError, KeyError, ValueError, EOFError) as exc:  # EOFError: an empty file
        raise MlqiError(f"{path}: not an adapter file ({type(exc).__name__}: {exc})") from exc
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not np.isfinite(matrix).all():
        raise MlqiError(f"{path}: not an adapter file (matrix of shape {matrix.shape})")
    return Adapter.of(matrix)


def load(path: Path | None) -> Adapter:
    """The adapter in ``path`` (None: the identity), read once per file version."""
    if path is None:
        return Adapter(None)
    try:
        st = path.stat()
    except OSError as exc:
        raise MlqiError(f"{path}: adapter file missing ({exc.strerror})") from exc
    return _load(str(path), (st.st_mtime_ns, st.st_size))
