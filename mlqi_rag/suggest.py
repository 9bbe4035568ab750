"""Suggested codes for participant passages no researcher coded, scored against the researchers.

What is learned: a passage (participant paragraph) has code X when any researcher applied X
(moderation included); the other passages of a coded interview are negatives. A code needs
``MIN_EXAMPLES`` passages (``rare_codes``: the rest are reported, never suggested).

The model (measured by leave-one-interview-out over the five coded interviews, with each fold's
threshold chosen on its training interviews only: ``suggest_eval``, ``eval/results/suggest.md``):

* **one pooled classifier over (passage, code) pairs**, so a code with few examples borrows the
  weights the others taught: logistic regression on five features of ``suggest_features``
  (similarity-weighted vote of the 10 nearest passages; cosine to the code's name in words and
  the share of its stemmed words in the passage; share of training interviews with the code;
  cosine of the *interviewer question before the passage* to the questions before the code's
  examples, averaged over the interviews that used it). A training pair's features come from
  the other training interviews only. All 14 features or gradient boosting ranked no better and
  chose worse thresholds (held-out precision 0.05 and 0.08).
* **Platt scaling on out-of-fold scores with a per-code intercept and a per-code slope of the
  question feature** (L2-shrunk): answers to a guide question (``last-question-answers``) are
  recognised by their question, other codes by their words. Without the slope held-out
  precision was 0.11; with one scaling for all codes 0.13.
* **at most ``TOP_K`` codes a passage**; **codes of one training interview are allowed** (their
  per-code intercept learns how rarely they recur): requiring two interviews gave 0.22.
* ``DEFAULT_MIN_CONFIDENCE``: the threshold rule of ``suggest_eval.choose_threshold`` on the
  LOIO confidences of all five interviews (the fold thresholds were 0.20-0.29).

Result (held out): passage precision 0.42 on 24 suggestions (recall 0.03), interview precision
0.80; the old kNN baseline 0.02 (its own default: 0.10 on 21). The 0.6 target is not reached,
and Cohen's kappa against each coder (about 0.1 at interview level) stays far below the
human-human kappa (0.38-0.55): 51 of 84 codes occur in too few passages to learn, most of the
rest in one interview, and even a perfect model of the learnable codes would score 0.15-0.24.
Suggestions are for a researcher to review, never codes.

A suggestion is labelled with coder ``"suggested"`` (``with_suggestions``), in memory beside the
researchers' codes; it is never written into a transcript.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .errors import MlqiError
from .index import Index
from .suggest_features import FEATURES, Corpus, Passage, corpus_of, learnable, pair_features
from .types import Interview

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "SUGGESTED",
    "Example",
    "Passage",
    "Suggestion",
    "coded_interviews",
    "corpus_of",
    "rare_codes",
    "suggest",
    "with_suggestions",
]

SUGGESTED = "suggested"
MIN_INTERVIEWS = 1  # a code is learned from this many interviews or more
MIN_EXAMPLES = 5  # ... and this many passages or more
TOP_K = 2  # codes suggested per passage at most
USED = ("knn_vote", "name_cos", "name_overlap", "interviews", "iv_q_max_cos")
SLOPES = ("iv_q_max_cos",)
DEFAULT_MIN_CONFIDENCE = 0.27  # suggest_eval.choose_threshold on all 5 interviews: 0.270
EXAMPLES_SHOWN = 3
SNIPPET = 240
CLASSIFIERS = ("logistic", "hgb")


# ---- the pooled pairwise model ------------------------------------------------------------------


def _classifier(kind: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "hgb":
        return HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, max_depth=3, early_stopping=False, random_state=0
        )
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    raise MlqiError(f"unknown classifier {kind!r} (choices: {', '.join(CLASSIFIERS)})")


def _score(clf: Any, f: np.ndarray) -> np.ndarray:
    if hasattr(clf, "decision_function"):
        return np.asarray(clf.decision_function(f))
    p = np.clip(clf.predict_proba(f)[:, 1], 1e-6, 1 - 1e-6)
    return np.asarray(np.log(p / (1 - p)))


def _calibration_features(
    s: np.ndarray, code: np.ndarray, n: int, per_code: bool, raw: np.ndarray
) -> np.ndarray:
    """The pair score and (``per_code``) its code, one-hot, and each of the ``raw`` (standardised)
    features times that one-hot: the scaling learns which codes the classifier over- or
    under-rates on interviews it has not seen, and which feature speaks for which code
    (``last-question-answers``: the question), shrunk by the L2 penalty."""
    cols = [s.reshape(-1, 1)]
    if per_code:
        hot = np.eye(n)[code]
        cols.append(hot)
        cols += [hot * raw[:, [k]] for k in range(raw.shape[1])]
    return np.hstack(cols)


@dataclass
class Model:
    """A pair classifier fitted on the training passages, Platt-scaled on out-of-fold scores."""

    codes: tuple[str, ...]
    rare: dict[str, int]  # code -> passages: too rare to learn, never suggested
    corpus: Corpus
    train: np.ndarray  # rows of ``corpus``
    y: np.ndarray  # train x codes
    clf: Any
    platt: Any
    top_k: int
    columns: tuple[int, ...]
    per_code: bool = True
    slopes: tuple[int, ...] = ()  # feature columns with a slope per code in the scaling
    centre: np.ndarray | None = None  # their mean and spread in the scaling's training pairs
    spread: np.ndarray | None = None

    def _raw(self, f: np.ndarray) -> np.ndarray:
        if not self.slopes or self.centre is None or self.spread is None:
            return np.zeros((len(f), 0))
        return np.asarray((f[:, self.slopes] - self.centre) / self.spread)

    def proba(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated confidence per (row, code); all but each row's ``top_k`` codes are 0."""
        rows = np.asarray(rows, dtype=int)
        if not self.codes or not len(rows):
            return np.zeros((len(rows), len(self.codes)))
        f = pair_features(self.corpus, self.train, self.y, rows, self.codes)
        flat = f.reshape(-1, len(FEATURES))
        s = _score(self.clf, flat[:, self.columns])
        code = np.tile(np.arange(len(self.codes)), len(rows))
        cal = _calibration_features(s, code, len(self.codes), self.per_code, self._raw(flat))
        p = np.asarray(self.platt.predict_proba(cal)[:, 1]).reshape(len(rows), len(self.codes))
        if self.top_k and p.shape[1] > self.top_k:
            cut = -np.sort(-p, axis=1)[:, self.top_k - 1 : self.top_k]
            p = np.where(p >= cut, p, 0.0)
        return p

    def examples(self, row: int, code: str) -> tuple[Example, ...]:
        j = self.codes.index(code)
        sims = self.corpus.x[self.train] @ self.corpus.x[row]
        best = [i for i in np.argsort(-sims) if self.y[i, j]][:EXAMPLES_SHOWN]
        return tuple(
            Example(
                (p := self.corpus.passages[self.train[i]]).interview_id,
                p.turn_index,
                p.text[:SNIPPET],
                ", ".join(p.coders_of(code)),
                float(sims[i]),
            )
            for i in best
        )


