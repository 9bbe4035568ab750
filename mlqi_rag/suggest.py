"""Suggested codes for participant passages no researcher coded, scored against the researchers.

Choices, each measured by leave-one-interview-out (LOIO) on the five coded interviews:

* **unit** — a participant *paragraph*: what Delve coders select and what ``agreement`` counts,
  so a suggestion and a human code are compared on the same units. Its vector is the mean of its
  sentence vectors (``Index.spans``); a paragraph too short for a sentence takes its turn chunk's
  vector. (Chunk vectors, or both summed, ranked no better: ``REPRESENTATIONS``.)
* **labels** — a passage has code X when any researcher applied it (moderation included): the
  coders disagree on most passages, so one coder alone would teach the other's codes as
  negatives. Passages of a coded interview that nobody coded are negatives for every code.
* **learner** — k nearest passages (coded or not) with similarity-weighted votes ranked the
  held-out codes better than one-vs-rest logistic regression (average precision 0.012 vs 0.009,
  precision of the top 10 0.2 vs 0.0) and is 25x faster; codes with fewer than ``MIN_EXAMPLES``
  passages are reported as too rare to learn and never suggested.
* **confidence** — scores pooled over codes are Platt-scaled (with the code's log prior) on
  out-of-fold scores, one *training* interview out at a time.

What the data allows: 60 of the 84 codes occur in one interview only, so a model that has not
seen an interview rarely knows its codes; no threshold reaches passage precision 0.6 under LOIO.
``DEFAULT_MIN_CONFIDENCE`` is the threshold of the best precision with at least 20 LOIO
suggestions (``choose_threshold``). Suggestions are for a researcher to review, never codes.

A suggestion is labelled with coder ``"suggested"`` (``with_suggestions``), in memory beside the
researchers' codes; it is never written into a transcript.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from . import agreement as ag
from .coders import MODERATION
from .errors import MlqiError
from .index import Index
from .types import Interview, Paragraph, Turn

log = logging.getLogger(__name__)

SUGGESTED = "suggested"
MIN_EXAMPLES = 5
TARGET_PRECISION = 0.6
DEFAULT_MIN_CONFIDENCE = 0.079  # choose_threshold on the LOIO predictions (knn, k=10)
EXAMPLES_SHOWN = 3
SNIPPET = 240


# ---- passages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    """One participant paragraph, with every coder's codes on it."""

    interview_id: str
    turn_index: int
    start: int
    end: int
    text: str
    coded: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(c for _, cs in self.coded for c in cs)

    def coders_of(self, code: str) -> tuple[str, ...]:
        return tuple(name for name, cs in self.coded if code in cs)


def _turn_chunk(index: Index, iv_id: str, t: Turn, p: Paragraph) -> int:
    for i, c in enumerate(index.chunks):
        if c.interview_id == iv_id and c.turn_index == t.index and c.start <= p.start < c.end:
            return i
    return next(i for i, c in enumerate(index.chunks) if c.interview_id == iv_id)


