"""Gradio wiring of the Corpus tab's review of suggested codes (kept out of ``ui``): compute the
suggestions on demand, filter them, accept or reject the selected ones, download the accepted
ones as CSV (registered with the app's ``ExportRegistry``, so the server hands out only files
this process wrote). Every decision refreshes the table and the heatmap's hatched cells."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MlqiError
from .guard import ExportRegistry
from .render import esc
from .render_review import (
    STATUS_CHOICES,
    TABLE_ROWS,
    code_filter_choices,
    heatmap_html,
    interview_filter_choices,
    select_choices,
    store_of,
    summary_html,
    table_html,
    write_accepted,
)
from .review import ReviewStore, attach
from .review_items import ACCEPTED, PENDING, REJECTED, Item, filter_items

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

INTRO = (
    "Codes a model suggests for participant passages no researcher coded, each with the "
    "coded passages nearest to it. Accept or reject them here; accepted ones export as CSV "
    'with coder "suggested-accepted". Nothing is written into the transcripts. In the heatmap '
    "above, cells only suggestions fill are hatched; on answer cards, suggested codes are "
    "dashed tags."
)
VERBS = {ACCEPTED: "Accepted", REJECTED: "Rejected", PENDING: "Undid the decision on"}


def _items(store: ReviewStore | None) -> list[Item] | None:
    """The store's items, or None before suggestions are computed."""
    if store is None or not store.cached():
        return None
    return store.items()


def review_view(
    store: ReviewStore | None, interview: str | None, code: str | None, status: str | None
) -> tuple[str, str, list[tuple[str, str]], list[Item] | None]:
    """(summary, table, selection choices, every item) under the filters."""
    items = _items(store)
    shown = None if items is None else filter_items(items, status or None, interview, code)
    return summary_html(store, items), table_html(shown), select_choices(shown or []), items


def decide(store: ReviewStore | None, ids: list[str] | None, status: str) -> str:
    """Apply a decision to the selected suggestions; a one-line message for the panel."""
    if store is None:
        return "No index to review."
    if not ids:
        return "Select one or more suggestions first (the *Selected suggestions* box)."
    try:
        done = store.decide(ids, status)
    except MlqiError as exc:
        return f"⚠️ {exc}"
    what = ", ".join(f"{it.code} ({it.interview_id}, turn {it.turn_index})" for it in done[:5])
    more = f" and {len(done) - 5} more" if len(done) > 5 else ""
    return f"{VERBS[status]} {len(done)} suggestion{'s' if len(done) != 1 else ''}: {what}{more}."


