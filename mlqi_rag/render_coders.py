"""What the app and ``mlqi-rag agreement`` show about coders: who coded what, how far they agree,
and where they split.

``corpus_agreement`` computes once what both show (per interview at passage level, every
passage pooled, and interview level); the rest is HTML for the Corpus tab. Interviews with fewer
than two human coders are left out with a note, never counted as perfect or null agreement.
All text goes through ``render.esc``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import agreement as ag
from .coders import MODERATION
from .export import write_new_file
from .render import esc, interview_name
from .types import Interview, interview_order

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Pipeline

TOP_CODES = 15  # codes listed per level: the most applied ones
DISAGREEMENTS_SHOWN = 300  # the panel lists this many; the CSV has them all
DISAGREEMENTS_PREFIX = "mlqi-disagreements"


def corpus_coders(interviews: Iterable[Interview]) -> tuple[str, ...]:
    """Human coders by name, then ``moderation`` if any interview has a moderation copy."""
    names = {c for iv in interviews for c in iv.coders}
    return tuple(sorted(names - {MODERATION}, key=str.lower)) + (
        (MODERATION,) if MODERATION in names else ()
    )


def coder_choices(pipe: Pipeline, reader_label: str) -> list[tuple[str, str]]:
    """Dropdown choices: ``(reader_label, "")`` then each coder (value: the coder's name)."""
    return [(reader_label, "")] + [(c, c) for c in corpus_coders(pipe.index.interviews.values())]


# ---- agreement over a corpus -------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusAgreement:
    """Every interview with two human coders or more, measured at both levels."""

    interviews: tuple[Interview, ...]  # the ones measured, in id order
    passage: dict[str, ag.AgreementReport]  # per interview, participant paragraphs
    pooled: ag.AgreementReport | None  # every measured passage, coders missing where absent
    interview_level: ag.AgreementReport | None
    skipped: tuple[tuple[str, str], ...]  # (interview id, why)
    uncoded: tuple[str, ...]  # interviews with no coded copy at all
    disagreements: tuple[ag.Disagreement, ...]

    def to_dict(self, level: str = "both") -> dict[str, Any]:
        d: dict[str, Any] = {
            "interviews": [iv.id for iv in self.interviews],
            "skipped": [{"interview_id": i, "reason": why} for i, why in self.skipped],
            "uncoded": list(self.uncoded),
            "disagreements": len(self.disagreements),
        }
        if level in ("passage", "both"):
            d["passage"] = {
                "overall": self.pooled.to_dict() if self.pooled else None,
                "interviews": {k: r.to_dict() for k, r in self.passage.items()},
            }
        if level in ("interview", "both"):
            d["interview"] = self.interview_level.to_dict() if self.interview_level else None
        return d


def _pooled_passages(ivs: Sequence[Interview]) -> ag.AgreementReport:
    """Every participant paragraph of every interview as one set of units; a coder who did not
    code an interview is missing there (alpha allows that; kappa pairs coders where both rated).
    """
    names = corpus_coders(ivs)
    names = tuple(c for c in names if c != MODERATION)
    ratings: list[list[set[str] | None]] = [[] for _ in names]
    for iv in ivs:
        units = [p for t in iv.turns if t.role == "participant" for p in t.paragraphs]
        for row, c in zip(ratings, names, strict=True):
            coded = c in iv.coders
            row.extend(set(p.codes_by(c)) if coded else None for p in units)
    codes = sorted({code for row in ratings for r in row if r for code in r})
    return ag._report("passage", tuple(iv.id for iv in ivs), names, ratings, codes)


def corpus_agreement(interviews: Iterable[Interview]) -> CorpusAgreement:
    ivs = sorted(interviews, key=lambda iv: interview_order(iv.id))
    measured: list[Interview] = []
    skipped: list[tuple[str, str]] = []
    uncoded: list[str] = []
    for iv in ivs:
        humans = ag.human_coders(iv)
        if len(humans) >= 2:
            measured.append(iv)
        elif humans or iv.coders:
            who = ", ".join(iv.coders)
            skipped.append((iv.id, f"fewer than two human coders ({who})"))
        else:
            uncoded.append(iv.id)
    passage = {iv.id: ag.passage_agreement(iv) for iv in measured}
    codebook = sorted(
        {c for iv in measured for p in _paragraphs(iv) for _, cs in p.coded for c in cs}
    )
    return CorpusAgreement(
        interviews=tuple(measured),
        passage=passage,
        pooled=_pooled_passages(measured) if measured else None,
        interview_level=ag.interview_agreement(measured, codebook=codebook) if measured else None,
        skipped=tuple(skipped),
        uncoded=tuple(uncoded),
        disagreements=tuple(d for iv in measured for d in ag.disagreements(iv)),
    )


def _paragraphs(iv: Interview) -> list[Any]:
    return [p for t in iv.turns for p in t.paragraphs]


def top_codes(report: ag.AgreementReport, n: int = TOP_CODES) -> list[ag.Stat]:
    """The ``n`` codes applied most often (by all coders together), then by name."""
    return sorted(report.codes, key=lambda s: (-sum(k for _, k in s.applied), s.code))[:n]


def fmt(x: float, percent: bool = False) -> str:
    """A statistic for display: "—" when undefined (no variation), never a made-up number."""
    if math.isnan(x):
        return "—"
    shown = f"{100 * x:.1f}%" if percent else f"{x:.3f}"
    return shown[1:] if shown.startswith("-") and not shown.strip("-0.%") else shown  # no "-0.000"


def write_disagreements(rows: Sequence[ag.Disagreement], directory: str | Path) -> Path:
    """The disagreements as CSV under a generated name (``mlqi-disagreements-<time>.csv``),
    created exclusively so nothing is overwritten; no user text reaches the name."""
    return write_new_file(directory, DISAGREEMENTS_PREFIX, "csv", ag.disagreements_csv(rows))


# ---- HTML ----------------------------------------------------------------------------------------


def _stat_cells(s: ag.Stat) -> str:
    return (
        f'<td class="ag-num" data-stat="kappa">{fmt(s.kappa)}</td>'
        f'<td class="ag-num" data-stat="alpha">{fmt(s.alpha)}</td>'
        f'<td class="ag-num" data-stat="percent">{fmt(s.percent, percent=True)}</td>'
    )


def agreement_table_html(ca: CorpusAgreement) -> str:
    """Per interview (passages) and overall (passages pooled; interviews) κ, α and % agreement."""
    if not ca.interviews:
        why = "no interview has two human coders"
        if ca.skipped:
            why += " (" + "; ".join(f"{esc(i)}: {esc(r)}" for i, r in ca.skipped) + ")"
        return f'<div class="agreement" data-count="0"><div class="ag-empty">{why}.</div></div>'
    counts: dict[str, int] = {}
    for d in ca.disagreements:
        counts[d.interview_id] = counts.get(d.interview_id, 0) + 1
    head = (
        "<thead><tr><th>Interview</th><th>Coders</th><th>Level</th><th>Units</th>"
        "<th>Cohen's κ</th><th>Krippendorff's α</th><th>% agreement</th>"
        "<th>Disagreements</th></tr></thead>"
    )
    rows = []
    for iv in ca.interviews:
        r = ca.passage[iv.id]
        rows.append(
            f'<tr class="ag-row" data-interview="{esc(iv.id)}" data-level="passage">'
            f'<th scope="row">{esc(interview_name(iv))}</th><td>{esc(", ".join(r.coders))}</td>'
            f'<td>passage</td><td class="ag-num">{r.units}</td>{_stat_cells(r.overall)}'
            f'<td class="ag-num">{counts.get(iv.id, 0)}</td></tr>'
        )
    for report, label, level in (
        (ca.pooled, "All interviews", "passage"),
        (ca.interview_level, "All interviews", "interview"),
    ):
        if report is None:
            continue
        n_dis = str(len(ca.disagreements)) if level == "passage" else ""
        rows.append(
            f'<tr class="ag-row ag-overall" data-interview="*" data-level="{level}">'
            f'<th scope="row">{label}</th><td>{esc(", ".join(report.coders))}</td>'
            f'<td>{level}</td><td class="ag-num">{report.units}</td>'
            f'{_stat_cells(report.overall)}<td class="ag-num">{n_dis}</td></tr>'
        )
    notes = []
    if ca.skipped:
        notes.append(
            "Left out: " + "; ".join(f"interview {esc(i)} — {esc(r)}" for i, r in ca.skipped)
        )
    if ca.uncoded:
        notes.append(
            f"{len(ca.uncoded)} interview{'s' if len(ca.uncoded) != 1 else ''} "
            "without coded copies."
        )
    notes.append(
        "Passage units are participant paragraphs; interview units are interviews (was the code "
        "applied anywhere). Statistics pool every (unit, code) decision; moderation is left "
        "out; — = undefined (no variation)."
    )
    return (
        f'<div class="agreement" data-count="{len(ca.interviews)}">'
        f'<table class="ag-table">{head}<tbody>{"".join(rows)}</tbody></table>'
        f'<div class="ag-note">{"<br>".join(notes)}</div></div>'
    )


def code_agreement_html(ca: CorpusAgreement, n: int = TOP_CODES) -> str:
    """Per code (the most applied ones), at passage level (pooled) and interview level."""
    parts = []
    for report, title in ((ca.pooled, "passages"), (ca.interview_level, "interviews")):
        if report is None:
            continue
        rows = []
        for s in top_codes(report, n):
            applied = ", ".join(f"{esc(c)} {k}" for c, k in s.applied)
            rows.append(
                f'<tr data-code="{esc(s.code)}"><th scope="row">{esc(s.code)}</th>'
                f"<td>{applied}</td>{_stat_cells(s)}</tr>"
            )
        parts.append(
            f'<table class="ag-table ag-codes" data-level="{report.level}">'
            f"<caption>Top {len(rows)} codes, unit = {title}</caption>"
            "<thead><tr><th>Code</th><th>Applied by</th><th>κ</th><th>α</th><th>%</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return f'<div class="ag-codes-wrap">{"".join(parts)}</div>'


def disagreements_html(ca: CorpusAgreement, limit: int = DISAGREEMENTS_SHOWN) -> str:
    """Passages on which the coders split, one row per (passage, code)."""
    rows = ca.disagreements
    if not rows:
        return '<div class="disagreements" data-count="0">No disagreements.</div>'
    items = []
    for d in rows[:limit]:
        text = d.text if len(d.text) <= 400 else d.text[:400].rstrip() + " …"
        items.append(
            f'<tr data-interview="{esc(d.interview_id)}" data-turn="{d.turn_index}" '
            f'data-code="{esc(d.code)}"><td>{esc(d.interview_id)}</td><td>{d.turn_index}</td>'
            f'<td><span class="ev-tag">{esc(d.code)}</span></td>'
            f'<td class="ag-yes">{esc(", ".join(d.applied_by))}</td>'
            f'<td class="ag-no">{esc(", ".join(d.not_applied_by))}</td>'
            f'<td class="ag-text">{esc(text)}</td></tr>'
        )
    more = (
        f'<div class="ag-note">Showing {limit} of {len(rows)}; the CSV has them all.</div>'
        if len(rows) > limit
        else ""
    )
    return (
        f'<div class="disagreements" data-count="{len(rows)}">'
        '<table class="ag-table ag-dis"><thead><tr><th>Interview</th><th>Turn</th><th>Code</th>'
        "<th>Applied by</th><th>Not by</th><th>Passage</th></tr></thead>"
        f"<tbody>{''.join(items)}</tbody></table>{more}</div>"
    )


CSS = """
.ag-table { border-collapse: collapse; font-size: 0.84rem; margin-bottom: 8px; }
.ag-table th, .ag-table td {
  border: 1px solid var(--border-color-primary); padding: 3px 8px; vertical-align: top;
}
.ag-table th[scope="row"] { text-align: left; font-weight: 500; white-space: nowrap; }
.ag-table caption { text-align: left; font-weight: 600; padding: 4px 0; }
.ag-num { text-align: right; font-variant-numeric: tabular-nums; }
.ag-overall { background: var(--background-fill-secondary); font-weight: 600; }
.ag-note { font-size: 0.78rem; color: var(--body-text-color-subdued); margin: 4px 0; }
.ag-codes-wrap { display: flex; flex-wrap: wrap; gap: 16px; }
.disagreements { max-height: 480px; overflow-y: auto; }
.ag-dis .ag-text { font-size: 0.8rem; max-width: 640px; }
.ag-yes { color: #15803d; } .ag-no { color: #b91c1c; }
"""
