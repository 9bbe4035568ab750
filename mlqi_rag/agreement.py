"""Inter-coder agreement on merged interviews: how far two researchers' codes coincide.

Every code is a yes/no decision per unit, so the statistics are the binary nominal ones:

* **passage level** — a unit is a canonical *participant* paragraph (interviewer speech is not a
  finding, and Delve excerpts are paragraph-sized); a coder either applied code X to it or not.
* **interview level** — a unit is an interview; a coder applied X anywhere in it or not. A coder
  who did not code an interview is *missing* there (Krippendorff's alpha handles that; kappa only
  counts units both coders rated). The codebook is the union of the codes used in the
  interviews passed, so pass them all (or a ``codebook``) to get "neither used it" units.

Per code and pooled over every (unit, code) decision ("overall"): Cohen's kappa (mean pairwise,
Light's kappa, with more than two coders), Krippendorff's alpha (nominal, the ``krippendorff``
package, any number of coders, missing data allowed) and percent agreement (pairwise). Values
that are undefined (no variation at all) are NaN, never a made-up 0 or 1. The moderation copy
is left out by default: reconciliation is not an independent judgement, but it can be named in
``coders`` to see how each coder compares with it.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import krippendorff
import numpy as np

from .coders import MODERATION
from .types import Interview, Paragraph, Role

Level = Literal["passage", "interview"]
Matrix = list[list[float | None]]  # coders x units; None: that coder did not rate that unit


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


@dataclass(frozen=True)
class Stat:
    """Agreement on one code (``code == "*"``: pooled over all codes)."""

    code: str
    units: int  # units rated by at least two coders
    applied: tuple[tuple[str, int], ...]  # per coder: units the code was applied to
    percent: float
    kappa: float
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "units": self.units,
            "applied": dict(self.applied),
            "percent": _clean(self.percent),
            "kappa": _clean(self.kappa),
            "alpha": _clean(self.alpha),
        }


@dataclass(frozen=True)
class AgreementReport:
    level: Level
    interviews: tuple[str, ...]
    coders: tuple[str, ...]
    units: int
    overall: Stat
    codes: tuple[Stat, ...]

    def mean(self, field: Literal["kappa", "alpha", "percent"]) -> float:
        """Macro average over the codes where the value is defined."""
        vals = [getattr(s, field) for s in self.codes if not math.isnan(getattr(s, field))]
        return sum(vals) / len(vals) if vals else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "interviews": list(self.interviews),
            "coders": list(self.coders),
            "units": self.units,
            "overall": self.overall.to_dict(),
            "macro": {f: _clean(self.mean(f)) for f in ("kappa", "alpha", "percent")},
            "codes": [s.to_dict() for s in self.codes],
        }


def cohen_kappa(x: Sequence[float], y: Sequence[float]) -> float:
    """Cohen's kappa of two binary ratings of the same units: (po - pe) / (1 - pe)."""
    n = len(x)
    if n == 0:
        return math.nan
    po = sum(a == b for a, b in zip(x, y, strict=True)) / n
    px, py = sum(x) / n, sum(y) / n
    pe = px * py + (1 - px) * (1 - py)
    return math.nan if pe >= 1 else (po - pe) / (1 - pe)


def _pairs(m: Matrix) -> list[tuple[list[float], list[float]]]:
    """For each pair of coders, their ratings on the units both rated."""
    out = []
    for a, b in combinations(range(len(m)), 2):
        both = [(x, y) for x, y in zip(m[a], m[b], strict=True) if x is not None and y is not None]
        if both:
            out.append(([x for x, _ in both], [y for _, y in both]))
    return out


def krippendorff_alpha(
    m: Matrix,
    level: Literal["nominal", "ordinal"] = "nominal",
    domain: Sequence[float] | None = None,
) -> float:
    """Alpha over a coders x units matrix (None = missing); NaN when undefined. ``domain``: the
    ordered values (default: those that occur), which an ordinal alpha needs in full."""
    data = np.array([[np.nan if v is None else v for v in row] for row in m], dtype=float)
    seen = sorted({v for row in m for v in row if v is not None})
    if data.shape[1] == 0 or len(seen) < 2:
        return math.nan  # no variation at all: alpha is undefined, not 1
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        value = krippendorff.alpha(
            reliability_data=data, level_of_measurement=level, value_domain=domain or seen
        )
    return float(value)


def _stat(code: str, coders: Sequence[str], m: Matrix) -> Stat:
    pairs = _pairs(m)
    compared = sum(len(x) for x, _ in pairs)
    agreed = sum(sum(a == b for a, b in zip(x, y, strict=True)) for x, y in pairs)
    kappas = [k for x, y in pairs if not math.isnan(k := cohen_kappa(x, y))]
    rated = sum(1 for u in zip(*m, strict=True) if sum(v is not None for v in u) >= 2)
    return Stat(
        code=code,
        units=rated,
        applied=tuple((c, int(sum(v or 0 for v in row))) for c, row in zip(coders, m, strict=True)),
        percent=agreed / compared if compared else math.nan,
        kappa=sum(kappas) / len(kappas) if kappas else math.nan,
        alpha=krippendorff_alpha(m),
    )


