"""How well a scan model decides, as the answer would list interviews: per-question figures
by split, the one-feature baseline it is reported beside, and which features earn their place
(dev figures out of fold, with and without each: ``mlqi-rag calibrate --ablate``).

A feature is kept when the dev questions, cross-validated by question, say so; the held-out
split is reported after the decision and never decides it.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import replace

import numpy as np

from .calibration import FEATURES, ScanModel, question_features
from .fitting import Pair, best_threshold, fit, said_of, set_f1


def decisions(
    pairs: Sequence[Pair], model: ScanModel, absent: dict[tuple[str, str], bool] | None = None
) -> dict[str, float]:
    """Per-question figures of a model's interview sets (discusses), as the answer would cite."""
    return summarise(question_sets(pairs, model, absent))


QuestionSet = tuple[tuple[str, str], bool, set[str], set[str]]  # key, answerable, listed, gold


def question_sets(
    pairs: Sequence[Pair], model: ScanModel, absent: dict[tuple[str, str], bool] | None = None
) -> list[QuestionSet]:
    """Each question's interviews as the answer would list them (none when it abstains)."""
    x = np.array([p.features for p in pairs], dtype=np.float64)
    p_d, _ = model.predict(x)
    by_q: dict[tuple[str, str], list[tuple[Pair, float]]] = {}
    for pair, prob in zip(pairs, p_d, strict=True):
        by_q.setdefault((pair.corpus, pair.question_id), []).append((pair, float(prob)))
    out: list[QuestionSet] = []
    for key, rows in by_q.items():
        gold = {p.interview_id for p, _ in rows if p.label >= 2}
        qx = np.array([p.features for p, _ in rows], dtype=np.float64)
        said = said_of([p for p, _ in rows])
        chosen = model.discussing(qx, np.array([pr for _, pr in rows]), said=said)
        pred = {p.interview_id for (p, _), c in zip(rows, chosen, strict=True) if c}
        p_out = model.p_out_of_scope(question_features(qx, np.array([pr for _, pr in rows])))
        by_name = bool(model.name_listed(qx, said=said).any())
        if (absent and absent.get(key)) or (not by_name and model.abstains(p_out)):
            pred = set()
        out.append((key, rows[0][0].answerable and bool(gold), pred, gold))
    return out


def summarise(
    sets: Sequence[QuestionSet], coverage: Collection[tuple[str, str]] = ()
) -> dict[str, float]:
    """Precision and recall over the questions that list someone, set F1 and false abstention
    over the answerable ones, abstention over the rest; coverage F1 and count error over the
    ``coverage`` questions."""
    prec, rec, f1, abst, false_abst, cov_f1 = [], [], [], [], [], []
    cov_err: list[float] = []
    for key, answerable, pred, gold in sets:
        if not answerable:
            abst.append(float(not pred))
            continue
        false_abst.append(float(not pred))
        f1.append(set_f1(pred, gold))
        if pred:
            prec.append(len(pred & gold) / len(pred))
            rec.append(len(pred & gold) / len(gold))
        if key in coverage:
            cov_f1.append(set_f1(pred, gold))
            cov_err.append(abs(len(pred) - len(gold)))

    def mean(v: Sequence[float]) -> float:
        return float(np.mean(v)) if v else float("nan")

    figures = {
        "questions": len(sets),
        "precision": mean(prec),
        "recall": mean(rec),
        "set_f1": mean(f1),
        "abstention": mean(abst),
        "false_abstention": mean(false_abst),
    }
    if coverage:
        figures |= {"coverage_f1": mean(cov_f1), "count_mae": mean(cov_err)}
    return figures


def single_feature_baseline(pairs: Sequence[Pair], feature: str = "span_max") -> ScanModel:
    """One feature, one threshold fitted on dev: what the fitted model is compared against."""
    i = FEATURES.index(feature)
    n = len(FEATURES)
    coef = np.zeros(n)
    coef[i] = 1.0
    dev = [p for p in pairs if p.split != "heldout"]
    x = np.array([p.features for p in dev], dtype=np.float64)
    base = ScanModel(FEATURES, np.zeros(n), np.ones(n), coef, 0.0, coef, 0.0, 0.5, 0.5)
    p_d, _ = base.predict(x)
    t = best_threshold(dev, p_d, 2)
    return ScanModel(FEATURES, np.zeros(n), np.ones(n), coef, 0.0, coef, 0.0, t, t, t)


def cross_validated(
    pairs: Sequence[Pair],
    ruled: Collection[tuple[str, str]] = (),
    coverage: Collection[tuple[str, str]] = (),
    without: Collection[str] = (),
    repeats: int = 3,
    folds: int = 5,
) -> dict[str, dict[str, float]]:
    """Each corpus's dev figures out of fold: ``repeats`` times, the dev questions are
    shuffled into ``folds`` folds and each fold is listed by a model fitted on the others.
    ``without`` names features left out; their columns are held constant, which the
    standardised, regularised fit gives no weight (the same as dropping them, with one
    feature order for every model). Seeded, so two runs agree."""
    check_features(without)
    drop = [FEATURES.index(f) for f in without]
    dev = [p for p in pairs if p.split != "heldout"]
    if drop:
        dev = [replace(p, features=_blank(p.features, drop)) for p in dev]
    keys = sorted({(p.corpus, p.question_id) for p in dev})
    absent = {key: key in ruled for key in keys}
    sets: list[QuestionSet] = []
    for r in range(repeats):
        order = keys[:]
        random.Random(r).shuffle(order)
        for f in range(folds):
            test = set(order[f::folds])
            model = fit([p for p in dev if (p.corpus, p.question_id) not in test], ruled)
            sets += question_sets(
                [p for p in dev if (p.corpus, p.question_id) in test], model, absent
            )
    return {
        corpus: summarise([s for s in sets if s[0][0] == corpus], coverage)
        for corpus in dict.fromkeys(p.corpus for p in dev)
    }


def check_features(names: Collection[str]) -> None:
    """Refuse a feature name the model does not have (``calibrate --ablate`` asks before the
    minutes of scanning, not after)."""
    if unknown := [f for f in names if f not in FEATURES]:
        raise ValueError(f"unknown feature {', '.join(unknown)} (one of: {', '.join(FEATURES)})")


def _blank(features: tuple[float, ...], drop: Sequence[int]) -> tuple[float, ...]:
    return tuple(0.0 if i in drop else v for i, v in enumerate(features))
