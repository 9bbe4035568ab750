"""HTML for reviewing suggested codes in the Corpus tab, and the marks suggestions leave
elsewhere: hatched heatmap cells and dashed tags on answer cards.

Suggestions are never shown as a researcher's code: the heatmap hatches a cell that only
suggestions fill, and an answer card lists them apart, as dashed tags labelled "suggested".
Only pending and accepted suggestions whose transcript is unchanged are shown there; rejected
and stale ones only in the review table. All transcript text goes through ``render.esc``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MlqiError
from .export import write_new_file
from .index import Index
from .render import esc, interview_name, sorted_interviews
from .render_corpus import code_heatmap_html
from .review import ReviewStore, attach, attached
from .review_items import ACCEPTED, PENDING, REJECTED, STALE, Item, counts, csv_rows, to_csv
from .types import Citation

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Pipeline

TABLE_ROWS = 200  # rows the table shows (and the selection offers); the filters narrow it down
PASSAGE_CHARS = 320
EXAMPLE_CHARS = 180
EXPORT_PREFIX = "mlqi-suggestions-accepted"
STATUS_CHOICES = [
    ("any status", ""),
    ("pending", PENDING),
    ("accepted", ACCEPTED),
    ("rejected", REJECTED),
    ("stale (transcript changed)", STALE),
]


def store_of(pipe: Pipeline | Any) -> ReviewStore | None:
    """The app's review store for ``pipe``'s index (created on first use); None for a stand-in
    index that cannot hold suggestions."""
    if not isinstance(getattr(pipe, "index", None), Index):
        return None
    return attach(pipe.index, embedder=getattr(pipe, "embedder", None))


def _shown_items(store: ReviewStore | None) -> list[Item]:
    if store is None or not store.cached():
        return []
    try:
        return store.items()
    except MlqiError:  # an unreadable decisions file: the review panel says so
        return []


# ---- heatmap and cards ---------------------------------------------------------------------------


def suggested_counts(items: Iterable[Item]) -> dict[tuple[str, str], int]:
    """(code, interview) → turns with a pending or accepted suggestion of the code (turns, as
    the heatmap counts researchers' codes)."""
    turns: dict[tuple[str, str], set[int]] = {}
    for it in items:
        if it.shown:
            turns.setdefault((it.code, it.interview_id), set()).add(it.turn_index)
    return {k: len(v) for k, v in turns.items()}


def heatmap_html(pipe: Pipeline | Any, coder: str = "") -> str:
    """The codes × interviews heatmap, cells only suggestions fill hatched (once computed)."""
    suggested = suggested_counts(_shown_items(store_of(pipe)))
    return code_heatmap_html(pipe, coder, suggested=suggested) + heatmap_legend(suggested)


def suggestion_tags_html(pipe: Pipeline | Any, c: Citation) -> str:
    """Dashed tags for the suggested codes on the cited passage, apart from the researchers'
    tags; "" when there are none (or suggestions were never computed)."""
    store = attached(getattr(pipe, "index", None))
    if store is None:
        return ""
    try:
        items = store.shown_for(c.interview_id, c.start, c.end)
    except MlqiError:
        return ""
    by_code: dict[str, Item] = {}
    for it in items:
        if it.code not in by_code or it.status == ACCEPTED:
            by_code[it.code] = it
    if not by_code:
        return ""
    tags = "".join(
        f'<span class="ev-tag ev-tag-suggested" data-code="{esc(code)}" '
        f'data-status="{it.status}" title="{esc(_tag_title(it))}">'
        f"suggested: {esc(code)}{' ✓' if it.status == ACCEPTED else ''}</span>"
        for code, it in sorted(by_code.items())
    )
    return (
        f'<div class="ev-tags ev-suggested" data-count="{len(by_code)}">'
        f'<span class="ev-suggested-label">Suggested codes, not a researcher\'s:</span>'
        f"{tags}</div>"
    )


def _tag_title(it: Item) -> str:
    state = "accepted by a reviewer" if it.status == ACCEPTED else "pending review"
    return f"Suggested code ({state}), confidence {it.confidence:.2f}; not coded by a researcher"


# ---- the review panel ----------------------------------------------------------------------------


def interview_filter_choices(pipe: Pipeline | Any) -> list[tuple[str, str]]:
    return [("all interviews", "")] + [
        (interview_name(iv), iv.id) for iv in sorted_interviews(pipe)
    ]


def code_filter_choices(items: Sequence[Item]) -> list[tuple[str, str]]:
    n: dict[str, int] = {}
    for it in items:
        n[it.code] = n.get(it.code, 0) + 1
    return [("all codes", "")] + [(f"{c} ({n[c]})", c) for c in sorted(n, key=str.lower)]


def _snippet(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rstrip() + " …"


def select_choices(items: Sequence[Item]) -> list[tuple[str, str]]:
    """Dropdown choices for the rows shown: ``35 · turn 6 · Data-issues · 0.13 · pending``."""
    return [
        (
            f"{it.interview_id} · turn {it.turn_index} · {it.code} · {it.confidence:.2f} · "
            f"{it.status}{' (stale)' if it.stale else ''} — {_snippet(it.text, 50)}",
            it.id,
        )
        for it in items[:TABLE_ROWS]
    ]


def summary_html(store: ReviewStore | None, items: Sequence[Item] | None) -> str:
    """One line: how many suggestions per status, or that they are not computed yet."""
    if store is None:
        return '<div class="rv-summary" data-state="none">No index to suggest codes for.</div>'
    if items is None:
        n = len(store.index.interviews)
        return (
            '<div class="rv-summary" data-state="not-computed">Suggestions are not computed '
            f"yet: press <strong>Compute suggestions</strong> (over {n} interview"
            f"{'s' if n != 1 else ''}; this takes a while, then it is cached).</div>"
        )
    c = counts(items)
    rare = store.rare_codes()
    rare_txt = (
        f' · <span class="rv-rare" title="{esc(", ".join(rare))}">{len(rare)} code'
        f"{'s' if len(rare) != 1 else ''} too rare to learn</span>"
        if rare
        else ""
    )
    return (
        f'<div class="rv-summary" data-state="computed" data-total="{len(items)}" '
        + " ".join(f'data-{k}="{v}"' for k, v in c.items())
        + f"><strong>{len(items)} suggestion{'s' if len(items) != 1 else ''}</strong> · "
        f"{c[PENDING]} pending · {c[ACCEPTED]} accepted · {c[REJECTED]} rejected · "
        f"{c[STALE]} stale · min confidence {store.min_confidence:g}{rare_txt}</div>"
    )


def _examples_html(it: Item) -> str:
    if not it.examples:
        why = "no longer suggested: the decision remains" if not it.suggested else "none"
        return f'<span class="rv-none">{why}</span>'
    rows = "".join(
        f'<li data-interview="{esc(e.interview_id)}"><span class="rv-ex-where">'
        f"Interview {esc(e.interview_id)}, turn {e.turn_index} · {esc(e.coder)} · "
        f"similarity {e.similarity:.2f}</span> {esc(_snippet(e.text, EXAMPLE_CHARS))}</li>"
        for e in it.examples
    )
    return f'<ol class="rv-examples">{rows}</ol>'


def _status_html(it: Item) -> str:
    when = f' title="{esc(it.decided_at)}"' if it.decided_at else ""
    badge = f'<span class="rv-status rv-{it.status}"{when}>{it.status}</span>'
    if it.stale:
        badge += f' <span class="rv-status rv-stale" title="{esc(it.stale)}">stale</span>'
    return badge


def table_html(items: Sequence[Item] | None, limit: int = TABLE_ROWS) -> str:
    """The suggestions: passage, code, confidence, the nearest coded examples, status."""
    if items is None:
        return '<div class="rv-table-wrap" data-count="0"></div>'
    if not items:
        return (
            '<div class="rv-table-wrap" data-count="0"><div class="rv-empty">'
            "No suggestion matches these filters.</div></div>"
        )
    rows = []
    for it in items[:limit]:
        text = esc(_snippet(it.text, PASSAGE_CHARS))
        rows.append(
            f'<tr class="rv-row" data-id="{it.id}" data-interview="{esc(it.interview_id)}" '
            f'data-code="{esc(it.code)}" data-status="{it.status}" '
            f'data-stale="{"true" if it.stale else "false"}">'
            f'<td class="rv-id"><code>{it.id}</code></td>'
            f'<td class="rv-where">{esc(it.interview_id)}<br>'
            f"<small>turn {it.turn_index}</small></td>"
            f'<td class="rv-passage">{text}</td>'
            f'<td><span class="ev-tag ev-tag-suggested">{esc(it.code)}</span></td>'
            f'<td class="rv-num">{it.confidence:.2f}</td>'
            f"<td>{_examples_html(it)}</td><td>{_status_html(it)}</td></tr>"
        )
    more = (
        f'<div class="rv-note">Showing {limit} of {len(items)}; narrow the filters to see '
        "the rest.</div>"
        if len(items) > limit
        else ""
    )
    return (
        f'<div class="rv-table-wrap" data-count="{len(items)}"><table class="rv-table">'
        "<thead><tr><th>ID</th><th>Interview</th><th>Passage</th><th>Suggested code</th>"
        "<th>Confidence</th><th>Nearest coded examples</th><th>Status</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{more}</div>"
    )


def write_accepted(store: ReviewStore, directory: str | Path) -> tuple[Path, int]:
    """The accepted suggestions as CSV under a generated name
    (``mlqi-suggestions-accepted-<time>.csv``), created exclusively so nothing is overwritten;
    no user text reaches the name. Returns the path and the number of rows."""
    rows = csv_rows(store.index, store.items())
    return write_new_file(directory, EXPORT_PREFIX, "csv", to_csv(rows)), len(rows)


def heatmap_legend(suggested: Mapping[tuple[str, str], int]) -> str:
    """The key under the heatmap once suggestions fill some cell."""
    if not suggested:
        return ""
    return (
        '<div class="heat-legend"><span class="heat-key heat-suggested"></span>'
        "hatched: only <em>suggested</em> codes there (pending or accepted suggestions; no "
        "researcher applied the code in that interview) — the number counts turns</div>"
    )


CSS = """
.heat.heat-suggested, .heat-key.heat-suggested {
  background: repeating-linear-gradient(
    135deg, rgba(217, 119, 6, 0.55) 0 3px, rgba(254, 243, 199, 0.6) 3px 7px
  );
  color: #7c2d12; font-style: italic; font-weight: 600;
}
.heat-key { display: inline-block; width: 22px; height: 12px; vertical-align: middle;
  border: 1px solid #d97706; margin-right: 6px; }
.heat-legend { font-size: 0.78rem; color: var(--body-text-color-subdued); margin-top: 4px; }
.ev-tag.ev-tag-suggested {
  background: transparent; color: #92400e; border: 1px dashed #d97706; font-style: italic;
}
.ev-suggested { align-items: center; }
.ev-suggested-label { font-size: 0.75rem; color: #92400e; }
.rv-summary { font-size: 0.88rem; padding: 6px 0; }
.rv-table-wrap { max-height: 640px; overflow-y: auto; }
.rv-table { border-collapse: collapse; font-size: 0.82rem; width: 100%; }
.rv-table th, .rv-table td {
  border: 1px solid var(--border-color-primary); padding: 4px 6px; vertical-align: top;
  text-align: left;
}
.rv-table thead th { position: sticky; top: 0; background: var(--background-fill-secondary); }
.rv-passage { max-width: 460px; }
.rv-id code { font-size: 0.75rem; }
.rv-num { text-align: right; font-variant-numeric: tabular-nums; }
.rv-examples { margin: 0; padding-left: 18px; font-size: 0.78rem; max-width: 420px; }
.rv-ex-where { color: var(--body-text-color-subdued); font-weight: 600; }
.rv-status { border-radius: 999px; padding: 0 8px; font-size: 0.75rem; font-weight: 600;
  border: 1px solid; white-space: nowrap; }
.rv-pending { color: #1d4ed8; border-color: #93c5fd; }
.rv-accepted { color: #15803d; border-color: #86efac; background: #f0fdf4; }
.rv-rejected { color: #6b7280; border-color: #d1d5db; text-decoration: line-through; }
.rv-stale { color: #b45309; border-color: #fcd34d; background: #fffbeb; }
.rv-row[data-status="rejected"] .rv-passage { color: var(--body-text-color-subdued); }
.rv-empty, .rv-none { color: var(--body-text-color-subdued); font-style: italic; }
.rv-note { font-size: 0.78rem; color: var(--body-text-color-subdued); margin: 4px 0; }
"""