def fit(
    corpus: Corpus,
    train: np.ndarray,
    classifier: str = "logistic",
    min_interviews: int = MIN_INTERVIEWS,
    min_examples: int = MIN_EXAMPLES,
    top_k: int = TOP_K,
    features: Sequence[str] = USED,
    per_code: bool = True,
    slopes: Sequence[str] = SLOPES,
    calibration_c: float = 1.0,
) -> Model:
    """Fit on the passages ``train`` (rows of ``corpus``, several interviews).

    A training pair's features come from the *other* training interviews only (as a new
    interview's would), and the Platt scaling from scores out of fold, one training interview
    out at a time, so a confidence speaks of interviews the model has not seen.
    """
    from sklearn.linear_model import LogisticRegression

    train = np.asarray(train, dtype=int)
    codes, rare = learnable(corpus, train, min_interviews, min_examples)
    if not codes:
        raise MlqiError("no coded passages to learn from")
    cols = tuple(FEATURES.index(f) for f in features)
    y = corpus.labels(train, codes)
    groups = corpus.groups[train]
    feats, labels, owner, code_ix = [], [], [], []
    for g in dict.fromkeys(groups):
        held = groups == g
        ref_y = y[~held]
        f = pair_features(corpus, train[~held], ref_y, train[held], codes)
        known = np.flatnonzero(ref_y.sum(0) > 0)  # a code the others lack says nothing here
        feats.append(f[:, known].reshape(-1, len(FEATURES)))
        labels.append(y[held][:, known].ravel())
        owner.append(np.full(labels[-1].shape, g, dtype=object))
        code_ix.append(np.tile(known, int(held.sum())))
    x_all, y_all, o_all = np.concatenate(feats), np.concatenate(labels), np.concatenate(owner)
    c_all = np.concatenate(code_ix)
    if len(set(y_all)) < 2:
        raise MlqiError("no coded passages to learn from")
    oof = np.zeros(len(y_all))
    for g in dict.fromkeys(o_all):
        held = o_all == g
        if len(set(y_all[~held])) < 2:
            continue
        clf = _classifier(classifier).fit(x_all[~held][:, cols], y_all[~held])
        oof[held] = _score(clf, x_all[held][:, cols])
    sl = tuple(FEATURES.index(f) for f in slopes) if per_code else ()
    centre, spread = x_all[:, sl].mean(0), x_all[:, sl].std(0) + 1e-6
    raw = (x_all[:, sl] - centre) / spread
    platt = LogisticRegression(C=calibration_c, max_iter=2000).fit(
        _calibration_features(oof, c_all, len(codes), per_code, raw), y_all
    )
    clf = _classifier(classifier).fit(x_all[:, cols], y_all)
    return Model(
        codes, rare, corpus, train, y, clf, platt, top_k, cols, per_code, sl, centre, spread
    )


