"""Leave-one-interview-out (LOIO) evaluation of code suggestions, with nested thresholds.

Every coded interview is predicted by a model fitted on the other coded interviews. The
confidence threshold of that fold is chosen on the *training* interviews only (their own LOIO,
one model per inner fold), so the reported figures are held out: no threshold saw the interview
it is scored on. The old k-nearest-neighbour learner (``Knn``, one Platt scaling over every code)
is evaluated the same way in the same run, as the baseline.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import agreement as ag
from . import suggest as sg
from .coders import MODERATION
from .errors import MlqiError
from .index import Index
from .suggest_features import FEATURES, Corpus, Passage
from .types import Interview, Paragraph

TARGET_PRECISION = 0.6
MIN_PREDICTED = 20  # a threshold is judged on this many suggestions at least
BASELINE_MIN_CONFIDENCE = 0.079  # the kNN baseline's old default
THRESHOLD_RULE = (
    f"the lowest confidence whose passage precision reaches {TARGET_PRECISION} with "
    f"{MIN_PREDICTED}+ suggestions; when none does, the one with the best one-sided 95% Wilson "
    "lower bound of precision"
)


# ---- the old baseline: k nearest passages, one Platt scaling ------------------------------------


class Knn:
    """Similarity-weighted votes of the ``k`` nearest training passages (coded or not), Platt
    scaled with the code's log prior on out-of-fold votes; codes with fewer than five passages
    are not learned (the learner before the pairwise model)."""

    def __init__(self, corpus: Corpus, train: np.ndarray, k: int = 10, min_examples: int = 5):
        from sklearn.linear_model import LogisticRegression

        self.corpus, self.train, self.k = corpus, np.asarray(train, dtype=int), k
        n = Counter(c for i in self.train for c in corpus.passages[i].codes)
        self.codes = tuple(sorted(c for c in n if n[c] >= min_examples))
        if not self.codes:
            raise MlqiError("no coded passages to learn from")
        self.y = corpus.labels(self.train, self.codes)
        self.prior = (self.y.sum(0) + 1) / (len(self.y) + 2)
        groups = corpus.groups[self.train]
        oof = np.zeros_like(self.y)
        for g in dict.fromkeys(groups):
            held = groups == g
            oof[held] = self._votes(self.train[~held], self.y[~held], self.train[held])
        self.platt = LogisticRegression(C=100.0, max_iter=1000).fit(self._f(oof), self.y.ravel())

    def _votes(self, ref: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
        sims = self.corpus.x[rows] @ self.corpus.x[ref].T
        k = min(self.k, sims.shape[1])
        idx = np.argsort(-sims, axis=1)[:, :k]
        w = np.clip(np.take_along_axis(sims, idx, 1), 1e-6, None)
        return np.asarray((w[:, :, None] * y[idx]).sum(1) / w.sum(1, keepdims=True))

    def _f(self, s: np.ndarray) -> np.ndarray:
        return np.column_stack([s.ravel(), np.broadcast_to(np.log(self.prior), s.shape).ravel()])

    def proba(self, rows: np.ndarray) -> np.ndarray:
        s = self._votes(self.train, self.y, np.asarray(rows, dtype=int))
        return np.asarray(self.platt.predict_proba(self._f(s))[:, 1]).reshape(s.shape)


Fitter = Callable[[Corpus, np.ndarray], Any]  # -> a model with .codes and .proba(rows)

LEARNERS: dict[str, Fitter] = {
    "pairwise": lambda c, rows: sg.fit(c, rows),
    "knn": lambda c, rows: Knn(c, rows),
    # the ablations behind the choice of ``pairwise``
    "pairwise-no-slopes": lambda c, rows: sg.fit(c, rows, slopes=()),
    "pairwise-one-scaling": lambda c, rows: sg.fit(c, rows, per_code=False),
    "pairwise-all": lambda c, rows: sg.fit(c, rows, features=FEATURES),
    "pairwise-hgb": lambda c, rows: sg.fit(c, rows, classifier="hgb", features=FEATURES),
    "pairwise-top1": lambda c, rows: sg.fit(c, rows, top_k=1),
    "pairwise-min2": lambda c, rows: sg.fit(c, rows, min_interviews=2),
}
DESCRIPTIONS = {
    "pairwise": "pooled (passage, code) logistic regression on 5 features; Platt scaling with a "
    "per-code intercept and per-code slope of the question feature; top 2 codes a passage",
    "knn": "old baseline: 10 nearest passages' votes, one Platt scaling, codes with 5+ passages",
    "pairwise-no-slopes": "pairwise, per-code intercepts only in the scaling",
    "pairwise-one-scaling": "pairwise, one Platt scaling for every code",
    "pairwise-all": f"pairwise on all {len(FEATURES)} features",
    "pairwise-hgb": "pairwise, gradient boosting on all features",
    "pairwise-top1": "pairwise, top 1 code a passage",
    "pairwise-min2": "pairwise, only codes of 2+ training interviews",
}
DEFAULT_LEARNER = "pairwise"
BASELINE = "knn"


# ---- leave one interview out ----------------------------------------------------------------


@dataclass(frozen=True)
class Loio:
    """Out-of-fold confidences for every participant passage of every coded interview."""

    passages: list[Passage]
    codes: tuple[str, ...]  # every code any researcher applied
    learnable: tuple[str, ...]  # codes some fold learned
    rare: dict[str, int]  # codes no fold learned -> passages
    proba: np.ndarray  # passages x codes (0 where the fold did not learn the code)
    truth: np.ndarray
    thresholds: dict[str, float]  # interview -> threshold chosen on its training interviews
    fold_codes: dict[str, tuple[str, ...]]  # interview -> the codes its fold learned


def _oof(
    corpus: Corpus, rows: np.ndarray, codes: Sequence[str], fitter: Fitter
) -> tuple[np.ndarray, dict[str, tuple[str, ...]]]:
    groups = corpus.groups[rows]
    proba = np.zeros((len(rows), len(codes)))
    learned: dict[str, tuple[str, ...]] = {}
    for g in dict.fromkeys(groups):
        held = groups == g
        m = fitter(corpus, rows[~held])
        cols = np.array([codes.index(c) for c in m.codes], dtype=int)
        proba[np.ix_(np.flatnonzero(held), cols)] = m.proba(rows[held])
        learned[str(g)] = tuple(m.codes)
    return proba, learned


Z = 1.645  # one-sided 95%


def _wilson(p: float, n: int) -> float:
    """The lower bound of the Wilson interval of a proportion ``p`` out of ``n``."""
    centre = p + Z * Z / (2 * n)
    spread = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - spread) / (1 + Z * Z / n)


def choose_threshold(
    proba: np.ndarray,
    truth: np.ndarray,
    target: float = TARGET_PRECISION,
    min_predicted: int = MIN_PREDICTED,
) -> tuple[float, bool]:
    """The lowest confidence at which the passage-level precision of everything at or above it
    reaches ``target`` (the most recall that precision allows), with at least ``min_predicted``
    suggestions so one lucky hit cannot set it; and whether ``target`` was reached. When it is
    not, the threshold whose precision has the best Wilson lower bound: high precision, on
    enough suggestions to trust it."""
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
    best = max(cuts, key=lambda i: (_wilson(float(prec[i]), i + 1), -i))
    return float(p[best]), False


def loio(index: Index, learner: str = DEFAULT_LEARNER, embedder: Any = None) -> Loio:
    """LOIO over the coded interviews; each fold's threshold by an inner LOIO on its training
    interviews."""
    if learner not in LEARNERS:
        raise MlqiError(f"unknown learner {learner!r} (choices: {', '.join(LEARNERS)})")
    coded = set(sg.coded_interviews(index))
    if not coded:
        raise MlqiError("no coded passages to learn from")
    corpus = sg.corpus_of(index, embedder)
    rows = np.flatnonzero([g in coded for g in corpus.groups])
    ps = [corpus.passages[i] for i in rows]
    counts = Counter(c for p in ps for c in p.codes)
    codes = tuple(sorted(counts))
    truth = corpus.labels(rows, codes)
    fitter = LEARNERS[learner]
    proba, learned = _oof(corpus, rows, codes, fitter)
    groups = corpus.groups[rows]
    thresholds = {}
    for g in dict.fromkeys(groups):
        inner = rows[groups != g]
        p_in, _ = _oof(corpus, inner, codes, fitter)
        t, _ = choose_threshold(p_in, truth[groups != g])
        thresholds[str(g)] = t if not math.isnan(t) else 1.01
    some = {c for cs in learned.values() for c in cs}
    ok = tuple(c for c in codes if c in some)
    rare = {c: counts[c] for c in codes if c not in some}
    return Loio(ps, codes, ok, rare, proba, truth, thresholds, learned)


# ---- figures ---------------------------------------------------------------------------------


def _prf(tp: float, fp: float, fn: float) -> dict[str, float]:
    pr = tp / (tp + fp) if tp + fp else 0.0
    rc = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0}


Scores = tuple[dict[str, dict[str, Any]], dict[str, float], dict[str, float]]


def _scores(
    pred: np.ndarray, truth: np.ndarray, codes: Sequence[str], macro_codes: Sequence[str]
) -> Scores:
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
            (sg.SUGGESTED, tuple(sorted(suggested.get((p.start, p.end), ())))),
            ("other", tuple(sorted(other))),
        )
        return replace(p, coded=(*p.coded, *extra))

    turns = tuple(replace(t, paragraphs=tuple(para(p) for p in t.paragraphs)) for t in iv.turns)
    return replace(iv, turns=turns, coders=(*iv.coders, sg.SUGGESTED, "other"))


def kappas(
    index: Index, lo: Loio, pred: np.ndarray, codebook: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Cohen's kappa of the suggestions against each human coder, beside the kappa of the other
    human coder against the same coder on the same passages, codes and interviews (every
    (unit, code) decision pooled over ``codebook``, by default every code of the coded
    interviews)."""
    codes = tuple(codebook) if codebook is not None else lo.codes
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
        for who in (sg.SUGGESTED, "other"):
            x: list[float] = []
            y: list[float] = []
            for iv in mine:
                for t in iv.turns:
                    for para in t.paragraphs if t.role == "participant" else ():
                        x += [float(c in para.codes_by(who)) for c in codes]
                        y += [float(c in para.codes_by(coder)) for c in codes]
            level = ag.interview_agreement(mine, coders=(who, coder), codebook=codes)
            row[f"{who}_passage"] = ag.cohen_kappa(x, y)
            row[f"{who}_interview"] = level.overall.kappa
        rows.append(row)
    return rows


