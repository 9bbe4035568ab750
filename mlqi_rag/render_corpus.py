"""HTML of the app's Corpus tab, as plain functions of the loaded pipeline: the interviews table,
the codes × interviews heatmap (a coder's own codes on request, suggested codes hatched) and one
code's passages. Like ``render``, every transcript text goes through ``esc``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .render import PASSAGE_PREVIEW_CHARS, esc, interview_name, sorted_interviews
from .types import Interview, Turn

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Pipeline


CORPUS_HEADERS = [
    "Interview",
    "Label",
    "Language",
    "Turns",
    "Participant turns",
    "Words",
    "Participant words",
    "Coded",
    "Distinct codes",
    "Coders",
    "Coded copies",
]


def _words(text: str) -> int:
    return len(text.split())


def corpus_rows(pipe: Pipeline) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for iv in sorted_interviews(pipe):
        part = [t for t in iv.turns if t.role == "participant"]
        rows.append(
            [
                iv.id,
                iv.label,
                iv.language,
                len(iv.turns),
                len(part),
                sum(_words(t.text) for t in iv.turns),
                sum(_words(t.text) for t in part),
                "yes" if iv.codes else "no",
                len(iv.codes),
                ", ".join(iv.coders),
                len(iv.copies),
            ]
        )
    return rows


@dataclass(frozen=True)
class Passage:
    """The paragraphs of one turn that carry a code."""

    interview_id: str
    label: str
    turn_index: int
    speaker: str
    role: str
    text: str
    codes: tuple[str, ...]


def coded_passages(pipe: Pipeline, code: str) -> list[Passage]:
    out: list[Passage] = []
    for iv in sorted_interviews(pipe):
        for t in iv.turns:
            paras = [p for p in t.paragraphs if code in p.codes]
            if not paras:
                continue
            codes = tuple(dict.fromkeys(c for p in paras for c in p.codes))
            text = "\n\n".join(p.text for p in paras)
            out.append(Passage(iv.id, iv.label, t.index, t.speaker, t.role, text, codes))
    return out


def _turn_codes(t: Turn, coder: str) -> tuple[str, ...]:
    if not coder:
        return t.codes
    return tuple(dict.fromkeys(c for p in t.paragraphs for c in p.codes_by(coder)))


def code_matrix(
    pipe: Pipeline, coder: str = ""
) -> tuple[list[str], list[Interview], dict[tuple[str, str], int]]:
    """Codes × interviews → number of coded passages (turns carrying the code); with ``coder``,
    that coder's own codes instead of the reader's."""
    ivs = sorted_interviews(pipe)
    counts: dict[tuple[str, str], int] = {}
    for iv in ivs:
        for t in iv.turns:
            for code in _turn_codes(t, coder):
                counts[(code, iv.id)] = counts.get((code, iv.id), 0) + 1
    codes = sorted({code for code, _ in counts}, key=str.lower)
    return codes, ivs, counts


def code_heatmap_html(
    pipe: Pipeline, coder: str = "", suggested: Mapping[tuple[str, str], int] | None = None
) -> str:
    """``suggested``: (code, interview) → turns with a suggested code (``render_review``); a
    cell only suggestions fill is hatched, never counted as a researcher's."""
    codes, ivs, counts = code_matrix(pipe, coder)
    suggested = suggested or {}
    codes = sorted({*codes, *(c for c, _ in suggested)}, key=str.lower)
    if not codes:
        whose = f" coded by {esc(coder)}" if coder else ""
        return (
            f'<div class="heatmap-empty" data-coder="{esc(coder)}">No interview carries '
            f"qualitative codes{whose}.</div>"
        )
    top = max(counts.values(), default=1)

    def note(iv: Interview) -> str:
        if coder:
            missing = "" if coder in iv.coders else f"not coded by {coder}"
        else:
            missing = "" if iv.codes else "uncoded"
        return esc(" · ".join(x for x in (iv.label, missing) if x))

    head = "".join(
        f'<th data-interview="{esc(iv.id)}" title="{esc(interview_name(iv))}">'
        f"{esc(iv.id)}<br><small>{note(iv)}</small></th>"
        for iv in ivs
    )
    body = []
    for code in codes:
        cells = []
        total = 0
        for iv in ivs:
            n = counts.get((code, iv.id), 0)
            total += n
            if not n and (k := suggested.get((code, iv.id), 0)):
                cells.append(
                    f'<td class="heat heat-suggested" data-code="{esc(code)}" '
                    f'data-interview="{esc(iv.id)}" data-count="0" data-suggested="{k}" '
                    f'title="{k} turn(s) with this code suggested; no researcher coded it here">'
                    f"{k}</td>"
                )
                continue
            alpha = 0.12 + 0.78 * n / top if n else 0.0
            style = f' style="background: rgba(37, 99, 235, {alpha:.2f});' + (
                ' color: #fff;"' if alpha > 0.5 else '"'
            )
            cells.append(
                f'<td class="heat" data-code="{esc(code)}" data-interview="{esc(iv.id)}" '
                f'data-count="{n}"{style if n else ""}>{n or ""}</td>'
            )
        body.append(
            f'<tr><th class="heat-code" scope="row">{esc(code)}</th>{"".join(cells)}'
            f'<td class="heat-total">{total}</td></tr>'
        )
    return (
        f'<div class="heatmap-wrap" data-coder="{esc(coder)}"><table class="heatmap">'
        f'<thead><tr><th class="heat-corner">Code \\ interview</th>{head}'
        "<th>Total</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        '<div class="heat-note">Cells count coded passages (turns carrying the code'
        + (f", as coded by {esc(coder)}" if coder else ", as a reader sees them")
        + ").</div></div>"
    )


