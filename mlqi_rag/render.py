"""HTML the app shows beside an answer, as plain functions of the loaded pipeline: evidence cards
with their context, and the coverage line and per-interview strip (``render_corpus`` draws the
Corpus tab).

Kept apart from the Gradio wiring (``ui``) so it is tested without a server. All transcript text
goes through ``esc`` (``html.escape`` plus the characters Gradio's HTML templates interpret).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .answer import range_note
from .evidence import group_heading
from .retrieval import Filters
from .types import Answer, Citation, Interview, Turn, interview_order

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Pipeline

CONTEXT_CHARS = 900  # neighbouring turns are trimmed to this many characters in "show in context"
PASSAGE_PREVIEW_CHARS = 1200

# ---- small helpers -------------------------------------------------------------------------------


def esc(text: object) -> str:
    """HTML-escape, and neutralise ``{`` ``}`` ``$`` that Gradio's HTML templates would expand."""
    return (
        html.escape(str(text), quote=True)
        .replace("{", "&#123;")
        .replace("}", "&#125;")
        .replace("$", "&#36;")
    )


def sorted_interviews(pipe: Pipeline) -> list[Interview]:
    return sorted(pipe.index.interviews.values(), key=lambda iv: interview_order(iv.id))


def interview_name(iv: Interview) -> str:
    return f"Interview {iv.id}" + (f" · {iv.label}" if iv.label else "")


def _find_turn(iv: Interview, turn_index: int) -> int | None:
    """Position of the turn whose ``index`` is ``turn_index`` (they coincide for parsed data)."""
    if 0 <= turn_index < len(iv.turns) and iv.turns[turn_index].index == turn_index:
        return turn_index
    for pos, t in enumerate(iv.turns):
        if t.index == turn_index:
            return pos
    return None


def _paragraphs_html(turn: Turn, highlight: tuple[int, int] | None = None, quote: str = "") -> str:
    """A turn's paragraphs as <p>, the source span ``highlight`` wrapped in <mark>."""
    parts: list[str] = []
    marked = False
    for p in turn.paragraphs:
        if highlight:
            lo, hi = max(p.start, highlight[0]), min(p.end, highlight[1])
            if lo < hi:
                a, b = lo - p.start, hi - p.start
                parts.append(
                    f"<p>{esc(p.text[:a])}<mark>{esc(p.text[a:b])}</mark>{esc(p.text[b:])}</p>"
                )
                marked = True
                continue
        parts.append(f"<p>{esc(p.text)}</p>")
    if highlight and not marked and quote:
        # Offsets did not land in this turn (should not happen): fall back to finding the text.
        text = turn.text
        at = text.find(quote)
        if at >= 0:
            before, after = text[:at], text[at + len(quote) :]
            return f"<p>{esc(before)}<mark>{esc(quote)}</mark>{esc(after)}</p>"
    return "".join(parts)


def _trim(text: str, limit: int, keep_end: bool) -> str:
    if len(text) <= limit:
        return text
    return "… " + text[-limit:].lstrip() if keep_end else text[:limit].rstrip() + " …"


def _context_turn_html(turn: Turn, where: str, keep_end: bool) -> str:
    text = _trim(turn.text, CONTEXT_CHARS, keep_end=keep_end)
    paragraphs = "".join(f"<p>{esc(p)}</p>" for p in text.split("\n\n"))
    return (
        f'<div class="ev-turn ev-turn-{where}" data-turn="{turn.index}">'
        f'<div class="ev-speaker">{esc(turn.speaker)} · turn {turn.index}</div>{paragraphs}</div>'
    )


# ---- evidence cards ------------------------------------------------------------------------------


def context_html(pipe: Pipeline, c: Citation) -> str:
    """Previous turn, the cited turn (quote in <mark>) and next turn, for "show in context"."""
    iv = pipe.index.interviews.get(c.interview_id)
    pos = _find_turn(iv, c.turn_index) if iv else None
    if iv is None or pos is None:
        return '<div class="ev-context-missing">Context not available.</div>'
    parts = []
    if pos > 0:
        parts.append(_context_turn_html(iv.turns[pos - 1], "prev", keep_end=True))
    turn = iv.turns[pos]
    parts.append(
        f'<div class="ev-turn ev-turn-cited" data-turn="{turn.index}">'
        f'<div class="ev-speaker">{esc(turn.speaker)} · turn {turn.index}</div>'
        f"{_paragraphs_html(turn, (c.start, c.end), c.quote)}</div>"
    )
    if pos + 1 < len(iv.turns):
        parts.append(_context_turn_html(iv.turns[pos + 1], "next", keep_end=False))
    return "".join(parts)