def passages(index: Index, representation: str = "spans") -> tuple[list[Passage], np.ndarray]:
    """Every participant paragraph of the index and its L2-normalised vector (same order)."""
    table = index.spans
    rows: dict[str, list[tuple[int, int]]] = {}
    for j in range(len(table)):
        iv_id = index.chunks[int(table.chunk[j])].interview_id
        rows.setdefault(iv_id, []).append(((int(table.start[j]) + int(table.end[j])) // 2, j))
    out: list[Passage] = []
    vecs: list[np.ndarray] = []
    for iv in index.interviews.values():
        mids = rows.get(iv.id, [])
        for t in iv.turns:
            if t.role != "participant":
                continue
            for p in t.paragraphs:
                own = [j for mid, j in mids if p.start <= mid < p.end]
                chunk_vec = index.vectors[_turn_chunk(index, iv.id, t, p)]
                v = table.vectors[own].mean(0) if own else chunk_vec
                if representation == "chunk":
                    v = chunk_vec
                elif representation == "spans+chunk":
                    v = v + chunk_vec
                vecs.append(v / (np.linalg.norm(v) or 1.0))
                out.append(Passage(iv.id, t.index, p.start, p.end, p.text, p.coded))
    dim = index.vectors.shape[1] if len(index.vectors) else 0
    return out, np.array(vecs, dtype=np.float32).reshape(len(out), dim)


REPRESENTATIONS = ("spans", "chunk", "spans+chunk")


# ---- learners -----------------------------------------------------------------------------------


class Learner(Protocol):
    def fit(self, x: np.ndarray, y: np.ndarray) -> Learner: ...
    def scores(self, x: np.ndarray) -> np.ndarray: ...


class Knn:
    """Similarity-weighted votes of the ``k`` nearest training passages (coded or not)."""

    def __init__(self, k: int = 10) -> None:
        self.k = k

    def fit(self, x: np.ndarray, y: np.ndarray) -> Knn:
        self.x, self.y = x, y
        return self

    def scores(self, x: np.ndarray) -> np.ndarray:
        sims = x @ self.x.T
        k = min(self.k, sims.shape[1])
        idx = np.argsort(-sims, axis=1)[:, :k]
        w = np.clip(np.take_along_axis(sims, idx, 1), 1e-6, None)
        votes = (w[:, :, None] * self.y[idx]).sum(1) / w.sum(1, keepdims=True)
        return np.asarray(votes)


class Logistic:
    """One L2 logistic regression per code; a code absent from the training fold scores low."""

    def __init__(self, c: float = 1.0) -> None:
        self.c = c

    def fit(self, x: np.ndarray, y: np.ndarray) -> Logistic:
        from sklearn.linear_model import LogisticRegression

        self.models: list[Any] = []
        for j in range(y.shape[1]):
            if 0 < y[:, j].sum() < len(y):
                m = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000)
                self.models.append(m.fit(x, y[:, j]))
            else:
                self.models.append(None)
        return self

    def scores(self, x: np.ndarray) -> np.ndarray:
        cols = [m.decision_function(x) if m else np.full(len(x), -10.0) for m in self.models]
        return np.column_stack(cols) if cols else np.zeros((len(x), 0))


LEARNERS: dict[str, type[Knn] | type[Logistic]] = {"logistic": Logistic, "knn": Knn}
DEFAULT_LEARNER = "knn"


# ---- the calibrated model -----------------------------------------------------------------------


def _labels(ps: Sequence[Passage], codes: Sequence[str]) -> np.ndarray:
    return np.array([[c in p.codes for c in codes] for p in ps], dtype=float).reshape(
        len(ps), len(codes)
    )


def _platt_features(scores: np.ndarray, prior: np.ndarray) -> np.ndarray:
    return np.column_stack([scores.ravel(), np.broadcast_to(np.log(prior), scores.shape).ravel()])


@dataclass
class Model:
    """A learner fitted on every training passage, with its Platt scaling and its evidence."""

    learner: str
    codes: tuple[str, ...]
    rare: dict[str, int]  # code -> passages, below ``MIN_EXAMPLES``: never suggested
    estimator: Any
    platt: Any
    prior: np.ndarray
    train: list[Passage]
    x: np.ndarray
    y: np.ndarray

    def proba(self, x: np.ndarray) -> np.ndarray:
        if not self.codes or not len(x):
            return np.zeros((len(x), len(self.codes)))
        s = self.estimator.scores(x)
        return np.asarray(self.platt.predict_proba(_platt_features(s, self.prior))[:, 1]).reshape(
            s.shape
        )


def fit(
    train: Sequence[Passage],
    x: np.ndarray,
    learner: str = DEFAULT_LEARNER,
    min_examples: int = MIN_EXAMPLES,
) -> Model:
    """Fit on ``train``; the Platt scaling on out-of-fold scores, one training interview out at a
    time, so the confidence reflects interviews the learner has not seen."""
    from sklearn.linear_model import LogisticRegression

    counts = Counter(c for p in train for c in p.codes)
    codes = tuple(sorted(c for c, n in counts.items() if n >= min_examples))
    rare = {c: n for c, n in sorted(counts.items()) if n < min_examples}
    if not codes:
        raise MlqiError("no coded passages to learn from")
    y = _labels(train, codes)
    prior = (y.sum(0) + 1) / (len(y) + 2)
    groups = np.array([p.interview_id for p in train])
    oof = np.zeros_like(y)
    for g in dict.fromkeys(groups):
        held = groups == g
        oof[held] = LEARNERS[learner]().fit(x[~held], y[~held]).scores(x[held])
    platt = LogisticRegression(C=100.0, max_iter=1000).fit(_platt_features(oof, prior), y.ravel())
    est = LEARNERS[learner]().fit(x, y)
    return Model(learner, codes, rare, est, platt, prior, list(train), x, y)


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
        return {
            "interview_id": self.interview_id,
            "turn_index": self.turn_index,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "code": self.code,
            "confidence": round(self.confidence, 4),
            "examples": [e.to_dict() for e in self.examples],
        }


def coded_interviews(index: Index) -> list[str]:
    """Interviews where some researcher applied some code to a participant passage."""
    return [
        iv.id
        for iv in index.interviews.values()
        if any(p.coded for t in iv.turns if t.role == "participant" for p in t.paragraphs)
    ]


def _examples(model: Model, v: np.ndarray, code: str) -> tuple[Example, ...]:
    j = model.codes.index(code)
    sims = model.x @ v
    rows = [i for i in np.argsort(-sims) if model.y[i, j]][:EXAMPLES_SHOWN]
    return tuple(
        Example(
            (p := model.train[i]).interview_id,
            p.turn_index,
            p.text[:SNIPPET],
            ", ".join(p.coders_of(code)),
            float(sims[i]),
        )
        for i in rows
    )


def suggest(
    index: Index,
    interview_id: str | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    learner: str = DEFAULT_LEARNER,
) -> list[Suggestion]:
    """Codes for every participant passage no researcher coded, most confident first per passage.

    A coded interview's own passages were negatives in training; its uncoded passages are scored
    by a model fitted without that interview, as a fresh reader would see them.
    """
    if interview_id is not None and interview_id not in index.interviews:
        known = ", ".join(sorted(index.interviews, key=lambda i: (len(i), i)))
        raise MlqiError(f"unknown interview {interview_id} (the index holds {known})")
    ps, x = passages(index)
    coded = set(coded_interviews(index))
    in_coded = np.array([p.interview_id in coded for p in ps], dtype=bool)
    if not in_coded.any():
        raise MlqiError("no coded passages to learn from")
    targets = [
        i
        for i, p in enumerate(ps)
        if not p.codes and (interview_id is None or p.interview_id == interview_id)
    ]
    models: dict[str, Model] = {}
    out: list[Suggestion] = []
    for i in targets:
        p = ps[i]
        key = p.interview_id if p.interview_id in coded else ""
        if key not in models:
            keep = in_coded & np.array([q.interview_id != key for q in ps])
            models[key] = fit([ps[k] for k in np.flatnonzero(keep)], x[keep], learner)
        model = models[key]
        probs = model.proba(x[i : i + 1])[0]
        for j in np.argsort(-probs):
            if probs[j] < min_confidence:
                break
            code = model.codes[j]
            src = index.source_text(p.interview_id)[p.start : p.end]
            ex = _examples(model, x[i], code)
            out.append(
                Suggestion(
                    p.interview_id, p.turn_index, p.start, p.end, src, code, float(probs[j]), ex
                )
            )
    return out


def rare_codes(index: Index, min_examples: int = MIN_EXAMPLES) -> dict[str, int]:
    """Codes applied to fewer than ``min_examples`` passages: reported, never suggested."""
    ps, _ = passages(index)
    counts = Counter(c for p in ps for c in p.codes)
    return {c: n for c, n in sorted(counts.items()) if n < min_examples}


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


# ---- leave-one-interview-out evaluation ---------------------------------------------------------


@dataclass(frozen=True)
class Loio:
    """Out-of-fold confidences for every participant passage of every coded interview."""

    passages: list[Passage]
    codes: tuple[str, ...]  # every code any researcher applied
    learnable: tuple[str, ...]  # codes with ``MIN_EXAMPLES`` passages in the whole corpus
    rare: dict[str, int]
    proba: np.ndarray  # passages x codes (0 where the fold could not learn the code)
    truth: np.ndarray


def loio(
    index: Index,
    learner: str = DEFAULT_LEARNER,
    min_examples: int = MIN_EXAMPLES,
    representation: str = "spans",
) -> Loio:
    all_ps, all_x = passages(index, representation)
    coded = set(coded_interviews(index))
    if not coded:
        raise MlqiError("no coded passages to learn from")
    keep = np.array([p.interview_id in coded for p in all_ps], dtype=bool)
    ps, x = [p for p, k in zip(all_ps, keep, strict=True) if k], all_x[keep]
    counts = Counter(c for p in ps for c in p.codes)
    codes = tuple(sorted(counts))
    groups = np.array([p.interview_id for p in ps])
    proba = np.zeros((len(ps), len(codes)))
    for g in dict.fromkeys(groups):
        held = groups == g
        m = fit(
            [p for p, h in zip(ps, held, strict=True) if not h], x[~held], learner, min_examples
        )
        cols = np.array([codes.index(c) for c in m.codes], dtype=int)
        proba[np.ix_(np.flatnonzero(held), cols)] = m.proba(x[held])
    learnable = tuple(c for c in codes if counts[c] >= min_examples)
    rare = {c: counts[c] for c in codes if counts[c] < min_examples}
    return Loio(ps, codes, learnable, rare, proba, _labels(ps, codes))


def choose_threshold(
    proba: np.ndarray, truth: np.ndarray, target: float = TARGET_PRECISION, min_predicted: int = 20
) -> tuple[float, bool]:
    """The lowest confidence at which the passage-level precision of everything at or above it
    reaches ``target`` (the most recall that precision allows), with at least ``min_predicted``
    suggestions so one lucky hit cannot set it; and whether ``target`` was reached. When it is
    not, the threshold of the best precision instead."""
    order = np.argsort(-proba.ravel(), kind="stable")
    p, t = proba.ravel()[order], truth.ravel()[order]
    prec = np.cumsum(t) / np.arange(1, len(t) + 1)
    # only the last position of a tie block is a threshold: ``>=`` takes the whole block
    cuts = [
        i
        for i in range(min_predicted - 1, len(p))
        if p[i] > 0 and (i + 1 == len(p) or p[i + 1] < p[i])
    ]
    if not cuts:
        return math.nan, False
    ok = [i for i in cuts if prec[i] >= target]
    if ok:
        return float(p[ok[-1]]), True
    best = max(cuts, key=lambda i: (prec[i], -i))
    return float(p[best]), False


def _prf(tp: float, fp: float, fn: float) -> dict[str, float]:
    pr = tp / (tp + fp) if tp + fp else 0.0
    rc = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0}