def _at(lo: Loio, pred: np.ndarray) -> dict[str, Any]:
    per, micro, macro = _scores(pred, lo.truth, lo.codes, lo.learnable)
    groups = [p.interview_id for p in lo.passages]
    ids = list(dict.fromkeys(groups))
    rows = [[g == i for g in groups] for i in ids]
    ipred = np.array([pred[r].max(0) for r in rows])
    itruth = np.array([lo.truth[r].max(0) for r in rows])
    iper, imicro, imacro = _scores(ipred, itruth, lo.codes, lo.learnable)
    return {
        "suggested": int(pred.sum()),
        "passage": {"micro": micro, "macro": macro, "codes": per},
        "interview": {"micro": imicro, "macro": imacro, "codes": iper},
    }


def nested_pred(lo: Loio) -> np.ndarray:
    """Each interview's suggestions at the threshold its training interviews chose."""
    t = np.array([lo.thresholds[p.interview_id] for p in lo.passages])[:, None]
    return ((lo.proba >= t) & (lo.proba > 0)).astype(float)


def summary(index: Index, lo: Loio, min_confidence: float) -> dict[str, Any]:
    """Every figure of one learner: held out (nested thresholds) and at ``min_confidence``."""
    from sklearn.metrics import average_precision_score

    pred = nested_pred(lo)
    fixed = ((lo.proba >= min_confidence) & (lo.proba > 0)).astype(float)
    chosen, reached = choose_threshold(lo.proba, lo.truth)
    # a perfect model of the codes each fold could learn: what these data allow at best
    known = np.array(
        [[c in lo.fold_codes[p.interview_id] for c in lo.codes] for p in lo.passages], dtype=float
    )
    return {
        "average_precision": float(average_precision_score(lo.truth.ravel(), lo.proba.ravel())),
        "thresholds": lo.thresholds,
        "nested": {**_at(lo, pred), "kappa": kappas(index, lo, pred)},
        "min_confidence": min_confidence,
        "at_min_confidence": {**_at(lo, fixed), "kappa": kappas(index, lo, fixed)},
        "ceiling_kappa": kappas(index, lo, lo.truth * known),
        "threshold_on_all_folds": chosen,
        "target_reached_on_all_folds": reached,
        "learnable": list(lo.learnable),
        "rare": lo.rare,
    }