def evidence_card(pipe: Pipeline, c: Citation, closest: bool = False, n: int = 0) -> str:
    """One card: interview and label, speaker, turn, code tags, verified mark, quote, context."""
    iv = pipe.index.interviews.get(c.interview_id)
    label = c.label or (iv.label if iv else "")
    kind = "closest" if closest else "citation"
    badges = []
    if c.verified:
        badges.append(
            '<span class="ev-verified" title="found verbatim in the transcript">✓ verified</span>'
        )
    else:
        badges.append('<span class="ev-unverified">not verified</span>')
    if closest:
        badges.append('<span class="ev-closest-badge">closest, not an answer</span>')
    tags = "".join(f'<span class="ev-tag">{esc(code)}</span>' for code in c.codes)
    number = f'<span class="ev-num">{n}</span>' if n else ""
    return (
        f'<article class="evidence-card{" closest" if closest else ""}" '
        f'data-interview="{esc(c.interview_id)}" data-turn="{c.turn_index}" '
        f'data-verified="{"true" if c.verified else "false"}" data-kind="{kind}" '
        f'data-start="{c.start}" data-end="{c.end}">'
        f'<header class="ev-head">{number}'
        f'<span class="ev-iv">Interview {esc(c.interview_id)}</span>'
        + (f'<span class="ev-label">{esc(label)}</span>' if label else "")
        + f'<span class="ev-badges">{"".join(badges)}</span></header>'
        f'<div class="ev-meta"><span class="ev-speaker-name">{esc(c.speaker)}</span>'
        f' · <span class="ev-turn-no">turn {c.turn_index}</span></div>'
        + (f'<div class="ev-tags">{tags}</div>' if tags else "")
        + _suggested_tags(pipe, c)
        + f'<blockquote class="ev-quote">{esc(c.quote)}</blockquote>'
        f'<details class="ev-context"><summary>show in context</summary>'
        f"{context_html(pipe, c)}</details></article>"
    )


def _suggested_tags(pipe: Pipeline, c: Citation) -> str:
    """Suggested codes on the cited passage, as dashed tags apart from the researchers'."""
    from .render_review import suggestion_tags_html  # imports this module

    return suggestion_tags_html(pipe, c)


def evidence_html(pipe: Pipeline, answer: Answer | None) -> str:
    """The evidence panel: the answer's citations, or the closest passages if it abstained."""
    if answer is None:
        return empty_evidence_html()
    if answer.abstained or not answer.citations:
        if not answer.closest:
            why = (
                "no passage came close"
                if answer.interviews_searched
                else "no passage matches the filters; widen them and ask again"
            )
            return (
                '<div class="evidence" data-state="abstained" data-count="0">'
                f'<div class="ev-summary">Not in the interviews — {why}.</div></div>'
            )
        cards = "".join(
            evidence_card(pipe, c, closest=True, n=i) for i, c in enumerate(answer.closest, 1)
        )
        return (
            f'<div class="evidence" data-state="abstained" data-count="{len(answer.closest)}">'
            '<div class="ev-summary ev-summary-closest">Not in the interviews. The closest '
            "passages are shown below — <strong>closest, not an answer</strong>.</div>"
            f"{cards}</div>"
        )
    n_iv = len(answer.interviews_cited)
    verified = sum(c.verified for c in answer.citations)
    cards = _grouped_cards(pipe, answer)
    return (
        f'<div class="evidence" data-state="answer" data-count="{len(answer.citations)}">'
        f'<div class="ev-summary">{len(answer.citations)} quote'
        f"{'s' if len(answer.citations) != 1 else ''} from {n_iv} interview"
        f"{'s' if n_iv != 1 else ''} · {verified} verified against the transcripts</div>"
        f"{cards}</div>"
    )


