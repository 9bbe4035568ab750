"""Builds the pipeline once (settings → embedder → index → retriever → engine) for CLI and app."""

from __future__ import annotations

from dataclasses import dataclass

from .embedding import Embedder
from .index import Index
from .retrieval import Retriever
from .settings import Settings


@dataclass
class Pipeline:
    settings: Settings
    embedder: Embedder
    index: Index
    retriever: Retriever

    @classmethod
    def load(cls, settings: Settings, embedder: Embedder | None = None) -> Pipeline:
        index = Index.load(settings)  # fails fast, before the model loads, when there is no index
        embedder = embedder or Embedder.from_settings(settings)
        return cls(settings, embedder, index, Retriever(index, embedder, settings))
