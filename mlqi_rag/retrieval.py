"""Find the turns that answer a question: dense + BM25, fused, code-aware and diverse.

Dense retrieval finds paraphrases ("drop incomplete rows" for "missing values"); BM25 finds the
rare exact words researchers search for. Codes that researchers applied are a strong signal, so a
question that names a code (or its words) lifts the chunks carrying it, while uncoded transcripts
still compete on their text. A cap per interview keeps one long interview from filling the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .embedding import Embedder
from .errors import QuestionError
from .index import Index
from .names import CorpusNames
from .question import (
    FRAMING_WORDS,
    asks_for_interviews,
    codes_named,
    interviews_named,
    topic_of,
    validate_question,
)
from .settings import Settings
from .types import Chunk, Hit, Role, Turn, interview_order

FUSIONS = ("rrf", "score")


@dataclass(frozen=True)
class Filters:
    interviews: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    codes_mode: str = "any"  # any | all
    roles: tuple[Role, ...] = ("participant",)
    labels: tuple[str, ...] = ()
    # With a coder, ``codes`` match that coder's own codes (``Chunk.coded``), not the reader's.
    coder: str = ""

    def allows(self, c: Chunk) -> bool:
        if self.interviews and c.interview_id not in self.interviews:
            return False
        if self.roles and c.role not in self.roles:
            return False
        if self.labels and c.label not in self.labels:
            return False
        if self.codes:
            have = set(c.codes_by(self.coder) if self.coder else c.codes)
            if self.codes_mode == "all" and not set(self.codes) <= have:
                return False
            if self.codes_mode != "all" and not have & set(self.codes):
                return False
        return True

    def where(self) -> dict[str, Any] | None:
        """The same filter as a Chroma ``where`` clause, so the vector search applies it."""
        clauses: list[dict[str, Any]] = []
        if self.interviews:
            clauses.append({"interview_id": {"$in": list(self.interviews)}})
        if self.roles:
            clauses.append({"role": {"$in": list(self.roles)}})
        if self.labels:
            clauses.append({"label": {"$in": list(self.labels)}})
        if self.codes and not self.coder:  # a coder's codes are not in the metadata: post-filter
            code_clauses = [{"codes": {"$contains": code}} for code in self.codes]
            if len(code_clauses) == 1:
                clauses.append(code_clauses[0])
            else:
                clauses.append({"$and" if self.codes_mode == "all" else "$or": code_clauses})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


@dataclass(frozen=True)
class RetrievalResult:
    question: str
    hits: tuple[Hit, ...]
    matched_codes: tuple[str, ...] = ()
    unknown_terms: tuple[str, ...] = ()  # distinctive question words found in no transcript
    searched: tuple[str, ...] = ()  # interviews eligible under the filters
    best_similarity: float = 0.0
    best_keyword: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # sources that changed since indexing (left out)
    filters: Filters = field(default_factory=Filters)  # as applied (a named interview scopes)
    query_vector: np.ndarray | None = None  # the question's embedding, reused by the scan
    # chunks the filters allow (index positions), reused by the scan
    allowed: np.ndarray | None = field(default=None, repr=False, compare=False)


def _close(name: str, known: Sequence[str]) -> str:
    from rapidfuzz import process

    found = [m[0] for m in process.extract(name, list(known), limit=3, score_cutoff=60)]
    return f"; did you mean {', '.join(found)}?" if found else ""


def check_filters(index: Index, filters: Filters) -> None:
    """Refuse a filter that names nothing in the index, instead of answering from nothing.

    "Not in the interviews" must mean the interviews were searched and are silent, never that an
    interview id or code was mistyped.
    """
    known_ivs = tuple(index.interviews)
    if unknown := [i for i in filters.interviews if i not in index.interviews]:
        raise QuestionError(
            f"unknown interview {', '.join(unknown)}: the index holds "
            f"{', '.join(sorted(known_ivs, key=interview_order))}"
        )
    if filters.coder:
        coders = index_coders(index)
        if filters.coder not in coders:
            raise QuestionError(
                f"unknown coder {filters.coder!r}; known: {', '.join(coders) or 'none'}"
                + ("" if coders else " (no interview in this corpus has coded copies)")
            )
        if not any(c.coded for c in index.chunks):  # built before chunks kept each coder's codes
            raise QuestionError(
                f"the index at {index.settings.index_dir} has no per-coder codes — "
                "run `mlqi-rag index --force` to rebuild it"
            )
    if filters.codes:
        counts = (
            index.code_counts() if not filters.coder else coder_code_counts(index, filters.coder)
        )
        if not counts:
            raise QuestionError(
                f"--code {filters.codes[0]}: no interview in this corpus carries codes "
                "(the plain transcripts are uncoded)"
            )
        if unknown := [c for c in filters.codes if c not in counts]:
            raise QuestionError(
                f"unknown code {unknown[0]!r}{_close(unknown[0], tuple(counts))} "
                f"({len(counts)} codes in this corpus)"
            )
    if filters.labels:
        labels = {iv.label for iv in index.interviews.values()}
        if unknown := [lb for lb in filters.labels if lb not in labels]:
            raise QuestionError(
                f"unknown label/coder {unknown[0]!r}; known: {', '.join(sorted(labels - {''}))}"
            )


def index_coders(index: Index) -> tuple[str, ...]:
    """Every coder of the indexed interviews by name, the reconciled copy ("moderation") last."""
    names = {c for iv in index.interviews.values() for c in iv.coders}
    return tuple(sorted(names, key=lambda c: (c == "moderation", c.lower())))


def coder_code_counts(index: Index, coder: str) -> dict[str, int]:
    """Like ``Index.code_counts``, over one coder's own codes."""
    counts: dict[str, int] = {}
    for c in index.chunks:
        for code in c.codes_by(coder):
            counts[code] = counts.get(code, 0) + 1
    return dict(sorted(counts.items()))