def _grouped_cards(pipe: Pipeline, answer: Answer) -> str:
    """The cards, under a header per practice when the answer grouped its quotes (the same
    groups as its text: by code, or by cluster), numbered as the answer cites them."""

    def card(i: int) -> str:
        return evidence_card(pipe, answer.citations[i], n=i + 1)

    labelled = [g for g in answer.groups if g.get("label")]
    if not labelled:
        return "".join(card(i) for i in range(len(answer.citations)))
    parts, placed = [], set()
    for g in labelled:
        kind, count = group_heading(g["source"], len(g["interviews"]))
        parts.append(
            f'<section class="ev-group" data-source="{esc(g["source"])}" '
            f'data-label="{esc(g["label"])}"><div class="ev-group-head">'
            f'<span class="ev-group-kind">{kind}</span> {esc(g["label"])} '
            f'<span class="ev-group-count">· {count}</span></div>'
            + "".join(card(i) for i in g["quotes"] if i not in placed)
            + "</section>"
        )
        placed.update(g["quotes"])
    rest = [i for i in range(len(answer.citations)) if i not in placed]
    return "".join(parts) + "".join(card(i) for i in rest)


def empty_evidence_html() -> str:
    return (
        '<div class="evidence" data-state="empty" data-count="0"><div class="ev-empty">'
        "Ask a question: the verified quotes behind the answer appear here, each with the "
        "exchange it comes from.</div></div>"
    )


def pending_evidence_html() -> str:
    return (
        '<div class="evidence" data-state="pending" data-count="0"><div class="ev-empty">'
        "Searching the interviews and verifying quotes…</div></div>"
    )


def error_evidence_html(message: str) -> str:
    return (
        '<div class="evidence" data-state="error" data-count="0">'
        f'<div class="ev-error">{esc(message)}</div></div>'
    )


def _iv_list(pipe: Pipeline, ids: Sequence[str]) -> str:
    out = []
    for i in ids:
        iv = pipe.index.interviews.get(i)
        out.append(f"{esc(i)} ({esc(iv.label)})" if iv and iv.label else esc(i))
    return ", ".join(out)


VERDICTS = ("discusses", "touches", "silent")
_VERDICT_WORD = {"discusses": "discusses", "touches": "touches on it", "silent": "silent"}


def _scope(filters: Filters | None) -> str:
    if filters is None:
        return ""
    scope = []
    if filters.codes:
        joiner = " and " if filters.codes_mode == "all" else " or "
        coder = f" (coded by {esc(filters.coder)})" if filters.coder else ""
        scope.append("codes " + joiner.join(esc(c) for c in filters.codes) + coder)
    scope.append("participant speech only" if filters.roles else "all speakers")
    return f" ({'; '.join(scope)})"


def _pct(p: float) -> str:
    return f"{round(100 * p)}%"


def coverage_header(answer: Answer) -> str:
    """ "7 of 36 interviews discuss this; 3 more touch on it", counted over every interview
    searched (the evidence scan), not only the ones quoted."""
    counts = {v: 0 for v in VERDICTS}
    for e in answer.evidence:
        verdict = str(e.get("verdict", "silent"))
        counts[verdict] = counts.get(verdict, 0) + 1
    n, d, t = len(answer.evidence), counts["discusses"], counts["touches"]
    text = (
        f"{d} of {n} interview{'s' if n != 1 else ''} {'discusses' if d == 1 else 'discuss'} this"
        + range_note(answer.coverage.get("range"))
    )
    if t:
        text += f"; {t} {'more ' if d else ''}touch{'es' if t == 1 else ''} on it"
    return text


def coverage_strip(pipe: Pipeline, answer: Answer) -> str:
    """One cell per searched interview: its verdict (colour) and P(discusses) (bar, percent).

    Ordered discusses → touches → silent, strongest first within each; plain spans, so a few
    hundred interviews stay a few kilobytes and wrap onto a handful of lines.
    """
    rank = {v: i for i, v in enumerate(VERDICTS)}
    rows = sorted(
        answer.evidence,
        key=lambda e: (rank.get(str(e.get("verdict")), 3), -float(e.get("p_discusses", 0.0))),
    )
    cells = []
    for e in rows:
        iv_id = str(e.get("interview_id", ""))
        verdict = str(e.get("verdict", "silent"))
        verdict = verdict if verdict in rank else "silent"
        p_d = float(e.get("p_discusses", 0.0))
        p_t = float(e.get("p_touches", 0.0))
        iv = pipe.index.interviews.get(iv_id)
        name = interview_name(iv) if iv else f"Interview {iv_id}"
        title = (
            f"{name}: {_VERDICT_WORD[verdict]} · P(discusses) {_pct(p_d)}, P(touches) {_pct(p_t)}"
        )
        cells.append(
            f'<span class="cov-cell cov-{verdict}" data-interview="{esc(iv_id)}" '
            f'data-verdict="{verdict}" data-strength="{p_d:.3f}" title="{esc(title)}">'
            f'<span class="cov-id">{esc(iv_id)}</span><span class="cov-pct">{_pct(p_d)}</span>'
            f'<span class="cov-bar"><span style="width: {min(100.0, max(0.0, 100 * p_d)):.0f}%">'
            "</span></span></span>"
        )
    legend = (
        '<span class="cov-legend"><span class="cov-key cov-discusses"></span>discusses '
        '<span class="cov-key cov-touches"></span>touches on it '
        '<span class="cov-key cov-silent"></span>silent · % = P(discusses)</span>'
    )
    return f'<div class="cov-strip">{"".join(cells)}</div>{legend}'