def _scores(pred: np.ndarray, truth: np.ndarray, codes: Sequence[str], macro_codes: Sequence[str]):  # type: ignore[no-untyped-def]
    tp, fp, fn = (pred * truth).sum(0), (pred * (1 - truth)).sum(0), ((1 - pred) * truth).sum(0)
    per = {
        c: {
            **_prf(tp[j], fp[j], fn[j]),
            "support": int(truth[:, j].sum()),
            "suggested": int(pred[:, j].sum()),
        }
        for j, c in enumerate(codes)
    }
    macro = {
        k: float(np.mean([per[c][k] for c in macro_codes])) if macro_codes else 0.0
        for k in ("precision", "recall", "f1")
    }
    return per, _prf(tp.sum(), fp.sum(), fn.sum()), macro


def _relabel(iv: Interview, suggested: dict[tuple[int, int], set[str]], coder: str) -> Interview:
    """``iv`` with coder ``suggested`` and ``"other"``: the other human coder(s) of ``coder``."""

    def para(p: Paragraph) -> Paragraph:
        other = {c for name, cs in p.coded if name not in (coder, MODERATION) for c in cs}
        extra = (
            (SUGGESTED, tuple(sorted(suggested.get((p.start, p.end), ())))),
            ("other", tuple(sorted(other))),
        )
        return replace(p, coded=(*p.coded, *extra))

    turns = tuple(replace(t, paragraphs=tuple(para(p) for p in t.paragraphs)) for t in iv.turns)
    return replace(iv, turns=turns, coders=(*iv.coders, SUGGESTED, "other"))


