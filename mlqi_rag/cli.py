"""``mlqi-rag``: the pipeline stages as commands. Data goes to stdout, diagnostics to stderr.

Only this module (and ``app.py``) prints; errors from the library arrive as ``MlqiError`` and
leave as one line plus exit code 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import MlqiError
from .settings import Settings, offline_environment

F = TypeVar("F", bound=Callable[..., Any])


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)


def one_line_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlqiError as exc:
            _fail(str(exc))
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _parse_or_exit(paths: Iterable[str]) -> tuple[list[Any], dict[str, str]]:
    from .transcripts import parse_corpus

    interviews, sources, errors = parse_corpus(paths)
    for err in errors:
        _fail(str(err))
    if not interviews:
        _fail(f"no transcript could be parsed ({len(errors)} file(s) rejected)")
        sys.exit(1)
    return interviews, sources


@click.group()
@click.version_option(__version__, prog_name="mlqi-rag")
def cli() -> None:
    """Grounded answers with verified quotes from ML-quality interviews."""
    offline_environment()


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the parsed interviews as JSON.")
@one_line_errors
def parse(paths: tuple[str, ...], as_json: bool) -> None:
    """Parse transcripts (files or directories) into interviews, turns and codes."""
    interviews, _ = _parse_or_exit(paths)
    if as_json:
        _emit_json([iv.to_dict() for iv in interviews])
        return
    for iv in interviews:
        participant = sum(t.role == "participant" for t in iv.turns)
        paragraphs = sum(len(t.paragraphs) for t in iv.turns)
        label = f" ({iv.label})" if iv.label else ""
        codes = ", ".join(iv.codes) if iv.codes else "uncoded"
        click.echo(
            f"Interview {iv.id}{label} [{iv.format}, {iv.language}]: {len(iv.turns)} turns "
            f"({participant} participant), {paragraphs} paragraphs — {iv.source}"
        )
        click.echo(f"  codes: {codes}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--max-tokens", type=int, default=None, help="Token cap per chunk (default 350).")
@click.option("--json", "as_json", is_flag=True, help="Print the chunks as JSON.")
@one_line_errors
def chunks(paths: tuple[str, ...], max_tokens: int | None, as_json: bool) -> None:
    """Show the retrievable chunks (turns with their question context)."""
    from .chunking import ChunkParams, chunk_interviews

    s = _settings(chunk_max_tokens=max_tokens)
    interviews, sources = _parse_or_exit(paths)
    params = ChunkParams(s.chunk_max_tokens, s.chunk_min_tokens, s.question_max_tokens)
    result = chunk_interviews(interviews, sources, params)
    if as_json:
        _emit_json([c.to_dict() for c in result])
        return
    for c in result:
        codes = f" [{', '.join(c.codes)}]" if c.codes else ""
        preview = " ".join(c.text.split())[:100]
        click.echo(f"{c.id} {c.role} {c.token_count} tok{codes}: {preview}")


def main() -> None:  # pragma: no cover - console script entry
    cli()


# ---- index & retrieve --------------------------------------------------------------------------

corpus_option: Callable[[F], F] = click.option(
    "--corpus",
    type=click.Path(path_type=Path),
    default=None,
    help="Transcript directory (MLQI_CORPUS).",
)
index_option: Callable[[F], F] = click.option(
    "--index-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Index location (MLQI_INDEX_DIR).",
)


def _filter_options(fn: F) -> F:
    fn = click.option(
        "--interview", "interviews", multiple=True, help="Only this interview id (repeatable)."
    )(fn)
    fn = click.option(
        "--code", "codes", multiple=True, help="Only chunks carrying this code (repeatable)."
    )(fn)
    fn = click.option("--all-codes", is_flag=True, help="Require every --code, not any of them.")(
        fn
    )
    fn = click.option(
        "--label", "labels", multiple=True, help="Only interviews with this label/coder."
    )(fn)
    # Read by ``_filters`` from the context, so the commands' signatures stay as they are.
    fn = click.option(
        "--coder",
        default="",
        expose_value=False,
        callback=lambda ctx, _param, value: ctx.meta.__setitem__("mlqi_coder", value or ""),
        help="With --code: match this coder's own codes, not the reconciled ones.",
    )(fn)
    fn = click.option(
        "--include-interviewer",
        is_flag=True,
        help="Also search interviewer turns (off by default).",
    )(fn)
    return fn


def _filters(
    interviews: tuple[str, ...],
    codes: tuple[str, ...],
    all_codes: bool,
    labels: tuple[str, ...],
    include_interviewer: bool,
) -> Any:
    from .retrieval import Filters

    roles: tuple[Any, ...] = () if include_interviewer else ("participant",)
    return Filters(
        interviews=interviews,
        codes=codes,
        codes_mode="all" if all_codes else "any",
        roles=roles,
        labels=labels,
        coder=click.get_current_context().meta.get("mlqi_coder", ""),
    )


@cli.command()
@corpus_option
@index_option
@click.option("--force", is_flag=True, help="Rebuild even if nothing changed.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: only on a terminal)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
@one_line_errors
def index(
    corpus: Path | None, index_dir: Path | None, force: bool, progress: bool | None, as_json: bool
) -> None:
    """Build or update the index (only changed files are re-embedded).

    Exit status: 0 when every transcript was indexed, 2 when the index was built but some files
    were rejected (each named on stderr), 1 when nothing could be indexed.
    """
    from .build import build_index

    s = _settings(corpus=corpus, index_dir=index_dir)
    report = build_index(s, force=force, progress=progress)
    for err in report.errors:
        _fail(err)
    if as_json:
        _emit_json(report.to_dict())
    elif not report.changed:
        click.echo(
            f"Index at {s.index_dir} is up to date ({report.chunks} chunks); nothing embedded."
        )
    else:
        _print_build(report, s)
    if report.errors:
        _fail(
            f"{len(report.errors)} file(s) rejected and not indexed; "
            "the index holds the other transcripts"
        )
        sys.exit(2)


def _print_build(report: Any, s: Settings) -> None:
    click.echo(
        f"Indexed {report.chunks} chunks from {s.corpus} into {s.index_dir} "
        f"({report.embedded} embedded, {report.reused} reused) in {report.seconds:.1f} s."
    )
    for label, files in (
        ("added", report.files_added),
        ("changed", report.files_changed),
        ("removed", report.files_removed),
    ):
        for f in files:
            click.echo(f"  {label}: {f}")
    if report.rebuilt_reason:
        click.echo(f"  {report.rebuilt_reason}")


@cli.command()
@click.argument("question", required=False)
@click.option(
    "-k",
    "--top-k",
    "k",
    type=click.IntRange(min=1),
    default=None,
    help="Number of passages (default 10).",
)
@click.option(
    "--questions",
    "questions_file",
    type=click.Path(path_type=Path),
    default=None,
    help="JSONL file of questions: one output line per question.",
)
@_filter_options
@index_option
@click.option("--context", is_flag=True, help="Show each hit's neighbouring turns.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
@one_line_errors
def retrieve(
    question: str | None,
    k: int | None,
    questions_file: Path | None,
    interviews: tuple[str, ...],
    codes: tuple[str, ...],
    all_codes: bool,
    labels: tuple[str, ...],
    include_interviewer: bool,
    index_dir: Path | None,
    context: bool,
    as_json: bool,
) -> None:
    """Retrieve the turns that best answer QUESTION (hybrid dense + BM25, code-aware)."""
    from .pipeline import Pipeline

    rows = _question_rows(question, questions_file)
    pipe = Pipeline.load(_settings(index_dir=index_dir))
    filters = _filters(interviews, codes, all_codes, labels, include_interviewer)
    for row in rows:
        result = pipe.retriever.retrieve(
            row["question"], k=k, filters=filters, with_context=context
        )
        if as_json:
            _emit_json(
                {
                    "id": row["id"],
                    "question": row["question"],
                    "hits": [h.to_dict() for h in result.hits],
                }
            )
            continue
        click.echo(f"Q: {result.question}")
        if result.matched_codes:
            click.echo(f"   codes named: {', '.join(result.matched_codes)}")
        for h in result.hits:
            c = h.chunk
            codes_txt = f" [{', '.join(c.codes)}]" if c.codes else ""
            click.echo(
                f"{h.rank:>3}. Interview {c.interview_id} turn {c.turn_index} ({c.speaker})"
                f" score {h.score:.4f}{codes_txt}"
            )
            click.echo(f"     {' '.join(c.text.split())[:300]}")
            for t in h.context if context else ():
                if t.index != c.turn_index:
                    click.echo(f"       · T{t.index} {t.speaker}: {' '.join(t.text.split())[:160]}")


def _question_rows(question: str | None, questions_file: Path | None) -> list[dict[str, Any]]:
    if questions_file is not None:
        from .evaluation import load_questions

        return [{"id": q.id, "question": q.question} for q in load_questions(questions_file)]
    if question is None:
        raise click.UsageError("give a QUESTION or --questions FILE.jsonl")
    return [{"id": "1", "question": question}]


# ---- ask & eval --------------------------------------------------------------------------------

engine_option: Callable[[F], F] = click.option(
    "--engine", default=None, help="extractive (default), local or openai (MLQI_ENGINE)."
)


from .cli_ask import ask  # noqa: E402 - registered last: it imports this module

cli.add_command(ask)

from .cli_coders import agreement  # noqa: E402

cli.add_command(agreement)


from .cli_eval import calibrate, eval_cmd  # noqa: E402
from .cli_fit import fit_adapter, fit_grouping, fit_quotes, fit_retrieval  # noqa: E402

cli.add_command(eval_cmd)
cli.add_command(calibrate)
cli.add_command(fit_grouping)
cli.add_command(fit_retrieval)
cli.add_command(fit_quotes)
cli.add_command(fit_adapter)


from .cli_suggest import suggest  # noqa: E402

cli.add_command(suggest)


from .cli_review import review  # noqa: E402

cli.add_command(review)
