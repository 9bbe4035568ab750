"""Would the scan decide better on adapted vectors? Cross-fitted, so the answer is honest.

The scan model (``calibration``) is fitted on the dev questions' features. Through an adapter
fitted on those same questions, their similarities are better than any new question's will be,
and a model fitted on them trusts the adapter too much (``adapter_fit``: with a weak ridge it
then turned away 71% of the held-out questions that have an answer). Cross-fitting removes that:
the dev questions are split into folds, and each fold's features are taken through an adapter
fitted without it, as a new question meets the shipped one. The scan model's figures out of fold
on those features, beside the same figures on the model's own vectors, say whether the adapter
earns a place in the default path. Held-out questions play no part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .adapter import Adapter
from .adapter_fit import Labelled, fit
from .calibration import ScanModel
from .evaluation import Question
from .fitting import Pair, pairs_for
from .pipeline import Pipeline
from .validation import cross_validated

FOLDS = 5


def through(pipeline: Pipeline, adapter: Adapter) -> Pipeline:
    """``pipeline`` with its vectors and its questions taken through ``adapter`` (from the
    index's stored model vectors: nothing is embedded again), scanning with the neutral model."""
    return Pipeline.of(
        pipeline.settings,
        pipeline.embedder.with_adapter(adapter),
        pipeline.index.through(adapter),
        ScanModel.neutral(),
    )


def folds_of(
    keys: Sequence[tuple[str, str]], folds: int = FOLDS, seed: int = 0
) -> dict[tuple[str, str], int]:
    """Each (corpus, question id) its fold: a seeded shuffle dealt round, so folds are even."""
    order = np.random.default_rng(seed).permutation(len(keys))
    return {keys[i]: n % folds for n, i in enumerate(order)}


def _without(data: Labelled, left_out: set[tuple[str, str]]) -> Labelled:
    """``data`` with the left-out dev questions moved out of the dev split (``fit`` trains on
    dev only)."""
    questions = tuple(
        q.model_copy(update={"split": "left-out"}) if (data.name, q.id) in left_out else q
        for q in data.questions
    )
    return dataclasses.replace(data, questions=questions)


def cross_fitted_pairs(
    sets: Sequence[tuple[str, Pipeline, Sequence[Question], Labelled]],
    ridge: float,
    folds: int = FOLDS,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[Pair], dict[tuple[str, str], bool]]:
    """Scan features of every dev question, each through an adapter fitted without its fold."""
    keys = [(name, q.id) for name, _, questions, _ in sets for q in questions if q.split == "dev"]
    fold = folds_of(keys, folds)
    pairs: list[Pair] = []
    absent: dict[tuple[str, str], bool] = {}
    for k in range(folds):
        left_out = {key for key, f in fold.items() if f == k}
        adapter = fit([_without(data, left_out) for *_, data in sets], ridge=ridge)
        progress(f"fold {k + 1}/{folds}: adapter {adapter.digest}")
        for name, pipeline, questions, _ in sets:
            mine = [q for q in questions if (name, q.id) in left_out]
            got, miss = pairs_for(through(pipeline, adapter), mine, name)
            pairs += got
            absent.update(miss)
    return pairs, absent


def compare(
    sets: Sequence[tuple[str, Pipeline, Sequence[Question], Labelled]],
    ridge: float,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The scan model out of fold on the dev questions (3 × 5-fold by question), on the
    model's own vectors and on cross-fitted adapted ones, per corpus."""
    coverage = {(name, q.id) for name, _, qs, _ in sets for q in qs if q.kind == "coverage"}
    raw: list[Pair] = []
    raw_absent: dict[tuple[str, str], bool] = {}
    for name, pipeline, questions, _ in sets:
        dev = [q for q in questions if q.split == "dev"]
        got, miss = pairs_for(through(pipeline, Adapter(None)), dev, name)
        raw += got
        raw_absent.update(miss)
    adapted, absent = cross_fitted_pairs(sets, ridge, progress=progress)

    def ruled(found: dict[tuple[str, str], bool]) -> set[tuple[str, str]]:
        return {key for key, gone in found.items() if gone}

    return {
        "ridge": ridge,
        "raw": cross_validated(raw, ruled(raw_absent), coverage),
        "cross-fitted adapter": cross_validated(adapted, ruled(absent), coverage),
    }
