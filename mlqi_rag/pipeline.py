"""Builds the pipeline once (settings → embedder → index → retriever → engines) for CLI and app."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .adapter import load as load_adapter
from .calibration import ScanModel
from .embedding import Embedder
from .index import Index
from .retrieval import Retriever
from .scan import Scanner
from .settings import Settings
from .terms import CorpusTerms


@dataclass
class Pipeline:
    settings: Settings
    embedder: Embedder
    index: Index
    retriever: Retriever
    scanner: Scanner
    _engines: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(
        cls, settings: Settings, embedder: Embedder | None = None, model: ScanModel | None = None
    ) -> Pipeline:
        index = Index.load(settings)  # fails fast, before the model loads, when there is no index
        if embedder is None:
            embedder = Embedder.from_settings(settings)
        else:  # questions must pass through the adapter the index's vectors went through
            embedder = embedder.with_adapter(load_adapter(settings.adapter_path()))
        if model is None:
            path = settings.scan_model_path()
            model = ScanModel.load(path) if path.is_file() else ScanModel.neutral()
        return cls.of(settings, embedder, index, model)

    @classmethod
    def of(cls, settings: Settings, embedder: Embedder, index: Index, model: ScanModel) -> Pipeline:
        """The retriever and the scanner over a loaded index, sharing one reading of the
        corpus's words."""
        terms = CorpusTerms(index)
        return cls(
            settings,
            embedder,
            index,
            Retriever(index, embedder, settings, terms=terms),
            Scanner(index, embedder, model, shared_terms=terms),
        )

    def engine(self, name: str | None = None) -> Any:
        """The named answer engine (default: ``settings.engine``), built once and reused."""
        from .answer import get_engine

        name = name or self.settings.engine
        with self._lock:
            if name not in self._engines:
                self._engines[name] = get_engine(name, self)
            return self._engines[name]
