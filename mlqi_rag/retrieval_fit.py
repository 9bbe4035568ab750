"""Fitting the retriever's constants on the dev questions, reported on the held-out ones.

Four numbers shape what ``Retriever`` returns and were once set by hand: the reciprocal-rank
fusion constant (``rrf_k``), the weight of the BM25 ranking against the dense one
(``keyword_weight``), how many candidates each ranking contributes (``candidates``) and how many
passages one interview may hold in a list (``per_interview_cap``). ``fit`` tries every point of
``GRID`` on the dev questions of each corpus given (the seeds and the 36 study transcripts) and
scores each question by the mean of three retrieval figures the eval reports:

- interview recall@10 (the interviews that discuss it are among the passages),
- the gold quotes found in the ten passages (quote hit@10),
- the reciprocal rank of the first passage holding a gold quote (MRR).

Each corpus counts once, however many questions it has. A grid's best point on the same
questions it was picked on flatters itself, so it replaces the setting used before
(``BASELINE``) only when it beats it by more than one standard error of their paired
per-question difference; otherwise the setting before stands. The held-out questions, never
used to pick, are reported for both. ``Settings``' defaults are the setting this picks, which
a slow test checks.

A fifth constant, ``code_boost``, multiplies the fused score of passages carrying a code the
question names ("How do practitioners handle missing values?" names Data-missing-values). It
acts only on questions that name a code of a coded corpus, so it is fitted second, with the four
constants at their pick, on those dev questions alone (``fit_code_boost``). Its setting before
is no boost at all: a code must earn its weight over its words by the same one-standard-error
rule, and among boosts that score alike the smallest wins.

A sixth, ``name_weight``, weighs a third ranking in the fusion: the passages that say a tool or
method the question names, however the transcriber split it ("ML flow" for MLflow). It is
fitted third, the same way, on the dev questions that name something some interviewees say
(``fit_name_weight``). The four constants are fitted with the pipeline's two weights as shipped,
so a run with the shipped settings checks that none of the three steps would move.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .evaluation import Question, quote_locator, retrieval_metrics, retrieved_items
from .fit_rule import decision, pick
from .question import codes_named
from .retrieval import Filters, Retriever

METRICS = ("interview_recall@10", "quote_hit@10", "mrr")


@dataclass(frozen=True)
class RetrievalSetting:
    rrf_k: int
    keyword_weight: float
    candidates: int
    per_interview_cap: int

    def label(self) -> str:
        return (
            f"rrf_k={self.rrf_k} keyword_weight={self.keyword_weight:g} "
            f"candidates={self.candidates} cap={self.per_interview_cap}"
        )


BASELINE = RetrievalSetting(rrf_k=60, keyword_weight=1.0, candidates=50, per_interview_cap=3)
GRID = tuple(
    RetrievalSetting(*point)
    for point in itertools.product(
        (10, 30, 60, 120),  # rrf_k
        (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0),  # keyword_weight
        (50, 100, 200),  # candidates
        (2, 3, 4, 5),  # per_interview_cap
    )
)
CODE_BOOSTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
NAME_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
Locators = dict[str, Callable[[str, str], tuple[int, int] | None]]


@dataclass(frozen=True)
class FitSet:
    """One corpus's loaded pipeline and its questions (both splits)."""

    name: str
    pipeline: Any
    questions: tuple[Question, ...]


