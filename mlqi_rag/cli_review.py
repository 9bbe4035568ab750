"""``mlqi-rag review``: list suggested codes with their review status, accept or reject them by
id, and export the accepted ones as CSV (coder ``suggested-accepted``).

Suggestions are computed on the first ``list`` (or ``accept``/``reject``/``export``) and cached
beside the index (``review.ReviewStore``); decisions are kept there too, never in a transcript.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .cli import _emit_json, _settings, one_line_errors
from .errors import MlqiError
from .suggest import DEFAULT_MIN_CONFIDENCE

F = TypeVar("F", bound=Callable[..., Any])
SNIPPET = 90
RARE_SHOWN = 8


def _store_options(fn: F) -> F:
    fn = click.option(
        "--min-confidence",
        type=click.FloatRange(0.0, 1.0),
        default=DEFAULT_MIN_CONFIDENCE,
        show_default=True,
        help="Suggestions at this calibrated confidence or above.",
    )(fn)
    fn = click.option(
        "--index-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Index location (MLQI_INDEX_DIR).",
    )(fn)
    return fn


def _store(index_dir: Path | None, min_confidence: float) -> Any:
    from .index import Index
    from .review import ReviewStore

    return ReviewStore(Index.load(_settings(index_dir=index_dir)), min_confidence)


def _items(store: Any) -> list[Any]:
    """Every item, computing the suggestions first if they are not cached (with a note)."""
    if not store.cached():
        click.echo(
            "note: computing suggested codes (once per index; cached in "
            f"{store.dir}) — this takes a while",
            err=True,
        )
    items: list[Any] = store.items(compute=True)
    return items


def _status(it: Any) -> str:
    return f"{it.status} (stale)" if it.stale else it.status


def _group() -> None:
    """Review suggested codes: list them, accept or reject them by id, export the accepted ones
    as CSV. Decisions are kept beside the index, never written into a transcript."""


# an explicit type: ``cli`` imports this module back, and mypy cannot infer a decorated one there
review: click.Group = click.group(name="review")(_group)


@review.command("list")
@_store_options
@click.option(
    "--status",
    type=click.Choice(["pending", "accepted", "rejected", "stale"]),
    default=None,
    help="Only suggestions with this status (stale: the transcript changed since).",
)
@click.option("--interview", default=None, help="Only this interview id.")
@click.option("--code", default=None, help="Only this code.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@one_line_errors
def list_(
    index_dir: Path | None,
    min_confidence: float,
    status: str | None,
    interview: str | None,
    code: str | None,
    as_json: bool,
) -> None:
    """Suggested codes with id, interview, turn, confidence, code, status and passage."""
    from .review_items import counts, filter_items

    store = _store(index_dir, min_confidence)
    index = store.index
    if interview is not None and interview not in index.interviews:
        known = ", ".join(sorted(index.interviews, key=lambda i: (len(i), i)))
        raise MlqiError(f"unknown interview {interview} (the index holds {known})")
    if code is not None:
        known_codes = {
            c
            for iv in index.interviews.values()
            for t in iv.turns
            for p in t.paragraphs
            for c in (*p.codes, *(c for _, cs in p.coded for c in cs))
        }
        if code not in known_codes:
            raise MlqiError(
                f"unknown code {code!r}: no researcher applied it in this index "
                "(see the Corpus tab's heatmap)"
            )
    items = _items(store)
    shown = filter_items(items, status, interview, code)
    if as_json:
        _emit_json([it.to_dict() for it in shown])
    else:
        for it in shown:
            snippet = " ".join(it.text.split())[:SNIPPET]
            click.echo(
                f"{it.id}  {it.interview_id}:t{it.turn_index}  {it.confidence:.3f}  "
                f"{it.code}  [{_status(it)}]  {snippet}"
            )
    n = counts(items)
    rare = store.rare_codes()
    click.echo(
        f"{len(shown)} of {len(items)} suggestion(s) shown · {n['pending']} pending, "
        f"{n['accepted']} accepted, {n['rejected']} rejected, {n['stale']} stale · "
        f"min confidence {store.min_confidence} · decisions in {store.dir}",
        err=True,
    )
    if rare:
        names = ", ".join(list(rare)[:RARE_SHOWN]) + (" …" if len(rare) > RARE_SHOWN else "")
        click.echo(
            f"note: {len(rare)} code(s) too rare to learn, never suggested: {names}", err=True
        )


def _decide(index_dir: Path | None, min_confidence: float, ids: tuple[str, ...], status: str):  # type: ignore[no-untyped-def]
    store = _store(index_dir, min_confidence)
    _items(store)
    done = store.decide(ids, status)
    verb = {"accepted": "Accepted", "rejected": "Rejected", "pending": "Reset"}[status]
    for it in done:
        snippet = " ".join(it.text.split())[:SNIPPET]
        click.echo(f"{verb} {it.id}  {it.interview_id}:t{it.turn_index}  {it.code}  {snippet}")
    click.echo(f"{len(done)} suggestion(s) {status} · decisions in {store.dir}", err=True)


@review.command()
@_store_options
@click.argument("ids", nargs=-1, required=True)
@one_line_errors
def accept(index_dir: Path | None, min_confidence: float, ids: tuple[str, ...]) -> None:
    """Accept the suggestions with these ids (from `mlqi-rag review list`)."""
    _decide(index_dir, min_confidence, ids, "accepted")


@review.command()
@_store_options
@click.argument("ids", nargs=-1, required=True)
@one_line_errors
def reject(index_dir: Path | None, min_confidence: float, ids: tuple[str, ...]) -> None:
    """Reject the suggestions with these ids."""
    _decide(index_dir, min_confidence, ids, "rejected")


@review.command()
@_store_options
@click.argument("ids", nargs=-1, required=True)
@one_line_errors
def reset(index_dir: Path | None, min_confidence: float, ids: tuple[str, ...]) -> None:
    """Undo the decision on these ids: they are pending again."""
    _decide(index_dir, min_confidence, ids, "pending")


@review.command()
@_store_options
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@one_line_errors
def export(index_dir: Path | None, min_confidence: float, file: Path) -> None:
    """Write the accepted suggestions to FILE as CSV: interview_id, turn_index, start, end,
    passage, code, coder ("suggested-accepted"), confidence, decided_at. Stale decisions (the
    transcript changed since) are left out."""
    store = _store(index_dir, min_confidence)
    n = store.write_csv(file)
    stale = sum(1 for it in store.items() if it.status == "accepted" and it.stale)
    note = f" ({stale} stale accepted left out)" if stale else ""
    click.echo(f"Wrote {n} accepted suggestion(s) to {file}{note}", err=True)
