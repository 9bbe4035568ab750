"""How far two readers of the transcripts agree on a coverage question's gold list.

A coverage question's gold ("which interviewees discuss X?") is one reader's judgement of where
"discusses" ends and "touches on" begins. A second reader, blind to the first and to the product,
labelled some of the same questions again (``second_reader`` in the question file). Their
agreement is the ceiling any system can be held to on those questions: scored against either
reader, a list cannot be expected to agree with one reader better than the other reader does.

Where the two readings were then reconciled (an adjudicator, also blind to the product, decided
each interview they disagreed on, as qualitative researchers reconcile two coders), the question's
gold is that consensus and ``first_reader`` keeps the first reading; otherwise the gold is the
first reading itself.

Per question this gives the two readers' interview-set F1 and count difference, and the product's
F1 and count error against each reader (the eval's own ``coverage_f1`` and count error are against
the gold). Over all second-read questions, Krippendorff's alpha between the two readers on every
(question, interview) unit: nominal on "discusses or not" (what a list decides) and ordinal on the
three levels silent < touches < discusses.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from .agreement import krippendorff_alpha
from .fitting import set_f1

LEVELS = {"silent": 0, "touches": 1, "discusses": 2}


def levels(
    interviews: Sequence[str], discusses: Collection[str], touches: Collection[str]
) -> list[int]:
    """One reader's level for each of ``interviews`` (silent 0, touches 1, discusses 2)."""
    return [
        LEVELS["discusses"]
        if iv in discusses
        else LEVELS["touches"]
        if iv in touches
        else LEVELS["silent"]
        for iv in interviews
    ]


def question_metrics(
    interviews: Sequence[str],
    first: tuple[Collection[str], Collection[str]],
    second: tuple[Collection[str], Collection[str]],
    listed: Collection[str],
) -> dict[str, Any]:
    """One second-read question: ``first`` and ``second`` are each reader's (discusses,
    touches); ``listed`` is the product's coverage list; ``interviews`` all that were searched."""
    out: dict[str, Any] = {
        "readers_f1": set_f1(set(first[0]), set(second[0])),
        "readers_count_error": abs(len(set(first[0])) - len(set(second[0]))),
        "reader_levels": [levels(interviews, *first), levels(interviews, *second)],
    }
    for name, reading in (("first", first), ("second", second)):
        out[f"coverage_f1_{name}_reader"] = set_f1(set(listed), set(reading[0]))
        out[f"coverage_count_error_{name}_reader"] = abs(len(set(listed)) - len(set(reading[0])))
    return out


def alphas(per_question: Iterable[Sequence[Sequence[int]]]) -> dict[str, float | None]:
    """Krippendorff's alpha over every (question, interview) unit of the second-read
    questions: nominal on discusses-or-not, ordinal on the three levels. None when there is
    nothing to measure (no second-read question, or no variation at all)."""
    first: list[int] = []
    second: list[int] = []
    for pair in per_question:
        first += list(pair[0])
        second += list(pair[1])
    if not first:
        return {"alpha_discusses": None, "alpha_levels": None}
    top = LEVELS["discusses"]
    binary = krippendorff_alpha(
        [[float(v == top) for v in first], [float(v == top) for v in second]]
    )
    ordinal = krippendorff_alpha(
        [[float(v) for v in first], [float(v) for v in second]],
        "ordinal",
        sorted(LEVELS.values()),
    )
    return {
        "alpha_discusses": None if math.isnan(binary) else binary,
        "alpha_levels": None if math.isnan(ordinal) else ordinal,
    }