def _report(
    level: Level,
    ids: tuple[str, ...],
    coders: Sequence[str],
    ratings: list[list[set[str] | None]],  # coders x units: codes applied, None = not rated
    codes: Sequence[str],
) -> AgreementReport:
    if len(coders) < 2:
        raise ValueError(f"agreement needs two coders or more, got {list(coders)}")

    def matrix(code: str) -> Matrix:
        return [[None if r is None else float(code in r) for r in row] for row in ratings]

    per_code = {code: matrix(code) for code in codes}
    pooled: Matrix = [[v for code in codes for v in per_code[code][i]] for i in range(len(coders))]
    return AgreementReport(
        level=level,
        interviews=ids,
        coders=tuple(coders),
        units=len(ratings[0]),
        overall=_stat("*", coders, pooled),
        codes=tuple(_stat(code, coders, per_code[code]) for code in codes),
    )


def human_coders(interview: Interview) -> tuple[str, ...]:
    return tuple(c for c in interview.coders if c != MODERATION)


def _units(interview: Interview, role: Role | None) -> list[tuple[int, str, Paragraph]]:
    return [
        (t.index, t.speaker, p)
        for t in interview.turns
        if role is None or t.role == role
        for p in t.paragraphs
    ]


def passage_agreement(
    interview: Interview, coders: Sequence[str] | None = None, role: Role | None = "participant"
) -> AgreementReport:
    """Agreement per participant paragraph of one merged interview."""
    names = tuple(coders) if coders is not None else human_coders(interview)
    units = _units(interview, role)
    ratings: list[list[set[str] | None]] = [
        [set(p.codes_by(c)) for _, _, p in units] for c in names
    ]
    codes = sorted({code for row in ratings for r in row if r for code in r})
    return _report("passage", (interview.id,), names, ratings, codes)


def interview_agreement(
    interviews: Sequence[Interview],
    coders: Sequence[str] | None = None,
    codebook: Iterable[str] | None = None,
) -> AgreementReport:
    """Agreement on which codes each interview got at all (unit = interview)."""
    names = (
        tuple(coders)
        if coders is not None
        else tuple(dict.fromkeys(c for iv in interviews for c in human_coders(iv)))
    )
    ratings: list[list[set[str] | None]] = [
        [
            {code for p in _all_paragraphs(iv) for code in p.codes_by(c)}
            if c in iv.coders
            else None
            for iv in interviews
        ]
        for c in names
    ]
    codes = (
        sorted(set(codebook))
        if codebook is not None
        else sorted({code for row in ratings for r in row if r for code in r})
    )
    return _report("interview", tuple(iv.id for iv in interviews), names, ratings, codes)


def _all_paragraphs(interview: Interview) -> list[Paragraph]:
    return [p for t in interview.turns for p in t.paragraphs]


@dataclass(frozen=True)
class Disagreement:
    """A passage one coder gave ``code`` and another did not."""

    interview_id: str
    turn_index: int
    speaker: str
    start: int
    end: int
    code: str
    applied_by: tuple[str, ...]
    not_applied_by: tuple[str, ...]
    codes: tuple[tuple[str, tuple[str, ...]], ...]  # every coder's codes on this passage
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "interview_id": self.interview_id,
            "turn_index": self.turn_index,
            "speaker": self.speaker,
            "start": self.start,
            "end": self.end,
            "code": self.code,
            "applied_by": list(self.applied_by),
            "not_applied_by": list(self.not_applied_by),
            "codes": {c: list(cs) for c, cs in self.codes},
            "text": self.text,
        }


def disagreements(
    interview: Interview, coders: Sequence[str] | None = None, role: Role | None = "participant"
) -> tuple[Disagreement, ...]:
    """Every (passage, code) on which the coders split, in transcript order."""
    names = tuple(coders) if coders is not None else human_coders(interview)
    rows: list[Disagreement] = []
    for turn_index, speaker, p in _units(interview, role):
        by = {c: p.codes_by(c) for c in names}
        for code in dict.fromkeys(code for cs in by.values() for code in cs):
            yes = tuple(c for c in names if code in by[c])
            if len(yes) < len(names):
                rows.append(
                    Disagreement(
                        interview.id,
                        turn_index,
                        speaker,
                        p.start,
                        p.end,
                        code,
                        yes,
                        tuple(c for c in names if c not in yes),
                        tuple(by.items()),
                        p.text,
                    )
                )
    return tuple(rows)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe(cell: str) -> str:
    """OWASP CSV injection: a cell a spreadsheet would run as a formula gets a leading quote."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def disagreements_csv(rows: Iterable[Disagreement]) -> str:
    out = io.StringIO()
    w = csv.writer(out)  # RFC 4180 "\r\n": a cell holding a line break is quoted
    w.writerow(
        ["interview", "turn", "speaker", "start", "end", "code", "applied_by", "not_applied_by"]
        + ["codes", "text"]
    )
    for r in rows:
        codes = " | ".join(f"{c}: {'; '.join(cs)}" for c, cs in r.codes)
        cells = [r.interview_id, str(r.turn_index), r.speaker, str(r.start), str(r.end), r.code]
        cells += ["; ".join(r.applied_by), "; ".join(r.not_applied_by), codes, r.text]
        w.writerow([_safe(c) for c in cells])
    return out.getvalue()
