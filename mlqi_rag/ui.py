"""The Gradio app: chat with evidence cards, filters, exports, and a corpus overview.

Everything that computes what the app shows is a plain function of the loaded ``Pipeline`` and
the user's inputs (``respond``, ``export_quotes`` in ``chat``; the HTML in ``render``), so it is
tested without a server. ``build_ui`` only wires those functions to components; starting the
server is ``serve``'s job and deciding what it lets through is ``guard``'s. Gradio itself is
imported lazily, by ``build_ui``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .answer import available_engines
from .chat import SCOPES, SessionQuotes, export_quotes, resolve_export_dir, respond
from .guard import ExportRegistry, attach_exports
from .render import COVERAGE_CSS, empty_evidence_html, interview_name, sorted_interviews
from .render_coders import CSS as CODERS_CSS
from .render_coders import coder_choices, corpus_agreement
from .render_corpus import (
    CORPUS_HEADERS,
    code_passage_choices,
    code_passages_html,
    corpus_rows,
    corpus_summary,
    most_used_code,
)
from .render_review import CSS as REVIEW_CSS
from .render_review import heatmap_html
from .settings import Settings
from .ui_coders import agreement_panel
from .ui_review import review_panel

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr

    from .pipeline import Pipeline

log = logging.getLogger(__name__)

APP_TITLE = "ML quality interviews — grounded answers"
EXAMPLE_QUESTIONS = (
    "How do practitioners handle missing values?",
    "What makes model explainability hard for stakeholders?",
    "How do teams deal with noisy labels?",
)
CHAT_CONCURRENCY = 2  # questions answered at once (the work is CPU-bound)


# ---- filters' choices ----------------------------------------------------------------------------


def interview_choices(pipe: Pipeline) -> list[tuple[str, str]]:
    return [(interview_name(iv), iv.id) for iv in sorted_interviews(pipe)]


def code_choices(pipe: Pipeline) -> list[tuple[str, str]]:
    """``("Data-missing-values (4)", "Data-missing-values")``: counts are indexed passages; a
    code only some coder used (not the reader's codes) is offered for the coder filter."""
    counts = pipe.index.code_counts()
    choices = [(f"{code} ({n})", code) for code, n in counts.items()]
    extra = sorted(
        {code for c in pipe.index.chunks for _, cs in c.coded for code in cs} - set(counts)
    )
    return choices + [(f"{code} (a coder's only)", code) for code in extra]


def engine_choices(settings: Settings) -> list[str]:
    names = list(available_engines(settings))
    if settings.engine not in names:
        names.append(settings.engine)  # shown so a misconfiguration surfaces as an error message
    return names


# ---- the Gradio app ------------------------------------------------------------------------------

# The page's own rules live in ``app.css``; each panel's renderer brings the rules for its HTML.
CSS = (
    resources.files(__package__).joinpath("app.css").read_text(encoding="utf-8")
    + COVERAGE_CSS
    + CODERS_CSS
    + REVIEW_CSS
)


def build_ui(pipe: Pipeline, export_dir: str | Path | None = None) -> gr.Blocks:
    """The app's Blocks; every callback delegates to the pure functions above."""
    import gradio as gr

    settings = pipe.settings
    export_path = resolve_export_dir(export_dir or pipe.settings.export_dir)
    engines = engine_choices(settings)
    default_engine = settings.engine if settings.engine in engines else "extractive"
    exports = ExportRegistry()
    coded = any(iv.coders for iv in pipe.index.interviews.values())
    agreement = corpus_agreement(pipe.index.interviews.values()) if coded else None

    def on_submit(
        question: str,
        history: list[dict[str, Any]],
        session: SessionQuotes | None,
        interviews: list[str],
        codes: list[str],
        codes_mode: str,
        participant_only: bool,
        engine: str,
        k: float,
        coder: str | None,
    ) -> Iterator[tuple[Any, ...]]:
        session = session or SessionQuotes()
        for up in respond(
            pipe,
            question,
            history,
            interviews,
            codes,
            participant_only,
            engine,
            k,
            codes_mode,
            coder,
        ):
            if up.answer is not None:
                session = session.add(up.answer)
            yield "", up.history, up.evidence, up.coverage, session

    def on_export(session: SessionQuotes | None, scope: str, fmt: str) -> tuple[Any, str]:
        path, message = export_quotes(session, fmt, scope, export_path)
        if path:
            exports.add(path)  # the one kind of file the server will hand out
        # the download appears only once there is a generated file to offer
        return gr.File(value=path, visible=bool(path)), message

    def on_clear() -> tuple[Any, ...]:
        return (
            [],
            empty_evidence_html(),
            "",
            SessionQuotes(),
            gr.File(value=None, visible=False),
            "",
        )

    with gr.Blocks(title="mlqi — interview answers", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {APP_TITLE}\nAnswers from ML practitioners' interviews about quality issues, "
            "every quote verified verbatim against the transcripts — or *not in the interviews*.",
            elem_id="app-header",
        )
        session_state = gr.State(SessionQuotes())
        with gr.Tab("Chat", id="chat"):
            with gr.Accordion("Filters — apply to the next question", open=True):
                with gr.Row(equal_height=True):
                    f_interviews = gr.Dropdown(
                        choices=interview_choices(pipe),
                        value=[],
                        multiselect=True,
                        label="Interviews",
                        info="Empty = all interviews",
                        scale=3,
                        elem_id="filter-interviews",
                    )
                    f_codes = gr.Dropdown(
                        choices=code_choices(pipe),
                        value=[],
                        multiselect=True,
                        label="Codes",
                        info="Only passages carrying these codes",
                        scale=4,
                        elem_id="filter-codes",
                    )
                    with gr.Column(scale=2, min_width=170):
                        f_codes_mode = gr.Radio(
                            choices=[("any", "any"), ("all", "all")],
                            value="any",
                            label="Match codes",
                        )
                        f_coder = gr.Dropdown(
                            choices=coder_choices(pipe, "reader's codes"),
                            value="",
                            label="Codes as coded by",
                            info="Whose codes the Codes filter matches",
                            visible=len(coder_choices(pipe, "")) > 1,
                            elem_id="filter-coder",
                        )
                    with gr.Column(scale=2, min_width=200):
                        f_participant = gr.Checkbox(
                            value=True, label="Participants' speech only", elem_id="filter-role"
                        )
                        f_engine = gr.Dropdown(
                            choices=engines,
                            value=default_engine,
                            label="Engine",
                            elem_id="filter-engine",
                        )
                    f_k = gr.Slider(
                        minimum=1,
                        maximum=30,
                        step=1,
                        value=settings.top_k,
                        label="Passages retrieved",
                        scale=2,
                        elem_id="filter-k",
                    )
            with gr.Row(equal_height=False):
                with gr.Column(scale=6, min_width=420):
                    chatbot = gr.Chatbot(
                        value=[],
                        label="Conversation",
                        height=560,
                        elem_id="chat",
                        latex_delimiters=[],
                        feedback_options=None,
                        buttons=["copy", "copy_all"],
                        placeholder=(
                            "**Ask about the interviews.** Each question is answered from the "
                            "transcripts on its own, with verified quotes on the right."
                        ),
                    )
                    with gr.Row(equal_height=True, elem_id="ask-row"):
                        question = gr.Textbox(
                            label="Question",
                            placeholder="e.g. How do practitioners handle missing values?",
                            show_label=False,
                            lines=1,
                            max_lines=4,
                            scale=6,
                            container=False,
                            elem_id="question",
                            autofocus=True,
                        )
                        send = gr.Button(
                            "Ask", variant="primary", scale=1, min_width=80, elem_id="ask"
                        )
                        clear = gr.Button(
                            "New chat",
                            variant="secondary",
                            scale=1,
                            min_width=110,
                            elem_id="clear",
                        )
                    coverage = gr.HTML("", label="Coverage", elem_id="coverage", js_on_load=None)
                    gr.Examples(list(EXAMPLE_QUESTIONS), inputs=question, label="Try")
                with gr.Column(scale=5, min_width=360):
                    gr.Markdown("### Evidence")
                    evidence = gr.HTML(
                        empty_evidence_html(),
                        label="Evidence",
                        max_height=640,
                        elem_id="evidence-panel",
                        js_on_load=None,
                    )
                    with gr.Accordion("Export quotes", open=True, elem_id="export"):
                        scope = gr.Radio(
                            choices=list(SCOPES),
                            value=SCOPES[0],
                            show_label=False,
                            elem_id="export-scope",
                        )
                        with gr.Row():
                            b_md = gr.Button("Markdown", size="sm", elem_id="export-markdown")
                            b_csv = gr.Button("CSV", size="sm", elem_id="export-csv")
                            b_tex = gr.Button("LaTeX", size="sm", elem_id="export-latex")
                        export_file = gr.File(
                            label="Download",
                            interactive=False,
                            visible=False,
                            elem_id="export-file",
                        )
                        export_status = gr.Markdown("", elem_id="export-status")

        with gr.Tab("Corpus", id="corpus"):
            gr.Markdown(corpus_summary(pipe))
            gr.Dataframe(
                value=corpus_rows(pipe),
                headers=CORPUS_HEADERS,
                interactive=False,
                label="Interviews",
                elem_id="corpus-table",
            )
            if agreement is not None:
                agreement_panel(agreement, exports, export_path)
            gr.Markdown("### Codes × interviews")
            heat_coder = gr.Dropdown(
                choices=coder_choices(pipe, "reader's codes (moderation, else every coder)"),
                value="",
                label="Codes as coded by",
                visible=len(coder_choices(pipe, "")) > 1,
                elem_id="heatmap-coder",
            )
            heatmap = gr.HTML(heatmap_html(pipe), elem_id="heatmap", js_on_load=None)
            heat_coder.change(
                lambda c: heatmap_html(pipe, c or ""),
                inputs=heat_coder,
                outputs=heatmap,
                api_visibility="private",
            )
            review_panel(pipe, exports, export_path, heatmap, heat_coder)
            gr.Markdown("### Passages by code")
            passage_codes = code_passage_choices(pipe)
            first_code = most_used_code(pipe)
            code_pick = gr.Dropdown(
                choices=passage_codes,
                value=first_code,
                label="Code",
                elem_id="code-pick",
            )
            passages = gr.HTML(
                code_passages_html(pipe, first_code), elem_id="code-passages", js_on_load=None
            )
            code_pick.change(
                lambda c: code_passages_html(pipe, c),
                inputs=code_pick,
                outputs=passages,
                api_visibility="private",
            )

        chat_inputs = [
            question,
            chatbot,
            session_state,
            f_interviews,
            f_codes,
            f_codes_mode,
            f_participant,
            f_engine,
            f_k,
            f_coder,
        ]
        chat_outputs = [question, chatbot, evidence, coverage, session_state]
        question.submit(
            on_submit,
            chat_inputs,
            chat_outputs,
            api_name="chat",
            concurrency_limit=CHAT_CONCURRENCY,
            concurrency_id="chat",
        )
        send.click(
            on_submit,
            chat_inputs,
            chat_outputs,
            api_visibility="private",
            concurrency_limit=CHAT_CONCURRENCY,
            concurrency_id="chat",
        )
        chatbot.clear(
            on_clear,
            None,
            [chatbot, evidence, coverage, session_state, export_file, export_status],
            api_visibility="private",
        )
        clear.click(
            on_clear,
            None,
            [chatbot, evidence, coverage, session_state, export_file, export_status],
            api_visibility="private",
        )
        for button, fmt in ((b_md, "markdown"), (b_csv, "csv"), (b_tex, "latex")):
            button.click(
                lambda s, sc, _fmt=fmt: on_export(s, sc, _fmt),
                [session_state, scope],
                [export_file, export_status],
                api_visibility="private",
            )
    attach_exports(demo, exports)
    return demo
