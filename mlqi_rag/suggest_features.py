"""What the code-suggestion model knows about a (passage, code) pair.

A *passage* is one participant paragraph. Beside its own vector (the mean of its sentence vectors
in ``Index.spans``) it carries the interviewer question it answers (the last substantive
interviewer turn before it, embedded here: the index keeps no vectors of interviewer speech) and
its stemmed words. A code is known by the reference passages that carry it (the training
passages of other interviews) and by its name turned into words.

``pair_features`` turns (query passages x codes) into one row of numbers per pair; ``FEATURES``
names the columns. Every feature of a query passage is computed against reference passages of
*other* interviews only, so a training row looks like a held-out row.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .index import Index
from .stores import keyword_tokens
from .types import Turn

K_NEIGHBOURS = 10
QUESTION_CHARS = 300  # the end of a question is the part that asks
MIN_QUESTION_WORDS = 4  # "Okay." / "Mm-hmm." is no question: look further back

FEATURES = (
    "knn_vote",  # similarity-weighted share of the k nearest reference passages that carry it
    "max_cos",  # cosine to the code's nearest reference passage
    "top3_cos",  # mean cosine to its three nearest
    "q_max_cos",  # cosine of the preceding question to the code's passages' questions
    "q_knn_vote",  # knn_vote with passages ranked by their questions
    "name_cos",  # cosine of the passage to the code's name in words
    "name_overlap",  # share of the code name's stemmed words in the passage
    "log_prior",  # log share of reference passages with the code
    "interviews",  # share of the reference interviews the code occurs in
    "coded_vote",  # share of the k nearest reference passages that carry any code
    "vote_rank",  # 0 for the passage's best code by knn_vote, 1 for the next ...
    "log_words",  # passage length
    "iv_max_cos",  # max_cos in each reference interview with the code, averaged
    "iv_q_max_cos",  # q_max_cos in each reference interview with the code, averaged
)


@dataclass(frozen=True)
class Passage:
    """One participant paragraph, with every coder's codes on it."""

    interview_id: str
    turn_index: int
    start: int
    end: int
    text: str
    coded: tuple[tuple[str, tuple[str, ...]], ...]
    question: str = ""

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(c for _, cs in self.coded for c in cs)

    def coders_of(self, code: str) -> tuple[str, ...]:
        return tuple(name for name, cs in self.coded if code in cs)


@dataclass(frozen=True)
class Corpus:
    """Every participant passage of an index with what the features need (same order)."""

    passages: list[Passage]
    x: np.ndarray  # passage vectors, L2-normalised
    q: np.ndarray  # preceding-question vectors, L2-normalised (zero: no question)
    words: list[frozenset[str]]  # stemmed words
    groups: np.ndarray  # interview id per passage
    code_vecs: dict[str, np.ndarray]  # every code of the corpus: its name in words, embedded
    code_words: dict[str, frozenset[str]]  # ... and its stemmed words

    def labels(self, rows: np.ndarray, codes: Sequence[str]) -> np.ndarray:
        return np.array(
            [[c in self.passages[i].codes for c in codes] for i in rows], dtype=float
        ).reshape(len(rows), len(codes))


def _question(turns: Sequence[Turn], at: int) -> str:
    for t in reversed(turns[:at]):
        if t.role == "interviewer" and (len(t.text.split()) >= MIN_QUESTION_WORDS or "?" in t.text):
            return t.text[-QUESTION_CHARS:]
    return ""


