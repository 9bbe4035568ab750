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
    from .transcripts import parse_paths

    interviews, errors = parse_paths(paths)
    for err in errors:
        _fail(str(err))
    if not interviews:
        _fail(f"no transcript could be parsed ({len(errors)} file(s) rejected)")
        sys.exit(1)
    sources = {iv.id: Path(iv.source).read_text(encoding="utf-8") for iv in interviews}
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