def coverage_html(pipe: Pipeline, answer: Answer, filters: Filters | None = None) -> str:
    """Which interviews discuss the question (every one searched, from the evidence scan), which
    are quoted, and under which filters."""
    searched = answer.interviews_searched
    cited = answer.interviews_cited
    seconds = answer.settings.get("seconds")
    timing = f" · {seconds:.1f} s" if isinstance(seconds, int | float) else ""
    scope_txt = _scope(filters)
    attrs = f'data-cited="{esc(",".join(cited))}" data-searched="{esc(",".join(searched))}"'
    if answer.evidence:
        discussing = [
            str(e.get("interview_id")) for e in answer.evidence if e.get("verdict") == "discusses"
        ]
        quoted = f"quoted: {_iv_list(pipe, cited)}" if cited else "nothing quoted"
        return (
            f'<div class="coverage" {attrs} data-discussing="{esc(",".join(discussing))}">'
            f'<div class="cov-head"><span class="cov-count">{esc(coverage_header(answer))}'
            f"</span></div>{coverage_strip(pipe, answer)}"
            f'<div class="cov-foot"><span class="cov-searched">Searched {len(searched)} '
            f"interview{'s' if len(searched) != 1 else ''}{scope_txt}</span> · {quoted} · "
            f"engine {esc(answer.engine)}{timing}</div></div>"
        )
    if not searched:
        support = '<span class="cov-none">No passage matches these filters</span>'
    elif answer.abstained or not cited:
        support = (
            '<span class="cov-none">No interview supports an answer</span> — '
            "closest passages shown, marked"
        )
    else:
        support = (
            f'<span class="cov-support">Supported by {len(cited)} of {len(searched)} '
            f"interviews searched:</span> {_iv_list(pipe, cited)}"
        )
    return (
        f'<div class="coverage" {attrs}>'
        f'{support}. <span class="cov-searched">Searched: {_iv_list(pipe, searched) or "none"}'
        f"{scope_txt}</span> · engine {esc(answer.engine)}{timing}</div>"
    )


COVERAGE_CSS = """
.coverage .cov-head { font-weight: 600; margin-bottom: 4px; }
.cov-strip { display: flex; flex-wrap: wrap; gap: 3px; margin: 4px 0; }
.cov-cell {
  display: inline-flex; flex-direction: column; min-width: 40px; padding: 2px 4px 3px;
  border-radius: 4px; font-size: 0.72rem; line-height: 1.15; border: 1px solid transparent;
}
.cov-cell .cov-id { font-weight: 700; }
.cov-cell .cov-pct { font-variant-numeric: tabular-nums; opacity: 0.85; }
.cov-bar { display: block; height: 3px; background: rgba(0, 0, 0, 0.1); border-radius: 2px; }
.cov-bar > span { display: block; height: 3px; border-radius: 2px; background: currentColor; }
.cov-discusses { background: #dcfce7; color: #14532d; border-color: #86efac; }
.cov-touches { background: #fef9c3; color: #713f12; border-color: #fde047; }
.cov-silent { background: var(--background-fill-primary); color: #64748b;
  border-color: var(--border-color-primary); }
.cov-legend { font-size: 0.75rem; color: var(--body-text-color-subdued); }
.cov-key { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  vertical-align: middle; margin: 0 2px 0 6px; border: 1px solid; }
.cov-foot { font-size: 0.8rem; color: var(--body-text-color-subdued); margin-top: 4px; }
"""