def code_passage_choices(pipe: Pipeline) -> list[tuple[str, str]]:
    codes, _, counts = code_matrix(pipe)
    totals = {c: sum(n for (code, _), n in counts.items() if code == c) for c in codes}
    return [(f"{c} ({totals[c]})", c) for c in codes]


def most_used_code(pipe: Pipeline) -> str | None:
    _, _, counts = code_matrix(pipe)
    totals: dict[str, int] = {}
    for (code, _iv), n in counts.items():
        totals[code] = totals.get(code, 0) + n
    return max(sorted(totals), key=lambda c: totals[c]) if totals else None


def code_passages_html(pipe: Pipeline, code: str | None) -> str:
    """A code-scoped view: every passage carrying ``code`` with interview, turn and speaker."""
    if not code:
        return '<div class="passages" data-code="" data-count="0">Pick a code.</div>'
    passages = coded_passages(pipe, code)
    if not passages:
        return (
            f'<div class="passages" data-code="{esc(code)}" data-count="0">'
            f"No passage carries the code {esc(code)}.</div>"
        )
    n_iv = len({p.interview_id for p in passages})
    items = []
    for p in passages:
        text = (
            p.text
            if len(p.text) <= PASSAGE_PREVIEW_CHARS
            else (p.text[:PASSAGE_PREVIEW_CHARS].rstrip() + " …")
        )
        paragraphs = "".join(f"<p>{esc(x)}</p>" for x in text.split("\n\n"))
        others = [c for c in p.codes if c != code]
        tags = "".join(f'<span class="ev-tag">{esc(c)}</span>' for c in others)
        items.append(
            f'<article class="passage" data-interview="{esc(p.interview_id)}" '
            f'data-turn="{p.turn_index}" data-role="{esc(p.role)}" '
            f'data-codes="{esc("|".join(p.codes))}">'
            f'<header class="ev-head"><span class="ev-iv">Interview {esc(p.interview_id)}</span>'
            + (f'<span class="ev-label">{esc(p.label)}</span>' if p.label else "")
            + f'</header><div class="ev-meta">{esc(p.speaker)} · turn {p.turn_index}'
            f"{' · interviewer' if p.role == 'interviewer' else ''}</div>"
            + (f'<div class="ev-tags">also: {tags}</div>' if tags else "")
            + f'<div class="passage-text">{paragraphs}</div></article>'
        )
    return (
        f'<div class="passages" data-code="{esc(code)}" data-count="{len(passages)}">'
        f'<div class="ev-summary"><strong>{esc(code)}</strong> — {len(passages)} passage'
        f"{'s' if len(passages) != 1 else ''} in {n_iv} interview{'s' if n_iv != 1 else ''}"
        f"</div>{''.join(items)}</div>"
    )


def corpus_summary(pipe: Pipeline) -> str:
    ivs = sorted_interviews(pipe)
    coded = sum(1 for iv in ivs if iv.codes)
    turns = sum(len(iv.turns) for iv in ivs)
    n_codes = len(pipe.index.code_counts())
    return (
        f"**{len(ivs)} interviews** ({coded} coded) · {turns} turns · "
        f"{len(pipe.index.chunks)} indexed passages · {n_codes} codes · "
        f"index `{pipe.index.generation}`"
    )