def review_panel(
    pipe: Pipeline | Any,
    exports: ExportRegistry,
    export_path: Path,
    heatmap: Any,
    heat_coder: Any,
) -> None:
    """The "Suggested codes" accordion of the Corpus tab; ``heatmap`` / ``heat_coder`` are the
    tab's heatmap and its coder picker, redrawn with the hatched cells after every change."""
    import gradio as gr

    first = store_of(pipe)
    if first is None:
        return
    index = pipe.index

    def store() -> ReviewStore:
        return attach(index)  # the current one: the last minimum confidence computed

    def refresh(iv: str, code: str, status: str) -> tuple[Any, ...]:
        try:
            summary, table, choices, _ = review_view(store(), iv, code, status)
        except MlqiError as exc:
            return f'<div class="rv-summary">⚠️ {esc(exc)}</div>', "", gr.Dropdown(choices=[])
        return summary, table, gr.Dropdown(choices=choices, value=[])

    def on_compute(
        mc: float | None, iv: str, code: str, status: str, coder: str
    ) -> tuple[Any, ...]:
        if mc is None or not 0 < float(mc) <= 1:
            message = "⚠️ The minimum confidence must be above 0 and at most 1."
            return (*refresh(iv, code, status), gr.Dropdown(), heatmap_html(pipe, coder), message)
        s = attach(index, float(mc), embedder=getattr(pipe, "embedder", None))
        try:
            items = s.items(compute=True)
        except MlqiError as exc:
            message = f"⚠️ {exc}"
            return (*refresh(iv, code, status), gr.Dropdown(), heatmap_html(pipe, coder), message)
        except Exception:  # noqa: BLE001 - one line in the panel, the trace in the log
            log.exception("computing suggestions failed")
            message = "⚠️ Computing suggestions failed; the details are in the server log."
            return (*refresh(iv, code, status), gr.Dropdown(), heatmap_html(pipe, coder), message)
        codes = code_filter_choices(items)
        code = code if code in {c for _, c in codes} else ""
        return (
            *refresh(iv, code, status),
            gr.Dropdown(choices=codes, value=code),
            heatmap_html(pipe, coder),
            f"{len(items)} suggestion{'s' if len(items) != 1 else ''} ready.",
        )

    def on_decide(
        ids: list[str] | None, status: str, iv: str, code: str, st: str, coder: str
    ) -> tuple[Any, ...]:
        message = decide(store(), ids, status)
        return (*refresh(iv, code, st), heatmap_html(pipe, coder), message)

    def on_select_all(iv: str, code: str, status: str) -> Any:
        _, _, choices, _ = review_view(store(), iv, code, status)
        return gr.Dropdown(choices=choices, value=[v for _, v in choices])

    def on_export() -> tuple[Any, str]:
        try:
            path, n = write_accepted(store(), export_path)
        except (OSError, MlqiError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            return gr.File(value=None, visible=False), f"⚠️ Could not export: {why}"
        exports.add(path)  # the one kind of file the server will hand out
        return (
            gr.File(value=str(path), visible=True),
            f"{n} accepted suggestion{'s' if n != 1 else ''} → {path.name}",
        )

    try:
        summary0, table0, choices0, items0 = review_view(first, "", "", "")
    except MlqiError as exc:
        summary0, table0, choices0, items0 = f"⚠️ {esc(exc)}", "", [], None
    with gr.Accordion("Suggested codes — review", open=True, elem_id="review"):
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            min_conf = gr.Number(
                value=first.min_confidence,
                minimum=0,
                maximum=1,
                step=0.01,
                label="Minimum confidence",
                info="Calibrated; lower shows more, less certain suggestions",
                scale=1,
                min_width=200,
                elem_id="review-min-confidence",
            )
            with gr.Column(scale=3):
                compute = gr.Button(
                    "Compute suggestions", variant="primary", elem_id="review-compute"
                )
                summary = gr.HTML(summary0, elem_id="review-summary", js_on_load=None)
        with gr.Row(equal_height=True):
            f_iv = gr.Dropdown(
                choices=interview_filter_choices(pipe),
                value="",
                label="Interview",
                elem_id="review-interview",
            )
            f_code = gr.Dropdown(
                choices=code_filter_choices(items0 or []),
                value="",
                label="Code",
                elem_id="review-code",
            )
            f_status = gr.Dropdown(
                choices=STATUS_CHOICES, value="", label="Status", elem_id="review-status"
            )
        table = gr.HTML(table0, elem_id="review-table", js_on_load=None)
        with gr.Row(equal_height=False):
            select = gr.Dropdown(
                choices=choices0,
                value=[],
                multiselect=True,
                label="Selected suggestions",
                info=f"Rows of the table (the first {TABLE_ROWS} under the filters)",
                scale=5,
                elem_id="review-select",
            )
            with gr.Column(scale=2, min_width=220):
                with gr.Row():
                    b_accept = gr.Button("Accept", variant="primary", elem_id="review-accept")
                    b_reject = gr.Button("Reject", variant="stop", elem_id="review-reject")
                with gr.Row():
                    b_all = gr.Button("Select all shown", size="sm", elem_id="review-select-all")
                    b_undo = gr.Button("Undo decision", size="sm", elem_id="review-undo")
        message = gr.Markdown("", elem_id="review-message")
        with gr.Row():
            b_export = gr.Button("Export accepted (CSV)", size="sm", elem_id="review-export")
            export_status = gr.Markdown("", elem_id="review-export-status")
        export_file = gr.File(
            label="Download", interactive=False, visible=False, elem_id="review-file"
        )

    filters = [f_iv, f_code, f_status]
    view = [summary, table, select]
    compute.click(
        on_compute,
        [min_conf, *filters, heat_coder],
        [*view, f_code, heatmap, message],
        api_visibility="private",
        concurrency_limit=1,
        concurrency_id="review-compute",
    )
    for f in filters:
        f.change(refresh, filters, view, api_visibility="private")
    for button, status in ((b_accept, ACCEPTED), (b_reject, REJECTED), (b_undo, PENDING)):
        button.click(
            lambda ids, *rest, _s=status: on_decide(ids, _s, *rest),
            [select, *filters, heat_coder],
            [*view, heatmap, message],
            api_visibility="private",
        )
    b_all.click(on_select_all, filters, select, api_visibility="private")
    b_export.click(on_export, None, [export_file, export_status], api_visibility="private")