def question_scores(
    pipeline: Any,
    questions: Sequence[Question],
    setting: RetrievalSetting,
    locate: Callable[[str, str], tuple[int, int] | None] | None = None,
    extra: dict[str, float] | None = None,
) -> dict[str, dict[str, float]]:
    """Per answerable question: the three figures and their mean (``score``) under ``setting``
    (and the settings in ``extra``; the pipeline's otherwise). ``locate`` finds the gold quotes
    in the sources (``evaluation.quote_locator``); a fit passes one per corpus, so each quote is
    looked up once, not once per grid point."""
    s = pipeline.settings.model_copy(update={**asdict(setting), **(extra or {})})
    retriever = Retriever(
        pipeline.index, pipeline.retriever.embedder, s, terms=pipeline.retriever.terms
    )
    locate = locate or quote_locator(pipeline.index)
    out = {}
    for q in questions:
        if not q.answerable:
            continue
        hits = retriever.retrieve(q.question, k=10, filters=Filters()).hits
        m = retrieval_metrics(retrieved_items(hits), q, locate)
        figures = {k: m[k] for k in METRICS if k in m}
        out[q.id] = {**figures, "score": float(np.mean(list(figures.values())))}
    return out


def _mean_of(rows: dict[str, dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows.values() if key in r]
    return float(np.mean(vals)) if vals else float("nan")


def _summary(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    """One corpus's questions: the mean of each figure and of the score, and how many."""
    return {
        **{k: round(_mean_of(rows, k), 4) for k in (*METRICS, "score")},
        "questions": len(rows),
    }


def _split(fs: FitSet, split: str) -> list[Question]:
    return [q for q in fs.questions if (q.split == "heldout") == (split == "heldout")]


def naming_a_code(fs: FitSet) -> FitSet:
    """``fs`` with only the questions that name one of its corpus's codes (none for a corpus
    without codes, such as the 36 plain transcripts)."""
    codes = tuple(fs.pipeline.index.code_counts())
    return FitSet(
        fs.name, fs.pipeline, tuple(q for q in fs.questions if codes_named(q.question, codes))
    )


def naming_a_name(fs: FitSet) -> FitSet:
    """``fs`` with only the questions that name a tool or method some of its interviewees say
    and most do not (``CorpusNames.distinctive_names``)."""
    terms = fs.pipeline.retriever.terms
    return FitSet(
        fs.name, fs.pipeline, tuple(q for q in fs.questions if terms.distinctive_names(q.question))
    )


def fit(
    sets: Sequence[FitSet],
    grid: Sequence[RetrievalSetting] = GRID,
    baseline: RetrievalSetting = BASELINE,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every grid point on the dev questions; the pick (see the module's docstring); and the
    held-out figures of the pick and of ``baseline``."""
    points = list(dict.fromkeys([baseline, *grid]))
    dev = {fs.name: _split(fs, "dev") for fs in sets}
    locators = {fs.name: quote_locator(fs.pipeline.index) for fs in sets}
    scores: dict[RetrievalSetting, dict[str, dict[str, dict[str, float]]]] = {}
    for n, point in enumerate(points, start=1):
        if progress and n % 20 == 0:
            progress(f"[{n}/{len(points)}] {point.label()}")
        scores[point] = {
            fs.name: question_scores(fs.pipeline, dev[fs.name], point, locators[fs.name])
            for fs in sets
        }

    def objective(point: RetrievalSetting) -> float:
        return float(np.mean([_mean_of(scores[point][fs.name], "score") for fs in sets]))

    best = max(points, key=lambda p: (objective(p), p == baseline))
    chosen, diff, se = pick(
        best,
        baseline,
        [
            np.array(
                [
                    scores[best][fs.name][qid]["score"] - scores[baseline][fs.name][qid]["score"]
                    for qid in scores[baseline][fs.name]
                ]
            )
            for fs in sets
        ],
    )

    def figures(point: RetrievalSetting, split: str) -> dict[str, dict[str, float]]:
        out = {}
        for fs in sets:
            rows = (
                scores[point][fs.name]
                if split == "dev"
                else question_scores(fs.pipeline, _split(fs, split), point, locators[fs.name])
            )
            out[fs.name] = _summary(rows)
        return out

    ranked = sorted(points, key=objective, reverse=True)
    return {
        "metrics": list(METRICS),
        "grid_points": len(points),
        **decision(best, baseline, chosen, diff, se),
        **_weights(sets, chosen, locators),
        "dev": {
            "chosen": figures(chosen, "dev"),
            "baseline": figures(baseline, "dev"),
            "best": figures(best, "dev"),
        },
        "heldout": {"chosen": figures(chosen, "heldout"), "baseline": figures(baseline, "heldout")},
        "top": [{**asdict(p), "dev_score": round(objective(p), 4)} for p in ranked[:10]],
    }


def _weights(
    sets: Sequence[FitSet], setting: RetrievalSetting, locators: Locators
) -> dict[str, Any]:
    code = fit_code_boost(sets, setting, locators)
    boost = code["chosen"]["code_boost"]
    return {
        "code_boost": code,
        "name_weight": fit_name_weight(sets, setting, locators, code_boost=boost),
    }


def fit_code_boost(
    sets: Sequence[FitSet],
    setting: RetrievalSetting,
    locators: Locators | None = None,
    boosts: Sequence[float] = CODE_BOOSTS,
) -> dict[str, Any]:
    """``code_boost`` on the dev questions that name a code (see the module's docstring)."""
    return fit_weight(sets, setting, "code_boost", naming_a_code, boosts, locators)


def fit_name_weight(
    sets: Sequence[FitSet],
    setting: RetrievalSetting,
    locators: Locators | None = None,
    weights: Sequence[float] = NAME_WEIGHTS,
    code_boost: float | None = None,
) -> dict[str, Any]:
    """``name_weight`` on the dev questions that name a tool or method some interviewees say
    (see the module's docstring), with ``code_boost`` at its pick."""
    fixed = {} if code_boost is None else {"code_boost": code_boost}
    return fit_weight(sets, setting, "name_weight", naming_a_name, weights, locators, fixed)


def fit_weight(
    sets: Sequence[FitSet],
    setting: RetrievalSetting,
    knob: str,
    applies: Callable[[FitSet], FitSet],
    values: Sequence[float],
    locators: Locators | None = None,
    fixed: dict[str, float] | None = None,
    baseline: float = 0.0,
) -> dict[str, Any]:
    """One weight that acts only on some questions (``applies`` keeps them), fitted on those
    dev questions with the four constants at ``setting`` (and ``fixed``): the best value
    replaces ``baseline`` (0: the weight off) by the one-standard-error rule, and among values
    that score alike the smallest wins. Held-out questions are only reported."""
    sets = [applies(fs) for fs in sets]
    sets = [fs for fs in sets if fs.questions]
    locators = locators or {fs.name: quote_locator(fs.pipeline.index) for fs in sets}

    def scores(value: float, split: str) -> dict[str, dict[str, dict[str, float]]]:
        extra = {**(fixed or {}), knob: value}
        return {
            fs.name: question_scores(
                fs.pipeline, _split(fs, split), setting, locators[fs.name], extra=extra
            )
            for fs in sets
        }

    dev = {v: scores(v, "dev") for v in dict.fromkeys([baseline, *values])}

    def objective(value: float) -> float:
        means = [_mean_of(dev[value][fs.name], "score") for fs in sets]
        return float(np.mean(means)) if means else 0.0

    # ties: the setting before, then the smallest value
    best = max(dev, key=lambda v: (round(objective(v), 9), v == baseline, -v))
    chosen, diff, se = pick(
        best,
        baseline,
        [
            np.array([dev[best][n][q]["score"] - dev[baseline][n][q]["score"] for q in rows])
            for n, rows in dev[baseline].items()
        ],
    )

    def figures(rows: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
        return {name: _summary(r) for name, r in rows.items()}

    return {
        **decision({knob: best}, {knob: baseline}, {knob: chosen}, diff, se),
        "dev": {"chosen": figures(dev[chosen]), "baseline": figures(dev[baseline])},
        "heldout": {
            "chosen": figures(scores(chosen, "heldout")),
            "baseline": figures(scores(baseline, "heldout")),
        },
        "by_value": {str(v): round(objective(v), 4) for v in dev},
    }
