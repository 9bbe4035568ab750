"""Loading the persistent index: one generation's Chroma vectors (through llama-index), BM25
keyword index, chunks and interviews, read-only (``build`` writes them, ``stores`` holds the two
stores' code).

Layout of ``index_dir``::

    CURRENT                 name of the live generation (replaced atomically)
    gen-<time>-<rand>/      one complete build
        manifest.json       corpus file hashes, model, chunking parameters, package version
        chunks.jsonl        the chunks (what hits are made of)
        interviews.json     parsed interviews (for context display and verification)
        embeddings.npz      chunk vectors by content hash, reused by the next build
        spans.npz           every quotable participant span (offsets) and its vector
                            (both the model's own vectors; ``adapter`` maps them at load)
        bm25/               bm25s index over question + text
        chroma/             Chroma PersistentClient data (absent with a Chroma server)

Quotes are verified against the transcript on disk (``Index.source_text``), never against the
copy stored here, and only while the file is still the one that was indexed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .adapter import Adapter
from .adapter import load as load_adapter
from .errors import IndexMissingError, MlqiError, SourceChangedError, printable
from .settings import Settings
from .spans import SpanTable
from .stores import keyword_tokens, open_collection, vector_store
from .transcripts import file_sha256, load_text
from .types import Chunk, Interview, Paragraph, Turn

CURRENT = "CURRENT"


def pdf_cache(settings: Settings) -> Path:
    """Where extracted PDF text is kept, so re-indexing and answering never re-parse a PDF."""
    return Path(settings.index_dir) / "pdf-cache"


def current_generation(index_dir: Path) -> str | None:
    try:
        name = (index_dir / CURRENT).read_text().strip()
    except OSError:
        return None
    return name if name and (index_dir / name).is_dir() else None


def check_index_dir(index_dir: Path) -> None:
    """One line, not a traceback, when the index location cannot hold an index."""
    if index_dir.exists() and not index_dir.is_dir():
        raise MlqiError(f"index location {printable(str(index_dir))} is a file, not a directory")


# ---- serialisation ---------------------------------------------------------------------------


def _chunk_from_dict(d: dict[str, Any]) -> Chunk:
    return Chunk(
        id=d["id"],
        interview_id=d["interview_id"],
        label=d["label"],
        turn_index=d["turn_index"],
        speaker=d["speaker"],
        role=d["role"],
        text=d["text"],
        question=d["question"],
        codes=tuple(d["codes"]),
        source=d["source"],
        segments=tuple((s, e) for s, e in d["segments"]),
        token_count=d["token_count"],
        coded=tuple((k, tuple(v)) for k, v in d.get("coded", {}).items()),
    )


def _interview_from_dict(d: dict[str, Any]) -> Interview:
    return Interview(
        id=d["id"],
        label=d["label"],
        source=d["source"],
        language=d["language"],
        format=d["format"],
        sha256=d["sha256"],
        coders=tuple(d.get("coders", ())),
        copies=tuple(d.get("copies", ())),
        turns=tuple(
            Turn(
                index=t["index"],
                speaker=t["speaker"],
                role=t["role"],
                paragraphs=tuple(
                    Paragraph(
                        p["text"],
                        p["start"],
                        p["end"],
                        tuple(p["codes"]),
                        tuple((k, tuple(v)) for k, v in p.get("coded", {}).items()),
                    )
                    for p in t["paragraphs"]
                ),
            )
            for t in d["turns"]
        ),
    )


# ---- loading ---------------------------------------------------------------------------------


@dataclass
class Index:
    """A loaded, read-only generation: chunks, interviews, the vector store and BM25."""

    settings: Settings
    generation: str
    manifest: dict[str, Any]
    chunks: list[Chunk]
    interviews: dict[str, Interview]
    collection: Any
    bm25: Any
    vectors: np.ndarray  # chunk vectors for search: through the adapter, as in Chroma
    spans: SpanTable  # span vectors for search, likewise
    raw_vectors: np.ndarray  # the model's own vectors, for passage-to-passage features
    raw_spans: SpanTable
    by_id: dict[str, int] = field(default_factory=dict)
    _sources: dict[str, tuple[tuple[int, int], str]] = field(default_factory=dict)
    _df: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, settings: Settings) -> Index:
        index_dir = Path(settings.index_dir)
        check_index_dir(index_dir)
        generation = current_generation(index_dir)
        if generation is None:
            raise IndexMissingError(index_dir)
        gen_dir = index_dir / generation
        try:
            import bm25s

            manifest = json.loads((gen_dir / "manifest.json").read_text())
            with open(gen_dir / "chunks.jsonl", encoding="utf-8") as fh:
                chunks = [_chunk_from_dict(json.loads(line)) for line in fh]
            interviews = {
                d["id"]: _interview_from_dict(d)
                for d in json.loads((gen_dir / "interviews.json").read_text(encoding="utf-8"))
            }
            bm25 = bm25s.BM25.load(str(gen_dir / "bm25"), show_progress=False)
            vectors = np.load(gen_dir / "embeddings.npz")["vectors"]
            spans = SpanTable.load(gen_dir / "spans.npz")
            collection = open_collection(settings, gen_dir, generation)
            count = collection.count()
        except IndexMissingError:
            raise
        except Exception as exc:  # any unreadable piece means the same thing to the user
            raise IndexMissingError(
                index_dir, f"corrupt index ({type(exc).__name__}: {exc})"
            ) from exc
        if not (count == len(chunks) == manifest.get("chunks") == len(vectors)):
            raise IndexMissingError(
                index_dir, f"corrupt index ({count} vectors for {len(chunks)} chunks)"
            )
        if len(spans) != manifest.get("spans") or len(spans.vectors) != len(spans):
            raise IndexMissingError(index_dir, "corrupt index (span table does not match)")
        if manifest.get("fingerprint") != settings.index_fingerprint():
            raise IndexMissingError(
                index_dir, "index was built with other model or chunking settings"
            )
        return cls(
            settings=settings,
            generation=generation,
            manifest=manifest,
            chunks=chunks,
            interviews=interviews,
            collection=collection,
            bm25=bm25,
            vectors=vectors,
            spans=spans,
            raw_vectors=vectors,
            raw_spans=spans,
            by_id={c.id: i for i, c in enumerate(chunks)},
        ).through(load_adapter(settings.adapter_path()))

    def through(self, adapter: Adapter) -> Index:
        """This index with its search vectors taken through ``adapter``, from the model's own
        vectors (nothing is embedded again): what ``load`` gives for the settings' adapter,
        and what cross-fitting (``adapter_crossfit``) gives for one fitted without a fold."""
        return replace(
            self,
            vectors=adapter.apply(self.raw_vectors),
            spans=replace(self.raw_spans, vectors=adapter.apply(self.raw_spans.vectors)),
        )

    def source_text(self, interview_id: str) -> str:
        """The transcript as it is on disk now: quotes are verified against this, not a copy.

        The file must still be the one that was indexed (same bytes): an edited transcript would
        give old offsets new words. A long-running app sees an edit because the file's size or
        modification time changes, which makes it hash the file again.

        Raises ``SourceChangedError`` when the file changed, moved or vanished.
        """
        iv = self.interviews[interview_id]
        path = Path(iv.source)
        try:
            st = path.stat()
        except OSError:
            raise SourceChangedError(interview_id, path, "was moved or deleted") from None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._sources.get(interview_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            if iv.format == "delve-pdf":  # its text is extracted, cached by the PDF's hash
                same = file_sha256(path) == iv.sha256
                text = load_text(path, iv.format, pdf_cache(self.settings)) if same else ""
            else:  # hash exactly the text that will be used: one read
                text = load_text(path, iv.format)
                same = hashlib.sha256(text.encode("utf-8")).hexdigest() == iv.sha256
        except (OSError, MlqiError):
            raise SourceChangedError(interview_id, path, "became unreadable") from None
        if not same:
            raise SourceChangedError(interview_id, path, "was edited")
        self._sources[interview_id] = (stamp, text)
        return text

    def source_problem(self, interview_id: str) -> str | None:
        """Why an interview's quotes cannot be verified now (None when they can)."""
        try:
            self.source_text(interview_id)
        except SourceChangedError as exc:
            return str(exc)
        return None

    @property
    def vector_store(self) -> Any:
        return vector_store(self.collection)

    def dense(
        self, query_vector: np.ndarray, n: int, where: dict[str, Any] | None
    ) -> list[tuple[int, float]]:
        """(chunk position, cosine similarity) of the ``n`` nearest chunks passing ``where``."""
        from llama_index.core.vector_stores.types import VectorStoreQuery

        query = VectorStoreQuery(query_embedding=query_vector.tolist(), similarity_top_k=n)
        kwargs: dict[str, Any] = {"where": where} if where else {}
        result = self.vector_store.query(query, **kwargs)
        out = []
        for node_id, sim in zip(result.ids or [], result.similarities or [], strict=False):
            # llama-index reports exp(-distance); Chroma's cosine distance is 1 - cosine.
            cosine = 1.0 + float(np.log(max(sim, 1e-12)))
            out.append((self.by_id[node_id], cosine))
        return out

    def keyword_scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk (zeros when no query term is in the vocabulary)."""
        [tokens] = keyword_tokens([query])
        vocab = self.bm25.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return np.zeros(len(self.chunks), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(known), dtype=np.float32)

    def chunks_saying(self, token: str) -> np.ndarray:
        """Which chunks use a keyword token (stemmed, as ``keyword_tokens`` makes it)."""
        if token not in self.bm25.vocab_dict:
            return np.zeros(len(self.chunks), dtype=bool)
        return np.asarray(self.bm25.get_scores([token])) > 0

    def document_frequency(self, token: str) -> int:
        """How many chunks use a keyword token; kept, since the index never changes."""
        if token not in self._df:
            self._df[token] = int(self.chunks_saying(token).sum())
        return self._df[token]

    def unknown_terms(self, query: str, ignore: frozenset[str] = frozenset()) -> tuple[str, ...]:
        """Query words (3+ letters, not stopwords) whose stem occurs in no chunk at all."""
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z-]{2,}", query) if w.lower() not in ignore]
        if not words:
            return ()
        stems = keyword_tokens(words)
        vocab = self.bm25.vocab_dict
        return tuple(w for w, st in zip(words, stems, strict=True) if st and st[0] not in vocab)

    def code_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.chunks:
            for code in c.codes:
                counts[code] = counts.get(code, 0) + 1
        return dict(sorted(counts.items()))
