"""Building an index generation: parse the corpus, chunk it, embed what is new (chunks and every
quotable span in one pass), write the stores, then point ``CURRENT`` at the new generation.

A build writes a new generation and only then swaps ``CURRENT`` (atomically), so a build killed at
any moment leaves the previous index answering. Unchanged texts are never embedded twice: vectors
are reused by content hash from the live generation when the model is the same."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .adapter import load as load_adapter
from .chunking import ChunkParams, chunk_interviews, content_hash
from .embedding import Embedder
from .errors import MlqiError, printable
from .index import CURRENT, check_index_dir, current_generation, pdf_cache
from .settings import Settings
from .spans import SpanTable, span_rows, text_hash
from .stores import (
    chroma_client,
    collection_name,
    span_collection_name,
    write_bm25,
    write_chroma,
    write_span_collection,
)
from .transcripts import file_sha256, parse_corpus
from .types import Interview


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


def corpus_hash(hashes: Iterator[str] | Sequence[str]) -> str:
    return hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()[:12]


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
            for name in (collection_name(p.name), span_collection_name(p.name)):
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
            collection_name(generation), metadata={"hnsw:space": "cosine"}, embedding_function=None
        )
        # Chroma answers questions, so it holds the vectors through the adapter; the .npz files
        # keep the model's own (the next build's cache, whatever adapter it uses).
        adapter = load_adapter(settings.adapter_path())
        write_chroma(collection, chunks, adapter.apply(matrix))
        write_span_collection(
            client, generation, chunks, replace(table, vectors=adapter.apply(table.vectors))
        )
        write_bm25(gen_dir / "bm25", chunks)
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
