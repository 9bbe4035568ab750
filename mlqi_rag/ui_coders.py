"""Gradio wiring of the Corpus tab's coder views (kept out of ``ui`` to keep it small): the
agreement accordion and its CSV download, which goes through the app's export registry so the
server hands out only files this process wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .guard import ExportRegistry
from .render_coders import (
    CorpusAgreement,
    agreement_table_html,
    code_agreement_html,
    disagreements_html,
    write_disagreements,
)


def agreement_panel(ca: CorpusAgreement, exports: ExportRegistry, export_path: Path) -> None:
    """The Corpus tab's agreement accordion: κ/α/% per interview and overall, per code, the
    disagreements, and their CSV (registered, so the server hands out only files it wrote)."""
    import gradio as gr

    def on_csv() -> tuple[Any, str]:
        try:
            path = write_disagreements(ca.disagreements, export_path)
        except OSError as exc:
            return gr.File(value=None, visible=False), f"Could not write: {exc.strerror or exc}"
        exports.add(path)
        n = len(ca.disagreements)
        return gr.File(value=str(path), visible=True), f"{n} disagreements → {path.name}"

    with gr.Accordion("Inter-coder agreement", open=True, elem_id="agreement"):
        gr.HTML(agreement_table_html(ca), elem_id="agreement-table", js_on_load=None)
        with gr.Accordion("Per code", open=False):
            gr.HTML(code_agreement_html(ca), elem_id="agreement-codes", js_on_load=None)
        with gr.Accordion(f"Disagreements ({len(ca.disagreements)})", open=False):
            gr.HTML(disagreements_html(ca), elem_id="disagreements", js_on_load=None)
        with gr.Row():
            b_dis = gr.Button(
                "Download disagreements (CSV)", size="sm", elem_id="export-disagreements"
            )
            dis_status = gr.Markdown("", elem_id="disagreements-status")
        dis_file = gr.File(
            label="Download", interactive=False, visible=False, elem_id="disagreements-file"
        )
        b_dis.click(on_csv, None, [dis_file, dis_status], api_visibility="private")