# ---- suggestions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """A coded passage near the suggested one that carries the suggested code."""

    interview_id: str
    turn_index: int
    text: str
    coder: str
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "interview_id": self.interview_id,
            "turn_index": self.turn_index,
            "text": self.text,
            "coder": self.coder,
            "similarity": round(self.similarity, 4),
        }


@dataclass(frozen=True)
class Suggestion:
    interview_id: str
    turn_index: int
    start: int
    end: int
    text: str
    code: str
    confidence: float
    examples: tuple[Example, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**passage_fields(self), "examples": [e.to_dict() for e in self.examples]}


def passage_fields(s: Any) -> dict[str, Any]:
    """The JSON of a suggested (passage, code): shared by ``suggest --json`` and the review
    store's rows, so the two never drift apart."""
    return {
        "interview_id": s.interview_id,
        "turn_index": s.turn_index,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "code": s.code,
        "confidence": round(s.confidence, 4),
    }


def coded_interviews(index: Index) -> list[str]:
    """Interviews where some researcher applied some code to a participant passage."""
    return [
        iv.id
        for iv in index.interviews.values()
        if any(p.coded for t in iv.turns if t.role == "participant" for p in t.paragraphs)
    ]


def _coded_rows(corpus: Corpus, coded: set[str]) -> np.ndarray:
    return np.flatnonzero([g in coded for g in corpus.groups])


def suggest(
    index: Index,
    interview_id: str | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    *,
    code: str | None = None,
    embedder: Any = None,
) -> list[Suggestion]:
    """Codes for every participant passage no researcher coded, most confident first per passage
    (``code``: that code only).

    A coded interview's own passages were negatives in training; its uncoded passages are scored
    by a model fitted without that interview, as a fresh reader would see them.
    """
    if interview_id is not None and interview_id not in index.interviews:
        known = ", ".join(sorted(index.interviews, key=lambda i: (len(i), i)))
        raise MlqiError(f"unknown interview {interview_id} (the index holds {known})")
    coded = set(coded_interviews(index))
    if not coded:
        raise MlqiError("no coded passages to learn from")
    corpus = corpus_of(index, embedder)
    rows = _coded_rows(corpus, coded)
    targets = [
        i
        for i, p in enumerate(corpus.passages)
        if not p.codes and (interview_id is None or p.interview_id == interview_id)
    ]
    by_model: dict[str, list[int]] = {}
    for i in targets:
        g = corpus.groups[i]
        by_model.setdefault(g if g in coded else "", []).append(i)
    out: list[Suggestion] = []
    for key, mine in by_model.items():
        model = fit(corpus, rows[corpus.groups[rows] != key])
        if code is not None and code not in model.codes:
            continue
        probs = model.proba(np.array(mine))
        for i, pr in zip(mine, probs, strict=True):
            p = corpus.passages[i]
            src = index.source_text(p.interview_id)[p.start : p.end]
            for j in np.argsort(-pr, kind="stable"):
                if pr[j] < min_confidence or pr[j] <= 0:
                    break
                if code is not None and model.codes[j] != code:
                    continue
                ex = model.examples(i, model.codes[j])
                c = model.codes[j]
                out.append(
                    Suggestion(
                        p.interview_id, p.turn_index, p.start, p.end, src, c, float(pr[j]), ex
                    )
                )
    order = {iv: n for n, iv in enumerate(index.interviews)}
    out.sort(key=lambda s: (order[s.interview_id], s.start, -s.confidence))
    return out


def rare_codes(
    index: Index, min_examples: int = MIN_EXAMPLES, *, min_interviews: int = MIN_INTERVIEWS
) -> dict[str, int]:
    """Codes applied to fewer than ``min_examples`` passages or in fewer than ``min_interviews``
    interviews, with their number of passages: reported, never suggested."""
    counts: Counter[str] = Counter()
    ivs: dict[str, set[str]] = {}
    for iv in index.interviews.values():
        for t in iv.turns:
            for p in t.paragraphs if t.role == "participant" else ():
                for c in {c for _, cs in p.coded for c in cs}:
                    counts[c] += 1
                    ivs.setdefault(c, set()).add(iv.id)
    return {
        c: n for c, n in sorted(counts.items()) if n < min_examples or len(ivs[c]) < min_interviews
    }


def with_suggestions(interview: Interview, suggestions: Sequence[Suggestion]) -> Interview:
    """A copy of ``interview`` whose paragraphs also carry coder ``"suggested"``'s codes (what a
    reader sees, ``Paragraph.codes``, is unchanged)."""
    by_span: dict[tuple[int, int], list[str]] = {}
    for s in suggestions:
        if s.interview_id == interview.id:
            by_span.setdefault((s.start, s.end), []).append(s.code)
    turns = tuple(
        replace(
            t,
            paragraphs=tuple(
                replace(p, coded=(*p.coded, (SUGGESTED, tuple(codes))))
                if (codes := by_span.get((p.start, p.end)))
                else p
                for p in t.paragraphs
            ),
        )
        for t in interview.turns
    )
    return replace(interview, turns=turns, coders=(*interview.coders, SUGGESTED))