def _ranks(positions: Sequence[int]) -> dict[int, int]:
    return {p: r for r, p in enumerate(positions, start=1)}


class Retriever:
    """Hybrid retrieval over a loaded ``Index``; the embedder is passed in, never global."""

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        settings: Settings | None = None,
        terms: CorpusNames | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings or index.settings
        self.terms = terms or CorpusNames(index)  # lazy: read only when a question names things
        self._all_codes = tuple(index.code_counts())
        self._masks: dict[Filters, np.ndarray] = {}

    def mask(self, filters: Filters) -> np.ndarray:
        """The chunks ``filters`` allow, computed once per filter set (the app asks with the
        same few filters over and over)."""
        got = self._masks.get(filters)
        if got is None:
            chunks = self.index.chunks
            got = np.fromiter((filters.allows(c) for c in chunks), dtype=bool, count=len(chunks))
            got.setflags(write=False)
            if len(self._masks) > 256:
                self._masks.clear()
            self._masks[filters] = got
        return got

    def retrieve(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        with_context: bool = False,
    ) -> RetrievalResult:
        s = self.settings
        q = validate_question(question)
        if k is not None and k < 1:
            raise QuestionError(f"number of passages must be at least 1 (got {k})")
        k = k or s.top_k
        filters = filters or Filters()
        check_filters(self.index, filters)
        if not filters.interviews and (named := interviews_named(q, tuple(self.index.interviews))):
            # "In interview 17, ..." scopes the search the way a researcher means it.
            filters = replace(filters, interviews=named)
        chunks = self.index.chunks
        mask = self.mask(filters)
        searched = tuple(dict.fromkeys(chunks[int(i)].interview_id for i in np.flatnonzero(mask)))
        if not mask.any():
            return RetrievalResult(
                q, (), searched=searched, settings=self.describe(k, filters), filters=filters
            )
        n = min(max(s.candidates, k * 3), int(mask.sum()))

        # "Which interviewees talk about X?" is ranked by X: the framing words pull the vector
        # towards talk about interviewees (dev questions on the 36 transcripts: interview
        # recall@10 0.862 → 0.877), and their words ("which", "interviewees", "say") towards
        # the interviewer's turns, outscoring a name said once in a long answer ("MLflow").
        # Keywords by the topic too: dev interview recall@10 0.782 → 0.805, MRR 0.608 → 0.623;
        # the seeds' retrieval is unchanged. The scan reuses both vectors from the embedder's
        # cache.
        topic = topic_of(q)
        qv, dv = self.embedder.embed_questions([q, topic])  # one vector when they are equal
        # Exact cosine over the in-memory chunk vectors (the same vectors Chroma stores): at
        # this scale a matrix product beats a round trip to the store, and no filter needs to
        # be expressible as Chroma metadata.
        dense = self._dense_masked(dv, n, mask)
        keyword = np.where(mask, self.index.keyword_scores(topic), 0.0)
        kw_order = [int(i) for i in np.argsort(-keyword, kind="stable")[:n] if keyword[i] > 0]

        sims = {pos: sim for pos, sim in dense}
        fused = self._fuse([p for p, _ in dense], sims, kw_order, keyword)
        if s.fusion == "rrf" and s.name_weight:
            for pos, r in _ranks(self._saying_names(q, mask, keyword, n)).items():
                fused[pos] = fused.get(pos, 0.0) + s.name_weight / (s.rrf_k + r)
        matched = codes_named(q, self._all_codes)
        if matched and s.code_boost:
            for pos in fused:
                if set(chunks[pos].codes) & set(matched):
                    fused[pos] *= 1.0 + s.code_boost
        order = sorted(fused, key=lambda p: -fused[p])
        # A "which interviewees…" question lists interviews: one passage each, as many as fit.
        cap = 1 if asks_for_interviews(q) else s.per_interview_cap
        picked = self._diverse(order, k, single_interview=len(filters.interviews) == 1, cap=cap)
        hits = tuple(
            Hit(
                chunk=chunks[p],
                score=fused[p],
                dense=sims[p] if p in sims else float(self.index.vectors[p] @ dv),
                rank=r,
                context=self.exchange(chunks[p]) if with_context else (),
            )
            for r, p in enumerate(picked, start=1)
        )
        return RetrievalResult(
            question=q,
            hits=hits,
            matched_codes=matched,
            unknown_terms=self.index.unknown_terms(q, FRAMING_WORDS),
            searched=searched,
            best_similarity=max(sims.values(), default=0.0),
            best_keyword=float(keyword.max()) if len(keyword) else 0.0,
            settings=self.describe(k, filters),
            filters=filters,
            query_vector=qv,
            allowed=mask,
        )

    def _dense_masked(self, qv: np.ndarray, n: int, mask: np.ndarray) -> list[tuple[int, float]]:
        sims = np.where(mask, self.index.vectors @ qv, -np.inf)
        if n < len(sims):
            top = np.argpartition(-sims, n - 1)[:n]
            order = top[np.argsort(-sims[top], kind="stable")]
        else:
            order = np.argsort(-sims, kind="stable")
        return [(int(p), float(sims[p])) for p in order if mask[p]]

    def _fuse(
        self,
        dense_order: list[int],
        sims: dict[int, float],
        kw_order: list[int],
        keyword: np.ndarray,
    ) -> dict[int, float]:
        s = self.settings
        if s.fusion not in FUSIONS:
            raise QuestionError(f"unknown fusion {s.fusion!r}; choose one of {', '.join(FUSIONS)}")
        fused: dict[int, float] = {}
        if s.fusion == "rrf":
            for weight, ranks in ((1.0, _ranks(dense_order)), (s.keyword_weight, _ranks(kw_order))):
                for pos, r in ranks.items():
                    fused[pos] = fused.get(pos, 0.0) + weight / (s.rrf_k + r)
            return fused
        # Normalised-score fusion: each list scaled to [0, 1] by its own best score.
        top_kw = float(keyword[kw_order[0]]) if kw_order else 0.0
        lo = min(sims.values(), default=0.0)
        hi = max(sims.values(), default=1.0)
        for pos in {*dense_order, *kw_order}:
            d = (sims[pos] - lo) / (hi - lo) if pos in sims and hi > lo else 0.0
            kw = float(keyword[pos]) / top_kw if top_kw else 0.0
            w = s.keyword_weight / (1.0 + s.keyword_weight)
            fused[pos] = (1.0 - w) * d + w * kw
        return fused

    def _saying_names(self, q: str, mask: np.ndarray, keyword: np.ndarray, n: int) -> list[int]:
        """The passages that say a name the question asks about ("MLflow"), as a transcriber
        may have written it ("ML flow", which BM25's "mlflow" misses), best BM25 first: a third
        ranking for fusion, weighed by ``name_weight``. A name most interviewees say ("ML",
        and "IT", which matches "it") picks nothing out and is left out. A name the transcript
        misheard ("sharp values" for SHAP values, ``CorpusNames.heard``) ranks here too."""
        saying: set[int] = set()
        for name in self.terms.distinctive_names(q):
            saying |= self.terms.chunks_mentioning(name)
        for by_interview in self.terms.heard(q).values():
            for form in {f for forms in by_interview.values() for f in forms}:
                saying |= self.terms.chunks_mentioning(form)
        ranked = sorted((p for p in saying if mask[p]), key=lambda p: (-keyword[p], p))
        return ranked[:n]

    def _diverse(self, order: list[int], k: int, single_interview: bool, cap: int) -> list[int]:
        if single_interview or cap <= 0:
            return order[:k]
        picked: list[int] = []
        overflow: list[int] = []
        per: dict[str, int] = {}
        for pos in order:
            iv = self.index.chunks[pos].interview_id
            if per.get(iv, 0) < cap:
                picked.append(pos)
                per[iv] = per.get(iv, 0) + 1
            else:
                overflow.append(pos)
            if len(picked) == k:
                return picked
        # Fewer interviews than k / cap: fill from the best of the capped ones.
        return picked + overflow[: k - len(picked)]

    def exchange(self, chunk: Chunk, before: int = 1, after: int = 1) -> tuple[Turn, ...]:
        """The neighbouring turns of a hit, for display (never counted as hits)."""
        turns = self.index.interviews[chunk.interview_id].turns
        lo = max(0, chunk.turn_index - before)
        return turns[lo : chunk.turn_index + after + 1]

    def describe(self, k: int, filters: Filters) -> dict[str, Any]:
        s = self.settings
        return {
            "k": k,
            "fusion": s.fusion,
            "rrf_k": s.rrf_k,
            "keyword_weight": s.keyword_weight,
            "code_boost": s.code_boost,
            "name_weight": s.name_weight,
            "per_interview_cap": s.per_interview_cap,
            "candidates": s.candidates,
            "interviews": list(filters.interviews),
            "codes": list(filters.codes),
            "codes_mode": filters.codes_mode,
            "roles": list(filters.roles),
            "labels": list(filters.labels),
            "coder": filters.coder,
            "index": self.index.generation,
            "fingerprint": s.index_fingerprint(),
            "settings_hash": s.settings_hash(),
        }
