"""``mlqi-rag ask``: a question (or a file of them) answered with verified quotes, streamed as the
extractive engine writes, or one JSON document per question; ``--export`` writes the quotes
through the app's export code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import (
    _emit_json,
    _fail,
    _filter_options,
    _filters,
    _question_rows,
    _settings,
    engine_option,
    index_option,
    one_line_errors,
)
from .errors import MlqiError


@click.command()
@click.argument("question", required=False)
@click.option(
    "--questions",
    "questions_file",
    type=click.Path(path_type=Path),
    default=None,
    help="JSONL file of questions: one output line per question.",
)
@engine_option
@click.option(
    "-k", "--top-k", "k", type=click.IntRange(min=1), default=None, help="Passages to consider."
)
@_filter_options
@index_option
@click.option(
    "--export",
    "export_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the verified quotes to FILE (.md, .csv or .tex, by its extension).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@one_line_errors
def ask(
    question: str | None,
    questions_file: Path | None,
    engine: str | None,
    k: int | None,
    interviews: tuple[str, ...],
    codes: tuple[str, ...],
    all_codes: bool,
    labels: tuple[str, ...],
    include_interviewer: bool,
    index_dir: Path | None,
    export_path: Path | None,
    as_json: bool,
) -> None:
    """Answer QUESTION with verified quotes (or say it is not in the interviews)."""
    from .export import format_for_path
    from .pipeline import Pipeline
    from .types import Answer

    export_format = format_for_path(export_path) if export_path else None  # fail before work
    rows = _question_rows(question, questions_file)
    pipe = Pipeline.load(_settings(index_dir=index_dir))
    eng = pipe.engine(engine)
    filters = _filters(interviews, codes, all_codes, labels, include_interviewer)
    answers: list[Answer] = []
    for row in rows:
        if as_json:
            answer = eng.answer(row["question"], filters, k)
            answers.append(answer)
            _emit_json({"id": row["id"], **answer.to_dict()})
            for warning in answer.warnings:
                _fail(warning)
            continue
        shown = ""
        for item in eng.stream(row["question"], filters, k):
            if isinstance(item, Answer):
                answer = item
            elif eng.name == "extractive":
                click.echo(item, nl=False)
                shown += item
        if not shown:  # LLM engines stream masked drafts: print the verified text only
            click.echo(answer.text)
        click.echo()
        answers.append(answer)
        if answer.rejected_quotes:
            click.echo(f"({answer.rejected_quotes} unverifiable quote(s) dropped)", err=True)
        for warning in answer.warnings:
            _fail(warning)
    if export_path is not None and export_format is not None:
        _export_answers(answers, export_path, export_format)


def _export_answers(answers: list[Any], path: Path, fmt: str) -> None:
    """The app's export code, from a terminal: the quotes of every answer, verified ones only."""
    from .export import render, unique_citations

    cites = unique_citations(c for a in answers for c in a.citations)
    question = answers[0].question if len(answers) == 1 else None
    try:
        # newline="" keeps the CSV's \r\n row ends as they are.
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(render(cites, fmt, question))
    except OSError as exc:
        raise MlqiError(f"cannot write {path}: {exc.strerror or exc}") from exc
    click.echo(f"Exported {len(cites)} verified quote(s) to {path}", err=True)