def _kappas(index: Index, lo: Loio, pred: np.ndarray) -> list[dict[str, Any]]:
    """Cohen's kappa of the suggestions against each human coder, beside the kappa of the other
    human coder against the same coder on the same passages, codes and interviews."""
    suggested: dict[str, dict[tuple[int, int], set[str]]] = {}
    for i, p in enumerate(lo.passages):
        got = {lo.codes[j] for j in np.flatnonzero(pred[i])}
        suggested.setdefault(p.interview_id, {})[(p.start, p.end)] = got
    ivs = [index.interviews[g] for g in suggested]
    rows = []
    for coder in dict.fromkeys(c for iv in ivs for c in ag.human_coders(iv)):
        mine = [
            _relabel(iv, suggested[iv.id], coder)
            for iv in ivs
            if coder in iv.coders and len(ag.human_coders(iv)) >= 2
        ]
        if not mine:
            continue
        row: dict[str, Any] = {"coder": coder, "interviews": [iv.id for iv in mine]}
        for who in (SUGGESTED, "other"):
            x: list[float] = []
            y: list[float] = []
            for iv in mine:
                for t in iv.turns:
                    for para in t.paragraphs if t.role == "participant" else ():
                        x += [float(c in para.codes_by(who)) for c in lo.codes]
                        y += [float(c in para.codes_by(coder)) for c in lo.codes]
            level = ag.interview_agreement(mine, coders=(who, coder), codebook=lo.codes)
            row[f"{who}_passage"] = ag.cohen_kappa(x, y)
            row[f"{who}_interview"] = level.overall.kappa
        rows.append(row)
    return rows


