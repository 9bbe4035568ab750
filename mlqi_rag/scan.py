"""The corpus-wide evidence scan: every participant passage of every interview, weighed.

Retrieval returns the ten best passages; a researcher asks which of the 36 interviews speak to a
question, and "k of N" must be true of all N. So after retrieval, every quotable participant span
(embedded at index time) and every participant turn in the filtered corpus is scored against the
question: dense similarity, BM25, coverage of the question's distinctive terms, and the codes the
researchers applied. Those scores are reduced to a few features per interview, and a small
calibrated model (two logistic regressions fitted on labelled question–interview pairs, see
``calibration``) decides whether each interview *discusses* the question, only *touches on* it,
or is *silent*. Nothing is embedded here but the question itself (and a "which interviewees…"
question's topic without that framing, see ``question.topic_of``).

A question that names a tool or method occurring in no transcript ("Snorkel") is caught before
any of that: similar-sounding passages are then about something else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .calibration import FEATURES, ScanModel, lists_by_count, question_features
from .embedding import Embedder
from .errors import SourceChangedError
from .feedback import Feedback
from .index import Index
from .language import french_keywords
from .question import asks_for_interviews, codes_named, interviews_named, topic_of
from .quote_choice import SHIPPED, QuoteWeights, components
from .retrieval import RetrievalResult
from .scan_result import InterviewEvidence, Scan, Verdict
from .spans import Passages
from .terms import CorpusTerms, says
from .types import interview_order


@dataclass
class Scanner:
    """Scores a question against the whole (filtered) corpus; built once per loaded index."""

    index: Index
    embedder: Embedder
    model: ScanModel
    quote_weights: QuoteWeights = SHIPPED
    _fr_cache: dict[str, np.ndarray] = field(default_factory=dict)
    shared_terms: CorpusTerms | None = None  # the retriever's too (``Pipeline``): read once

    # ---- what the index gives once ---------------------------------------------------------

    @cached_property
    def _codes(self) -> tuple[str, ...]:
        return tuple(self.index.code_counts())

    @cached_property
    def _participant(self) -> np.ndarray:
        return np.array([c.role == "participant" for c in self.index.chunks], dtype=bool)

    @cached_property
    def terms(self) -> CorpusTerms:
        return self.shared_terms or CorpusTerms(self.index)

    def absent_names(self, question: str) -> tuple[str, ...]:
        return self.terms.absent_names(question)

    def absent_words(self, question: str) -> tuple[str, ...]:
        return self.terms.absent_words(question)

    # ---- the scan --------------------------------------------------------------------------

    def scan(self, result: RetrievalResult, query_vector: np.ndarray | None) -> Scan:
        index = self.index
        q = result.question
        absent = self.absent_names(q)
        ruled = self.terms.ruled_out_by_name(q, absent)
        searched = [iv for iv in index.interviews if iv in set(result.searched)]
        outside = self._said_outside(q, searched)
        if query_vector is None or result.allowed is None:  # the filters leave nothing
            return Scan(q, (), absent, ruled, model=self.model.digest, said_outside=outside)
        allowed = result.allowed & self._participant
        other = tuple(iv for iv in searched if index.interviews[iv].language != "en")
        features, quotes = self._features(q, query_vector, allowed, searched, other)
        names = list(features)
        x = np.array([[features[iv][f] for f in FEATURES] for iv in names], dtype=np.float64)
        p_d, p_t = self.model.predict(x) if len(names) else (np.zeros(0), np.zeros(0))
        # "Which interviewees use SHAP?": one whose transcript has "sharp values" says it, for
        # the rule that lists those who say the name (``ScanModel.name_listed``). The fitted
        # features stay the name as written: the probabilities are the model's own.
        heard = self.terms.heard(q) if len(names) and lists_by_count(x) else {}
        said_share = self.terms.name_said(q, names, heard)
        for iv in names:  # kept with the features: calibration replays the rules from them
            features[iv]["name_said"] = said_share[iv]
        saying = np.array([said_share[iv] for iv in names], dtype=np.float64)
        said_in = self.terms.said_in(q, heard)
        chosen = self.model.discussing(x, p_d, said_in, saying)
        # "Which participants mention LightGBM?": an interview listed for saying it is quoted
        # saying it, not with a stronger passage about something else.
        listed = self.model.name_listed(x, said_in, saying)
        asked = self.terms.telling_names(q) if listed.any() else ()
        evidence = []
        for i, iv in enumerate(names):
            bar = self.model.threshold(features[iv]["asks_which"] > 0)
            verdict: Verdict = (
                "discusses"
                if chosen[i]
                else "touches"
                if p_t[i] >= min(self.model.t_touches, bar)
                else "silent"
            )
            misheard = tuple(f for forms in heard.values() for f in forms.get(iv, ()))
            said = (*asked, *misheard) if listed[i] else ()
            scored = self.quote_weights.score(quotes[iv][1])
            best = self.best_quotes(iv, quotes[iv][0], scored, said)
            p = (float(p_d[i]), float(p_t[i]))
            ev = InterviewEvidence(iv, verdict, *p, features[iv], *best, quotes[iv], said)
            evidence.append(ev)
        evidence.sort(key=lambda e: -e.p_discusses)
        p_out = self.model.p_out_of_scope(question_features(x, p_d)) if len(names) else 0.0
        return Scan(
            question=q,
            interviews=tuple(evidence),
            absent_names=absent,
            ruled_out_by_name=ruled,
            absent_words=self.absent_words(q),
            other_language=other,
            model=self.model.digest,
            p_out_of_scope=p_out,
            t_out_of_scope=self.model.t_abstain,
            count_range=self.model.count_range(x, p_d, chosen, listed, saying)
            if len(names)
            else None,
            answered_by_name=bool(listed.any()),
            heard_as=tuple(
                (name, iv, form)
                for name, by_iv in heard.items()
                for iv, forms in by_iv.items()
                if iv in names and listed[names.index(iv)]
                for form in forms
            ),
            said_outside=outside,
        )

    def _said_outside(
        self, question: str, searched: Sequence[str]
    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The interviews a filter left out that say a distinctive name of the question: a
        researcher who searched three interviews for LightGBM learns where else it is said,
        rather than only that these three do not."""
        if len(searched) >= len(self.index.interviews):
            return ()
        inside = set(searched)
        out = []
        for name in self.terms.distinctive_names(question):
            said = self.terms.sayers(name)
            others = tuple(sorted(said - inside, key=interview_order))
            if others:
                out.append((name, others))
        return tuple(out)

    def _french_vector(self, question: str) -> np.ndarray | None:
        words = french_keywords(question)
        if not words:
            return None
        if words not in self._fr_cache:
            self._fr_cache[words] = self.embedder.embed_one(words)
        return self._fr_cache[words]

    def _features(
        self,
        question: str,
        qv: np.ndarray,
        allowed: np.ndarray,
        searched: Sequence[str],
        other_language: Sequence[str],
    ) -> tuple[dict[str, dict[str, float]], dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Each searched interview's features, and its quotable spans (rows of the span table)
        with their quote scores."""
        index = self.index
        spans = index.spans
        span_ok = allowed[spans.chunk] if len(spans) else np.zeros(0, bool)
        span_sim = np.where(span_ok, spans.vectors @ qv, -1.0)
        chunk_sim = np.where(allowed, index.vectors @ qv, -1.0)
        own_words = np.where(allowed, index.keyword_scores(question), 0.0)
        expansion = french_keywords(question) if other_language else ""
        keyword = (
            np.where(allowed, index.keyword_scores(f"{question} {expansion}"), 0.0)
            if expansion
            else own_words
        )
        # The topic's features stay in the question's own language (no French vector or words):
        # measured on the dev coverage questions, lifting interview 2 there costs more than it
        # finds, and ``span_max``/``chunk_max``/``bm25_rel`` already reach it.
        topic = topic_of(question)
        tv = qv if topic == question else self.embedder.embed_one(topic)
        topic_span = np.where(span_ok, spans.vectors @ tv, -1.0)
        # A turn that matches the topic both in meaning and in words is stronger evidence than
        # the best of each found in different turns: standardised dense + BM25, per turn.
        topic_hyb = _standard(index.vectors @ tv, allowed) + _standard(own_words, allowed)
        if other_language and (fv := self._french_vector(question)) is not None:
            ids = {index.interviews[iv].id for iv in other_language}
            in_other = np.array([c.interview_id in ids for c in index.chunks], dtype=bool)
            span_sim = np.where(
                span_ok & in_other[spans.chunk], np.maximum(span_sim, spans.vectors @ fv), span_sim
            )
            chunk_sim = np.where(
                allowed & in_other, np.maximum(chunk_sim, index.vectors @ fv), chunk_sim
            )
        passage_sim = self._passages.similarity(span_sim)
        prf_sim, fb_rows = self._feedback.dense(span_sim, span_ok, qv)
        prf_kw = self._feedback.lexical(question, fb_rows, allowed)
        best_prf = float(prf_sim.max()) if len(prf_sim) else 0.0
        best_prf_kw = float(prf_kw.max()) if len(prf_kw) else 0.0
        coverage, absent_share = self.terms.coverage(question, allowed)
        # "Which interviewees…" asks for every interview, not the best one: a fitted offset.
        asks_which = 1.0 if asks_for_interviews(question) else 0.0
        named = self.terms.name_features(question, searched)
        # "In interview 38, …": the researcher chose the interview; relative features (gaps,
        # ranks) say nothing when it is the only one searched.
        asked_about = set(interviews_named(question, tuple(index.interviews)))
        phrased = self.terms.phrase_features(question, searched)

        chunk_iv = self.terms.chunk_interview
        span_iv = chunk_iv[spans.chunk] if len(spans) else np.zeros(0, np.int32)
        iv_pos = {iv: i for i, iv in enumerate(index.interviews)}
        best_span = float(span_sim.max()) if len(span_sim) else 0.0
        best_chunk = float(chunk_sim.max()) if len(chunk_sim) else 0.0
        best_kw = float(keyword.max()) if len(keyword) else 0.0
        named_codes = set(codes_named(question, self._codes))
        quotes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        out: dict[str, dict[str, float]] = {}
        for iv in searched:
            pos = iv_pos[iv]
            rows = np.flatnonzero((span_iv == pos) & span_ok)
            cmask = (chunk_iv == pos) & allowed
            sims = span_sim[rows] if len(rows) else np.array([-1.0])
            top = np.sort(sims)[::-1][:5]
            # What the quote is chosen by (``quote_choice``): the span, its turn in meaning and
            # in words, and codes the question names.
            turns = spans.chunk[rows]
            coded = (
                np.array([bool(named_codes & set(index.chunks[c].codes)) for c in turns])
                if named_codes and len(rows)
                else np.zeros(len(rows))
            )
            quotes[iv] = (
                rows,
                components(span_sim[rows], chunk_sim[turns], keyword[turns], coded),
            )
            span_max = float(top[0])
            prf_max = float(prf_sim[rows].max()) if len(rows) else -1.0
            prf_kw_max = float(prf_kw[cmask].max()) if cmask.any() else 0.0
            kw = float(keyword[cmask].max()) if cmask.any() else 0.0
            codes = {code for c in np.flatnonzero(cmask) for code in index.chunks[c].codes}
            out[iv] = {
                "span_max": span_max,
                "span_top3": float(top[:3].mean()),
                "span_gap": span_max - best_span,
                "passage_max": float(passage_sim[rows].max()) if len(rows) else -1.0,
                "prf_max": prf_max,
                "prf_gap": prf_max - best_prf,
                "prf_bm25_rel": prf_kw_max / best_prf_kw if best_prf_kw > 0 else 0.0,
                "topic_span": float(topic_span[rows].max()) if len(rows) else -1.0,
                "topic_hyb": float(topic_hyb[cmask].max()) if cmask.any() else -10.0,
                "chunk_max": float(chunk_sim[cmask].max()) if cmask.any() else -1.0,
                "chunk_gap": (float(chunk_sim[cmask].max()) if cmask.any() else -1.0) - best_chunk,
                "bm25_rel": kw / best_kw if best_kw > 0 else 0.0,
                "bm25_log": math.log1p(kw),
                "cov_chunk": float(coverage[0][cmask].max()) if cmask.any() else 0.0,
                "cov_interview": float(coverage[1][pos]),
                "key_terms": float(coverage[2][pos]),
                "key_count": float(coverage[3][pos]),
                "strong_spans": math.log1p(int((sims >= best_span - 0.1).sum())),
                "code": 1.0 if named_codes & codes else 0.0,
                "other_language": 1.0 if iv in other_language else 0.0,
                "absent_share": absent_share,
                "asks_which": asks_which,
                # A "which…" question is about its topic words: the fitted weight of this
                # product lets the topic count more there than for a "how" question.
                "which_key": asks_which * float(coverage[2][pos]),
                **named[iv],
                **phrased[iv],
                # "Which interviewees mention LightGBM?" is answered by saying the name.
                "which_name": asks_which * named[iv]["name_hit"],
                "named_interview": 1.0 if iv in asked_about else 0.0,
            }
        # Where the interview stands among the searched ones (0 = strongest span), and how far
        # it stands out of the crowd: a topic several interviews discuss lifts them above the
        # rest, whatever the question's absolute similarity.
        ranked = sorted(out, key=lambda iv: -out[iv]["span_max"])
        for rank, iv in enumerate(ranked):
            out[iv]["rank_frac"] = rank / max(1, len(ranked) - 1)
        for name in ("topic_span", "topic_hyb"):
            best = max((out[iv][name] for iv in out), default=0.0)
            for iv in out:
                out[iv][f"{name}_gap"] = out[iv][name] - best
        for name in ("span_max", "prf_max"):
            vals = np.array([out[iv][name] for iv in out])
            mu, sd = (float(vals.mean()), float(vals.std())) if len(vals) else (0.0, 0.0)
            for iv in out:
                out[iv][name.replace("_max", "_z")] = (out[iv][name] - mu) / sd if sd > 0 else 0.0
        return out, quotes

    def best_quotes(
        self, interview_id: str, rows: np.ndarray, quote: np.ndarray, names: Sequence[str]
    ) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The interview's five best spans (rows of the span table) and their quote scores;
        with ``names``, the spans that say one of them come first (see ``_name_first``)."""
        pick = self._name_first(interview_id, rows, quote, names) if names else None
        if pick is None:
            pick = np.argsort(-quote)[:5]
        return tuple(int(rows[i]) for i in pick), tuple(float(quote[i]) for i in pick)

    def _name_first(
        self, interview_id: str, rows: np.ndarray, quote: np.ndarray, names: Sequence[str]
    ) -> np.ndarray | None:
        """Positions in ``rows`` of the spans that say one of ``names``, best quote first (None
        when no span says one): the interview is quoted saying it, not with a stronger passage
        about something else. Only turns that say a name are read span by span."""
        index, spans = self.index, self.index.spans
        saying = {
            int(c) for c in set(spans.chunk[rows].tolist()) if says(index.chunks[c].text, names)
        }
        if not saying:
            return None
        try:
            source = index.source_text(interview_id)
        except SourceChangedError:  # the answer reports it; the scan keeps its order
            return None
        order = np.argsort(-quote, kind="stable")
        said = [
            int(i)
            for i in order
            if int(spans.chunk[rows[i]]) in saying
            and says(source[int(spans.start[rows[i]]) : int(spans.end[rows[i]])], names)
        ]
        return np.array(said[:5]) if said else None

    @cached_property
    def _passages(self) -> Passages:
        return Passages.of(self.index.spans)

    @cached_property
    def _feedback(self) -> Feedback:
        return Feedback(self.index, self.terms.chunk_interview)


def _standard(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` standardised over the entries ``mask`` allows (-10 elsewhere), so that a
    cosine and a BM25 score can be added."""
    if not mask.any():
        return np.full(len(values), -10.0)
    kept = values[mask]
    sd = float(kept.std()) or 1.0
    return np.where(mask, (values - float(kept.mean())) / sd, -10.0)
