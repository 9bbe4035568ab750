"""Pseudo-relevance feedback for the evidence scan: the corpus's own words for the question.

A researcher asks about "class imbalance"; the interviews say "the bulk of it would belong just
to one vendor". The spans that match the question best say the topic in the interviews' words,
so the question is moved towards them (dense) and their shared rare words are added to its BM25
query (lexical, RM3-like). The scan turns the two similarities into features (``prf_*``); the
fitted model decides how much they count.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .index import Index
from .stores import keyword_tokens

PRF_SPANS = 10  # feedback spans: the corpus's best matches, at most PRF_PER_INTERVIEW from one
PRF_PER_INTERVIEW = 2
PRF_TERMS = 10  # words the feedback turns add to the question's BM25 query


@dataclass
class Feedback:
    """Built once per loaded index (it caches each BM25 term's document frequency)."""

    index: Index
    chunk_interview: np.ndarray  # interview position of every chunk
    _df: np.ndarray | None = field(default=None, repr=False)

    @property
    def df(self) -> np.ndarray:
        """Chunks each BM25 term occurs in (its column length in the score matrix)."""
        if self._df is None:
            self._df = np.diff(np.asarray(self.index.bm25.scores["indptr"]))
        return self._df

    def dense(
        self, span_sim: np.ndarray, span_ok: np.ndarray, qv: np.ndarray
    ) -> tuple[np.ndarray, list[int]]:
        """Every span's similarity to the question moved towards the best-matching spans (-1
        where not searched), and those spans' rows. At most ``PRF_PER_INTERVIEW`` come from one
        interview, so one talkative interview does not become the topic."""
        spans = self.index.spans
        if not span_ok.any():
            return np.full(len(span_sim), -1.0), []
        span_iv = self.chunk_interview[spans.chunk]
        picked: list[int] = []
        per: dict[int, int] = {}
        for row in np.argsort(-span_sim)[: PRF_SPANS * PRF_PER_INTERVIEW * 4]:
            if not span_ok[row] or per.get(int(span_iv[row]), 0) >= PRF_PER_INTERVIEW:
                continue
            per[int(span_iv[row])] = per.get(int(span_iv[row]), 0) + 1
            picked.append(int(row))
            if len(picked) == PRF_SPANS:
                break
        centroid = spans.vectors[picked].mean(axis=0)
        moved = qv / np.linalg.norm(qv) + centroid / max(float(np.linalg.norm(centroid)), 1e-9)
        moved = moved / np.linalg.norm(moved)
        return np.where(span_ok, spans.vectors @ moved, -1.0), picked

    def lexical(self, question: str, rows: Sequence[int], allowed: np.ndarray) -> np.ndarray:
        """BM25 of every chunk (0 where not allowed) for the question plus the words that the
        feedback turns of at least two interviews share, weighted by how rare they are. "AB
        test" reaches a question that says "splitting live users into groups" once the dense
        feedback has found one interview saying it both ways."""
        index = self.index
        vocab = index.bm25.vocab_dict
        chunk_ids = list(dict.fromkeys(int(index.spans.chunk[r]) for r in rows))
        n = len(index.chunks)
        if not chunk_ids:
            return np.zeros(n)
        docs = keyword_tokens([index.chunks[c].embed_text for c in chunk_ids])
        asked = keyword_tokens([question])[0]
        weight: dict[str, float] = {}
        seen_in: dict[str, set[str]] = {}
        for c, doc in zip(chunk_ids, docs, strict=True):
            for t, k in Counter(doc).items():
                if t in asked or t not in vocab:
                    continue
                idf = math.log((n + 1) / (int(self.df[vocab[t]]) + 1))
                weight[t] = weight.get(t, 0.0) + k / len(doc) * idf
                seen_in.setdefault(t, set()).add(index.chunks[c].interview_id)
        shared = [t for t in weight if len(seen_in[t]) >= 2]
        extra = sorted(shared, key=lambda t: -weight[t])[:PRF_TERMS]
        known = [t for t in dict.fromkeys([*asked, *extra]) if t in vocab]
        if not known:
            return np.zeros(n)
        return np.where(allowed, np.asarray(index.bm25.get_scores(known)), 0.0)