def evaluate(
    index: Index,
    min_confidence: float = sg.DEFAULT_MIN_CONFIDENCE,
    learners: Sequence[str] = (DEFAULT_LEARNER, BASELINE),
    embedder: Any = None,
) -> dict[str, Any]:
    """LOIO over every coded interview, for each learner (the first is the one ``suggest`` uses).

    Micro figures count every code a researcher applied (a code too rare to learn is a miss);
    macro figures average over the codes some fold learned. ``nested`` is the held-out figure:
    each interview at the threshold chosen on its training interviews; ``at_min_confidence`` at
    one fixed threshold (``suggest``'s default, chosen by the same rule on all the coded
    interviews' LOIO confidences: not held out; the baseline at its old default).
    """
    for name in learners:
        if name not in LEARNERS:
            raise MlqiError(f"unknown learner {name!r} (choices: {', '.join(LEARNERS)})")
    out: dict[str, Any] = {}
    first: Loio | None = None
    for name in learners:
        start = time.perf_counter()
        lo = loio(index, name, embedder)
        first = first or lo
        fixed = BASELINE_MIN_CONFIDENCE if name == BASELINE else min_confidence
        out[name] = {
            "description": DESCRIPTIONS[name],
            **summary(index, lo, fixed),
            "seconds": round(time.perf_counter() - start, 1),
        }
    assert first is not None
    return _no_nan(
        {
            "learner": learners[0],
            "target_precision": TARGET_PRECISION,
            "min_predicted": MIN_PREDICTED,
            "threshold_rule": THRESHOLD_RULE,
            "interviews": list(dict.fromkeys(p.interview_id for p in first.passages)),
            "passages": len(first.passages),
            "coded_passages": int((first.truth.sum(1) > 0).sum()),
            "codes": len(first.codes),
            "min_interviews": sg.MIN_INTERVIEWS,
            "min_examples": sg.MIN_EXAMPLES,
            "top_k": sg.TOP_K,
            "features": list(sg.USED),
            "default_min_confidence": sg.DEFAULT_MIN_CONFIDENCE,
            "learners": out,
        }
    )


def _no_nan(x: Any) -> Any:
    """NaN (an undefined kappa) as None, so the document is strict JSON."""
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_no_nan(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return None
    return x
