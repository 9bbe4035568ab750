"""The two stores an index generation is made of: Chroma (through llama-index) for the turn and
span vectors, and a bm25s index for keywords. Building writes them and ``Index`` reads them; the
tokenisation lives here so that documents and questions are always cut the same way."""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from .errors import MlqiError
from .settings import Settings, offline_environment
from .spans import SpanTable
from .types import Chunk

log = logging.getLogger(__name__)

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


def collection_name(generation: str) -> str:
    return f"{COLLECTION_PREFIX}-{generation}"


def vector_store(collection: Any) -> Any:
    from llama_index.vector_stores.chroma import ChromaVectorStore

    store = ChromaVectorStore(chroma_collection=collection)
    # Codes stay a list (Chroma >= 1.0 stores arrays) so ``$contains`` can filter on them; the
    # constructor does not forward this field, hence the assignment.
    store.flat_metadata = False
    return store


def chroma_metadata(c: Chunk) -> dict[str, Any]:
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


def write_chroma(collection: Any, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
    from llama_index.core.schema import TextNode

    nodes = [
        TextNode(
            id_=c.id,
            text=c.embed_text,
            embedding=vectors[i].tolist(),
            metadata=chroma_metadata(c),
            excluded_embed_metadata_keys=list(chroma_metadata(c)),
            excluded_llm_metadata_keys=list(chroma_metadata(c)),
        )
        for i, c in enumerate(chunks)
    ]
    store = vector_store(collection)
    for i in range(0, len(nodes), 1000):
        store.add(nodes[i : i + 1000])


def span_collection_name(generation: str) -> str:
    return f"{COLLECTION_PREFIX}-{generation}-spans"


def write_span_collection(
    client: Any, generation: str, chunks: Sequence[Chunk], table: SpanTable
) -> None:
    """The span vectors in Chroma too, beside the turns: with a Chroma server they live there,
    and past the size where an exact scan stays cheap, the scan asks its HNSW index instead."""
    if not len(table):
        return
    collection = client.create_collection(
        span_collection_name(generation),
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


def _writable(path: Path) -> bool:
    probe = path / f".probe-{secrets.token_hex(4)}"
    try:
        probe.touch()
        probe.unlink()
    except OSError:
        return False
    return True


def open_collection(settings: Settings, gen_dir: Path, generation: str) -> Any:
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
    return client.get_collection(collection_name(generation))


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


def write_bm25(path: Path, chunks: Sequence[Chunk]) -> None:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(keyword_tokens([c.embed_text for c in chunks]), show_progress=False)
    retriever.save(str(path), show_progress=False)