def _at(lo: Loio, threshold: float) -> dict[str, Any]:
    pred = (lo.proba >= threshold).astype(float)
    per, micro, macro = _scores(pred, lo.truth, lo.codes, lo.learnable)
    groups = [p.interview_id for p in lo.passages]
    ids = list(dict.fromkeys(groups))
    rows = [[g == i for g in groups] for i in ids]
    ipred = np.array([pred[r].max(0) for r in rows])
    itruth = np.array([lo.truth[r].max(0) for r in rows])
    iper, imicro, imacro = _scores(ipred, itruth, lo.codes, lo.learnable)
    return {
        "threshold": threshold,
        "suggested": int(pred.sum()),
        "passage": {"micro": micro, "macro": macro, "codes": per},
        "interview": {"micro": imicro, "macro": imacro, "codes": iper},
        "pred": pred,
    }


def evaluate(
    index: Index,
    learner: str = DEFAULT_LEARNER,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    compare: bool = True,
) -> dict[str, Any]:
    """LOIO over every coded interview: each is predicted by a model fitted on the others.

    Micro figures count every code a researcher applied (a code too rare to learn is a miss);
    macro figures average over the learnable codes. Kappa pools every (passage, code) decision
    over the codebook of the coded interviews.
    """
    from sklearn.metrics import average_precision_score

    if learner not in LEARNERS:
        raise MlqiError(f"unknown learner {learner!r} (choices: {', '.join(LEARNERS)})")
    lo = loio(index, learner)
    at = _at(lo, min_confidence)
    pred = at.pop("pred")
    comparison = {}
    for name in LEARNERS if compare else (learner,):
        other = lo if name == learner else loio(index, name)
        chosen, reached = choose_threshold(other.proba, other.truth)
        fig = _at(other, chosen if not math.isnan(chosen) else 1.01)["passage"]["micro"]
        comparison[name] = {
            "average_precision": float(
                average_precision_score(other.truth.ravel(), other.proba.ravel())
            ),
            "threshold_for_target": chosen,
            "target_reached": reached,
            "at_threshold": fig,
            "at_default": _at(other, min_confidence)["passage"]["micro"],
        }
    return {
        "learner": learner,
        "min_confidence": min_confidence,
        "target_precision": TARGET_PRECISION,
        "threshold_for_target": comparison[learner]["threshold_for_target"],
        "target_reached": comparison[learner]["target_reached"],
        "interviews": list(dict.fromkeys(p.interview_id for p in lo.passages)),
        "passages": len(lo.passages),
        "coded_passages": int((lo.truth.sum(1) > 0).sum()),
        "min_examples": MIN_EXAMPLES,
        "learnable": list(lo.learnable),
        "rare": lo.rare,
        **at,
        "kappa": _kappas(index, lo, pred),
        "learners": comparison,
    }