def _normalised(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return np.asarray(v / np.where(n == 0, 1.0, n), dtype=np.float32)


def code_words(code: str, abbrev: dict[str, str] | None = None) -> str:
    """ "Data-missing-values" -> "data missing values"; "ML-pipeline-issues [MLP]" teaches that
    MLP means "ML pipeline issues", so "MLP-costly-platforms" reads "ML pipeline issues costly
    platforms"."""
    name = re.sub(r"\s*\[[^\]]*\]", "", code)
    parts = [p for p in re.split(r"[-_\s/]+", name) if p]
    return " ".join((abbrev or {}).get(p, p) for p in parts).lower()


def abbreviations(codes: Sequence[str]) -> dict[str, str]:
    out = {}
    for code in codes:
        m = re.fullmatch(r"(.*?)\s*\[([A-Za-z]+)\]\s*", code)
        if m:
            out[m.group(2)] = code_words(m.group(1)).replace(" issues", "")
    return out


def build_corpus(index: Index, embedder: object) -> Corpus:
    """Every participant paragraph of ``index``: its vector is the mean of its sentence vectors
    (a paragraph too short for a sentence takes its turn chunk's vector)."""
    table = index.raw_spans  # passages against passages and code names: the model's own vectors
    rows: dict[str, list[tuple[int, int]]] = {}
    for j in range(len(table)):
        iv_id = index.chunks[int(table.chunk[j])].interview_id
        rows.setdefault(iv_id, []).append(((int(table.start[j]) + int(table.end[j])) // 2, j))
    chunk_of: dict[tuple[str, int], list[int]] = {}
    for i, c in enumerate(index.chunks):
        chunk_of.setdefault((c.interview_id, c.turn_index), []).append(i)
    out: list[Passage] = []
    vecs: list[np.ndarray] = []
    for iv in index.interviews.values():
        mids = sorted(rows.get(iv.id, []))
        for at, t in enumerate(iv.turns):
            if t.role != "participant":
                continue
            question = _question(iv.turns, at)
            for p in t.paragraphs:
                own = [j for mid, j in mids if p.start <= mid < p.end]
                if own:
                    v = table.vectors[own].mean(0)
                else:
                    mine = chunk_of.get((iv.id, t.index), [])
                    near = [
                        i for i in mine if index.chunks[i].start <= p.start < index.chunks[i].end
                    ]
                    v = index.raw_vectors[(near or mine or [0])[0]]
                vecs.append(v)
                out.append(Passage(iv.id, t.index, p.start, p.end, p.text, p.coded, question))
    dim = index.raw_vectors.shape[1] if len(index.raw_vectors) else 0
    x = _normalised(np.array(vecs, dtype=np.float32).reshape(len(out), dim))
    questions = sorted({p.question for p in out if p.question})
    qv = dict(zip(questions, embedder.embed(questions), strict=True))  # type: ignore[attr-defined]
    zero = np.zeros(dim, dtype=np.float32)
    q = _normalised(np.array([qv.get(p.question, zero) for p in out], dtype=np.float32))
    words = [frozenset(w) for w in keyword_tokens([p.text for p in out])] if out else []
    groups = np.array([p.interview_id for p in out], dtype=object)
    codes = sorted({c for p in out for c in p.codes})
    ab = abbreviations(codes)
    names = [code_words(c, ab) for c in codes]
    cv = _normalised(embedder.embed(names).reshape(len(codes), dim))  # type: ignore[attr-defined]
    cw = [frozenset(w) for w in keyword_tokens(names)] if names else []
    return Corpus(
        out,
        x,
        q.reshape(len(out), dim),
        words,
        groups,
        dict(zip(codes, cv, strict=True)),
        dict(zip(codes, cw, strict=True)),
    )


def _vote(sims: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    k = min(k, sims.shape[1])
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    w = np.clip(np.take_along_axis(sims, idx, 1), 1e-6, None)
    return np.asarray(np.einsum("qk,qkc->qc", w, y[idx]) / w.sum(1, keepdims=True))


def pair_features(
    corpus: Corpus,
    ref: np.ndarray,
    y_ref: np.ndarray,
    qry: np.ndarray,
    codes: Sequence[str],
) -> np.ndarray:
    """(len(qry), n codes, len(FEATURES)) features of each query passage and each code, from
    the reference passages ``ref`` (their labels ``y_ref``, one column per code)."""
    nq, nc = len(qry), y_ref.shape[1]
    out = np.zeros((nq, nc, len(FEATURES)), dtype=np.float32)
    if nq == 0 or nc == 0 or len(ref) == 0:
        return out
    sims = corpus.x[qry] @ corpus.x[ref].T
    qsims = corpus.q[qry] @ corpus.q[ref].T
    vote = _vote(sims, y_ref, K_NEIGHBOURS)
    out[..., 0] = vote
    out[..., 4] = _vote(qsims, y_ref, K_NEIGHBOURS)
    groups = corpus.groups[ref]
    for j in range(nc):
        mine = np.flatnonzero(y_ref[:, j])
        if not len(mine):
            continue
        s = sims[:, mine]
        top = -np.sort(-s, axis=1)[:, :3]
        out[:, j, 1] = top[:, 0]
        out[:, j, 2] = top.mean(1)
        out[:, j, 3] = qsims[:, mine].max(1)
        ivs = [mine[groups[mine] == g] for g in dict.fromkeys(groups[mine])]
        out[:, j, 12] = np.mean([sims[:, m].max(1) for m in ivs], axis=0)
        out[:, j, 13] = np.mean([qsims[:, m].max(1) for m in ivs], axis=0)
    out[..., 5] = corpus.x[qry] @ np.array([corpus.code_vecs[c] for c in codes]).T
    names = [corpus.code_words[c] for c in codes]
    for a, i in enumerate(qry):
        w = corpus.words[i]
        out[a, :, 6] = [len(w & cw) / len(cw) if cw else 0.0 for cw in names]
    out[..., 7] = np.log((y_ref.sum(0) + 1) / (len(ref) + 2))
    n_ivs = len(set(groups))
    out[..., 8] = [len(set(groups[y_ref[:, j] > 0])) / n_ivs for j in range(nc)]
    coded = (y_ref.sum(1, keepdims=True) > 0).astype(float)
    out[..., 9] = _vote(sims, coded, K_NEIGHBOURS)
    out[..., 10] = np.argsort(np.argsort(-vote, axis=1, kind="stable"), axis=1)
    out[..., 11] = np.log1p([len(corpus.passages[i].text.split()) for i in qry])[:, None]
    return out


def learnable(
    corpus: Corpus,
    rows: np.ndarray,
    min_interviews: int,
    min_examples: int,
) -> tuple[tuple[str, ...], dict[str, int]]:
    """The codes the passages ``rows`` teach (sorted), and the rest: code -> passages."""
    n = Counter(c for i in rows for c in corpus.passages[i].codes)
    ivs: dict[str, set[str]] = {}
    for i in rows:
        for c in corpus.passages[i].codes:
            ivs.setdefault(c, set()).add(corpus.passages[i].interview_id)
    ok = tuple(sorted(c for c in n if n[c] >= min_examples and len(ivs[c]) >= min_interviews))
    return ok, {c: n[c] for c in sorted(n) if c not in ok}


_CACHE: dict[tuple[str, str], Corpus] = {}
_LOCK = threading.Lock()


def corpus_of(index: Index, embedder: Any = None) -> Corpus:
    """The passages of ``index`` with their vectors (the questions and code names are embedded
    once per index generation and kept)."""
    key = (str(index.settings.index_dir), index.generation)
    with _LOCK:
        if key not in _CACHE:
            from .embedding import Embedder

            emb = embedder or Embedder.from_settings(index.settings)
            _CACHE.clear()
            _CACHE[key] = build_corpus(index, emb)
        return _CACHE[key]
