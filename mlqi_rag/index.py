"""The persistent index: Chroma vectors (through llama-index) beside a BM25 keyword index.

Layout of ``index_dir``::

    CURRENT                 name of the live generation (replaced atomically)
    gen-<time>-<rand>/      one complete build
        manifest.json       corpus file hashes, model, chunking parameters, package version
        chunks.jsonl        the chunks (what hits are made of)
        interviews.json     parsed interviews (for context display and verification)
        embeddings.npz      chunk vectors by content hash, reused by the next build
        spans.npz           every quotable participant span (offsets) and its vector
        bm25/               bm25s index over question + text
        chroma/             Chroma PersistentClient data (absent with a Chroma server)

A build writes a new generation and only then points ``CURRENT`` at it, so a build killed at any
moment leaves the previous index answering. Unchanged chunk texts are never embedded twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from . import __version__
from .chunking import ChunkParams, chunk_interviews, content_hash
from .embedding import Embedder
from .errors import IndexMissingError, MlqiError, SourceChangedError, printable
from .settings import Settings, offline_environment
from .spans import SpanTable, span_rows, text_hash
from .transcripts import file_sha256, load_text, parse_corpus
from .types import Chunk, Interview, Paragraph, Turn

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
COLLECTION_PREFIX = "mlqi"


# ---- Chroma ----------------------------------------------------------------------------------


def chroma_client(settings: Settings, path: Path | None) -> Any:
    """A local PersistentClient at ``path``, or an HttpClient when ``MLQI_CHROMA_URL`` is set."""
    offline_environment()
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if not url.hostname:
            raise MlqiError(f"MLQI_CHROMA_URL={settings.chroma_url!r} is not http://HOST:PORT")
        return chromadb.HttpClient(
            host=url.hostname,
            port=url.port or 8000,
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    assert path is not None
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def _collection_name(generation: str) -> str:
    return f"{COLLECTION_PREFIX}-{generation}"


def _vector_store(collection: Any) -> Any:
    from llama_index.vector_stores.chroma import ChromaVectorStore

    store = ChromaVectorStore(chroma_collection=collection)
    # Codes stay a list (Chroma >= 1.0 stores arrays) so ``$contains`` can filter on them; the
    # constructor does not forward this field, hence the assignment.
    store.flat_metadata = False
    return store


def _chroma_metadata(c: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "interview_id": c.interview_id,
        "label": c.label,
        "turn_index": c.turn_index,
        "speaker": c.speaker,
        "role": c.role,
        "source": c.source,
        "start": c.start,
        "end": c.end,
        "token_count": c.token_count,
        "question": c.question,
    }
    if c.codes:  # Chroma rejects empty lists; an absent key simply never matches ``$contains``
        meta["codes"] = list(c.codes)
    return meta


def _write_chroma(collection: Any, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
    from llama_index.core.schema import TextNode

    nodes = [
        TextNode(
            id_=c.id,
            text=c.embed_text,
            embedding=vectors[i].tolist(),
            metadata=_chroma_metadata(c),
            excluded_embed_metadata_keys=list(_chroma_metadata(c)),
            excluded_llm_metadata_keys=list(_chroma_metadata(c)),
        )
        for i, c in enumerate(chunks)
    ]
    store = _vector_store(collection)
    for i in range(0, len(nodes), 1000):
        store.add(nodes[i : i + 1000])


def _span_collection_name(generation: str) -> str:
    return f"{COLLECTION_PREFIX}-{generation}-spans"


def _write_span_collection(
    client: Any, generation: str, chunks: Sequence[Chunk], table: SpanTable
) -> None:
    """The span vectors in Chroma too, beside the turns: with a Chroma server they live there,
    and past the size where an exact scan stays cheap, the scan asks its HNSW index instead."""
    if not len(table):
        return
    collection = client.create_collection(
        _span_collection_name(generation),
        metadata={"hnsw:space": "cosine"},
        embedding_function=None,
    )
    step = 2000
    for i in range(0, len(table), step):
        rows = range(i, min(i + step, len(table)))
        collection.add(
            ids=[f"{chunks[int(table.chunk[j])].id}:s{j}" for j in rows],
            embeddings=table.vectors[i : i + step],
            metadatas=[
                {
                    "row": j,
                    "interview_id": chunks[int(table.chunk[j])].interview_id,
                    "start": int(table.start[j]),
                    "end": int(table.end[j]),
                }
                for j in rows
            ],
        )


# ---- BM25 ------------------------------------------------------------------------------------


_THREAD = threading.local()


def stemmer() -> Any:
    """One English stemmer per thread: PyStemmer objects must not be shared across threads,
    and the app answers questions on several."""
    if not hasattr(_THREAD, "stemmer"):
        import Stemmer

        _THREAD.stemmer = Stemmer.Stemmer("english")
    return _THREAD.stemmer


def keyword_tokens(texts: Sequence[str]) -> list[list[str]]:
    """The same tokenisation for documents and queries (stemmed, English stopwords out)."""
    import bm25s

    return bm25s.tokenize(  # type: ignore[no-any-return]
        list(texts), stopwords="en", stemmer=stemmer(), return_ids=False, show_progress=False
    )


def _write_bm25(path: Path, chunks: Sequence[Chunk]) -> None:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(keyword_tokens([c.embed_text for c in chunks]), show_progress=False)
    retriever.save(str(path), show_progress=False)


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


# ---- building --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildReport:
    generation: str
    changed: bool
    chunks: int
    embedded: int
    reused: int
    files_added: tuple[str, ...] = ()
    files_changed: tuple[str, ...] = ()
    files_removed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    seconds: float = 0.0
    rebuilt_reason: str = ""
    spans: int = 0
    spans_embedded: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _manifest(settings: Settings, interviews: Sequence[Interview], n_chunks: int) -> dict[str, Any]:
    return {
        "package_version": __version__,
        "model": settings.model_name(),
        "fingerprint": settings.index_fingerprint(),
        "settings_hash": settings.settings_hash(),
        "scan_model": _scan_model_params(settings),
        "chunking": {
            "max_tokens": settings.chunk_max_tokens,
            "min_tokens": settings.chunk_min_tokens,
            "question_max_tokens": settings.question_max_tokens,
        },
        "corpus": str(Path(settings.corpus).absolute()),
        # Every file that went into the index, coded copies too: a recoded copy re-indexes.
        "files": {
            **{copy: _hash_or_missing(Path(copy)) for iv in interviews for copy in iv.copies},
            **{iv.source: iv.sha256 for iv in interviews},
        },
        "corpus_hash": corpus_hash(iv.sha256 for iv in interviews),
        "chunks": n_chunks,
        "chroma_url": settings.chroma_url,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _scan_model_params(settings: Settings) -> dict[str, Any]:
    """The fitted scan model's parameters, saved with the index settings they decide with."""
    path = settings.scan_model_path()
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def _hash_or_missing(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return "missing"


def pdf_cache(settings: Settings) -> Path:
    """Where extracted PDF text is kept, so re-indexing and answering never re-parse a PDF."""
    return Path(settings.index_dir) / "pdf-cache"


def corpus_hash(hashes: Iterator[str] | Sequence[str]) -> str:
    return hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()[:12]


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


@contextlib.contextmanager
def _build_lock(index_dir: Path) -> Iterator[None]:
    check_index_dir(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        fh = open(index_dir / ".lock", "w")
    except OSError as exc:
        raise MlqiError(
            f"cannot write the index at {printable(str(index_dir))} "
            f"({exc.strerror or exc}); choose a writable --index-dir"
        ) from exc
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise MlqiError(f"another build is running on {index_dir}; wait for it") from exc
        yield


def _read_manifest(index_dir: Path, generation: str | None) -> dict[str, Any] | None:
    if generation is None:
        return None
    try:
        return json.loads((index_dir / generation / "manifest.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _old_vectors(index_dir: Path, generation: str | None) -> dict[str, np.ndarray]:
    """Every vector of the live generation by content hash: chunks and spans alike."""
    if generation is None:
        return {}
    out: dict[str, np.ndarray] = {}
    for name in ("spans.npz", "embeddings.npz"):
        try:
            data = np.load(index_dir / generation / name)
            out.update(zip(data["hashes"].tolist(), data["vectors"], strict=True))
        except (OSError, ValueError, KeyError):
            continue
    return out


def _cleanup(index_dir: Path, settings: Settings, keep: set[str]) -> None:
    """Remove generations other than ``keep`` (the live one and the one before it)."""
    for p in index_dir.glob("gen-*"):
        if p.name in keep or not p.is_dir():
            continue
        shutil.rmtree(p, ignore_errors=True)
        if settings.chroma_url:
            for name in (_collection_name(p.name), _span_collection_name(p.name)):
                with contextlib.suppress(Exception):
                    chroma_client(settings, None).delete_collection(name)


def build_index(
    settings: Settings,
    embedder: Embedder | None = None,
    progress: bool | None = None,
    force: bool = False,
) -> BuildReport:
    """Bring the index in ``settings.index_dir`` up to date with ``settings.corpus``."""
    t0 = time.perf_counter()
    index_dir = Path(settings.index_dir)
    interviews, sources, errors = parse_corpus([settings.corpus], pdf_cache(settings))
    if not interviews:
        detail = "; ".join(str(e) for e in errors) or "no transcripts"
        raise MlqiError(f"nothing to index in {settings.corpus}: {detail}")
    with _build_lock(index_dir):
        live = current_generation(index_dir)
        old = _read_manifest(index_dir, live)
        manifest = _manifest(settings, interviews, 0)
        same_settings = bool(
            old
            and old.get("fingerprint") == manifest["fingerprint"]
            and old.get("settings_hash") == manifest["settings_hash"]
            and old.get("package_version") == __version__
            and old.get("chroma_url", "") == settings.chroma_url
        )
        old_files: dict[str, str] = (old or {}).get("files", {})
        added = tuple(f for f in manifest["files"] if f not in old_files)
        removed = tuple(f for f in old_files if f not in manifest["files"])
        changed = tuple(
            f for f, h in manifest["files"].items() if f in old_files and old_files[f] != h
        )
        err_lines = tuple(str(e) for e in errors)
        if same_settings and not (added or removed or changed) and not force and live:
            return BuildReport(
                live,
                False,
                old["chunks"] if old else 0,
                0,
                0,
                errors=err_lines,
                seconds=time.perf_counter() - t0,
            )
        reason = "" if same_settings or not old else "settings or model changed: full rebuild"

        params = ChunkParams(
            settings.chunk_max_tokens, settings.chunk_min_tokens, settings.question_max_tokens
        )
        chunks = chunk_interviews(interviews, sources, params)
        hashes = [content_hash(c) for c in chunks]
        rows = span_rows(chunks, sources)
        span_texts = [sources[chunks[c].interview_id][s:e] for c, s, e in rows]
        span_hashes = [text_hash(t) for t in span_texts]
        # Vectors are reusable only if they came from the same model.
        reusable = (
            _old_vectors(index_dir, live) if old and old.get("model") == manifest["model"] else {}
        )
        # Chunks and quotable spans are embedded in one pass; equal texts share a vector.
        todo = {h: c.embed_text for h, c in zip(hashes, chunks, strict=True) if h not in reusable}
        n_chunks_todo = len(todo)
        todo.update(
            (h, t) for h, t in zip(span_hashes, span_texts, strict=True) if h not in reusable
        )
        missing = sorted(todo.items())
        embedder = embedder or Embedder.from_settings(settings)
        new_vectors: dict[str, np.ndarray] = {}
        if missing:
            vectors = _embed_with_progress(embedder, [t for _, t in missing], progress)
            new_vectors = dict(zip([h for h, _ in missing], vectors, strict=True))
        lookup = {**reusable, **new_vectors}
        matrix = np.stack([lookup[h] for h in hashes]).astype(np.float32)
        dim = matrix.shape[1]
        table = SpanTable(
            chunk=np.array([r[0] for r in rows], dtype=np.int32),
            start=np.array([r[1] for r in rows], dtype=np.int32),
            end=np.array([r[2] for r in rows], dtype=np.int32),
            hashes=np.array(span_hashes),
            vectors=(
                np.stack([lookup[h] for h in span_hashes]).astype(np.float32)
                if rows
                else np.zeros((0, dim), dtype=np.float32)
            ),
        )

        generation = f"gen-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        gen_dir = index_dir / generation
        try:
            gen_dir.mkdir(parents=True)
        except OSError as exc:
            raise MlqiError(
                f"cannot write the index at {printable(str(index_dir))} ({exc.strerror or exc})"
            ) from exc
        client = chroma_client(settings, gen_dir / "chroma")
        collection = client.create_collection(
            _collection_name(generation), metadata={"hnsw:space": "cosine"}, embedding_function=None
        )
        _write_chroma(collection, chunks, matrix)
        _write_span_collection(client, generation, chunks, table)
        _write_bm25(gen_dir / "bm25", chunks)
        # Row i is chunk i's vector: reused by the next build, and exact similarities at query time.
        np.savez(gen_dir / "embeddings.npz", hashes=np.array(hashes), vectors=matrix)
        table.save(gen_dir / "spans.npz")
        with open(gen_dir / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for c in chunks:
                fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
        (gen_dir / "interviews.json").write_text(
            json.dumps([iv.to_dict() for iv in interviews], ensure_ascii=False), encoding="utf-8"
        )
        manifest["chunks"] = len(chunks)
        manifest["spans"] = len(table)
        manifest["generation"] = generation
        manifest["errors"] = list(err_lines)
        (gen_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
        _fsync_dir(gen_dir)
        tmp = index_dir / f"{CURRENT}.tmp"
        tmp.write_text(generation)
        os.replace(tmp, index_dir / CURRENT)  # the swap: atomic on POSIX
        _cleanup(index_dir, settings, keep={generation, live or ""})
        return BuildReport(
            generation=generation,
            changed=True,
            chunks=len(chunks),
            embedded=n_chunks_todo,
            reused=len(chunks) - sum(1 for h in hashes if h in new_vectors),
            spans=len(table),
            spans_embedded=len(missing) - n_chunks_todo,
            files_added=added if old else (),
            files_changed=changed,
            files_removed=removed,
            errors=err_lines,
            seconds=time.perf_counter() - t0,
            rebuilt_reason=reason,
        )


def _embed_with_progress(embedder: Embedder, texts: list[str], progress: bool | None) -> np.ndarray:
    """Embed in length-sorted batches (as ``encode`` does internally) so padding stays small,
    updating a progress bar per batch; rows come back in the input order."""
    from tqdm import tqdm

    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    batch = max(1, embedder.batch_size) * 4
    out = np.zeros((len(texts), 0), dtype=np.float32)
    # disable=None: tqdm shows the bar only on a terminal, unless the caller decided.
    disable = None if progress is None else not progress
    with tqdm(total=len(texts), desc="embedding chunks", unit="chunk", disable=disable) as bar:
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            vectors = embedder.embed([texts[j] for j in idx])
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
            bar.update(len(idx))
    return out


def _fsync_dir(path: Path) -> None:
    for p in [*path.rglob("*"), path]:
        with contextlib.suppress(OSError):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


# ---- loading ---------------------------------------------------------------------------------


def _writable(path: Path) -> bool:
    probe = path / f".probe-{secrets.token_hex(4)}"
    try:
        probe.touch()
        probe.unlink()
    except OSError:
        return False
    return True


def _open_collection(settings: Settings, gen_dir: Path, generation: str) -> Any:
    """The generation's Chroma collection; from a private copy when the index is read-only.

    Chroma's local client writes to its SQLite file even to read, so an index on a read-only
    disk (a shared, archived study) would look corrupt. Reading never needs to change it, so a
    throwaway copy answers exactly as the original would.
    """
    path = gen_dir / "chroma"
    if not settings.chroma_url and path.is_dir() and not _writable(path):
        import atexit
        import tempfile

        copy = Path(tempfile.mkdtemp(prefix="mlqi-ro-index-")) / "chroma"
        shutil.copytree(path, copy)
        atexit.register(shutil.rmtree, copy.parent, True)
        log.info("index at %s is read-only: reading a temporary copy", gen_dir)
        path = copy
    client = chroma_client(settings, path)
    return client.get_collection(_collection_name(generation))


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
    vectors: np.ndarray
    spans: SpanTable
    by_id: dict[str, int] = field(default_factory=dict)
    _sources: dict[str, tuple[tuple[int, int], str]] = field(default_factory=dict)

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
            collection = _open_collection(settings, gen_dir, generation)
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
            by_id={c.id: i for i, c in enumerate(chunks)},
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
        return _vector_store(self.collection)

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
