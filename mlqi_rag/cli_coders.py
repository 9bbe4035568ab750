"""``mlqi-rag agreement``: how far the coders of each interview agree, and where they split.

Reads the interviews of the built index (coded copies are merged at index time), or parses
``--corpus`` directly. Figures are ``agreement``'s; ``render_coders.corpus_agreement`` decides
which interviews are measured, so the command and the app's Agreement panel never differ.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .cli import _emit_json, _fail, _settings, one_line_errors
from .errors import MlqiError
from .render_coders import TOP_CODES, CorpusAgreement, corpus_agreement, fmt, top_codes

LEVELS = ("passage", "interview", "both")
corpus_option = click.option(
    "--corpus",
    type=click.Path(path_type=Path),
    default=None,
    help="Parse this transcript directory instead of reading the index.",
)
index_option = click.option(
    "--index-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Index location (MLQI_INDEX_DIR).",
)


def _load_interviews(corpus: Path | None, index_dir: Path | None) -> tuple[list[Any], str]:
    """The merged interviews, and where they came from (for messages)."""
    if corpus is not None:
        from .transcripts import parse_corpus

        interviews, _, errors = parse_corpus([corpus])
        for err in errors:
            _fail(str(err))
        if not interviews:
            raise MlqiError(f"no transcript could be parsed in {corpus}")
        return interviews, str(corpus)
    from .index import Index

    s = _settings(index_dir=index_dir)
    return list(Index.load(s).interviews.values()), f"the index at {s.index_dir}"


def _table(title: str, header: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < 2 else "right")
    for r in rows:
        table.add_row(*r)
    return table


def _stats(s: Any) -> list[str]:
    return [fmt(s.kappa), fmt(s.alpha), fmt(s.percent, percent=True)]


def _print(ca: CorpusAgreement, level: str) -> None:
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 140)
    header = ["Interview", "Coders", "Units", "Cohen's κ", "Krippendorff's α", "% agreement"]
    if level in ("passage", "both"):
        per: dict[str, int] = {}
        for d in ca.disagreements:
            per[d.interview_id] = per.get(d.interview_id, 0) + 1
        rows = [
            [iv.id, ", ".join(r.coders), str(r.units), *_stats(r.overall), str(per.get(iv.id, 0))]
            for iv in ca.interviews
            for r in (ca.passage[iv.id],)
        ]
        if ca.pooled is not None:
            p = ca.pooled
            rows.append(
                ["all", ", ".join(p.coders), str(p.units), *_stats(p.overall)]
                + [str(len(ca.disagreements))]
            )
        console.print(
            _table(
                "Agreement per interview (unit: participant paragraph)",
                header + ["Disagreements"],
                rows,
            )
        )
        if ca.pooled is not None:
            console.print(_codes_table(ca.pooled, "passages, pooled"))
    if level in ("interview", "both") and ca.interview_level is not None:
        r = ca.interview_level
        console.print(
            _table(
                "Agreement over interviews (unit: interview — was the code applied anywhere)",
                header,
                [[", ".join(r.interviews), ", ".join(r.coders), str(r.units), *_stats(r.overall)]],
            )
        )
        console.print(_codes_table(r, "interviews"))


def _codes_table(report: Any, unit: str) -> Any:
    rows = [
        [s.code, ", ".join(f"{c} {k}" for c, k in s.applied), str(s.units), *_stats(s)]
        for s in top_codes(report, TOP_CODES)
    ]
    return _table(
        f"Top {len(rows)} codes (unit: {unit})",
        ["Code", "Applied by", "Units", "κ", "α", "%"],
        rows,
    )


@click.command()
@corpus_option
@index_option
@click.option(
    "--interview", "interviews", multiple=True, help="Only this interview id (repeatable)."
)
@click.option(
    "--level",
    type=click.Choice(LEVELS),
    default="both",
    show_default=True,
    help="Passage level (participant paragraphs), interview level, or both.",
)
@click.option(
    "--disagreements-csv",
    "csv_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write every (passage, code) the coders split on to FILE as CSV.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@one_line_errors
def agreement(
    corpus: Path | None,
    index_dir: Path | None,
    interviews: tuple[str, ...],
    level: str,
    csv_path: Path | None,
    as_json: bool,
) -> None:
    """Inter-coder agreement per interview and overall: Cohen's kappa, Krippendorff's alpha and
    percent agreement, per code, at passage and interview level (moderation left out)."""
    from .agreement import disagreements_csv

    ivs, where = _load_interviews(corpus, index_dir)
    if interviews:
        known = {iv.id for iv in ivs}
        if unknown := [i for i in interviews if i not in known]:
            raise MlqiError(
                f"unknown interview {', '.join(unknown)} in {where} "
                f"(it holds {', '.join(sorted(known, key=lambda i: (len(i), i)))})"
            )
        ivs = [iv for iv in ivs if iv.id in interviews]
    if not any(iv.coders for iv in ivs):
        raise MlqiError(
            f"no interview in {where} has coded copies: agreement needs two coders' copies of "
            "an interview (Delve exports or print PDFs, one per coder)"
        )
    ca = corpus_agreement(ivs)
    for iv_id, why in ca.skipped:
        click.echo(f"note: interview {iv_id} skipped: {why}", err=True)
    if ca.uncoded:
        click.echo(
            f"note: {len(ca.uncoded)} interview(s) without coded copies: {', '.join(ca.uncoded)}",
            err=True,
        )
    if not ca.interviews:
        raise MlqiError(f"no interview in {where} has two human coders; nothing to compare")
    if csv_path is not None:
        try:
            with open(csv_path, "w", encoding="utf-8", newline="") as fh:
                fh.write(disagreements_csv(ca.disagreements))
        except OSError as exc:
            raise MlqiError(f"cannot write {csv_path}: {exc.strerror or exc}") from exc
        click.echo(f"Wrote {len(ca.disagreements)} disagreement(s) to {csv_path}", err=True)
    if as_json:
        _emit_json(ca.to_dict(level))
        return
    _print(ca, level)
