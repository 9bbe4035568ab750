"""``mlqi-rag suggest``: suggested codes for passages no researcher coded, or (``--evaluate``)
how often such suggestions match the researchers, leaving one interview out at a time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from .cli import _emit_json, _settings, one_line_errors
from .suggest import DEFAULT_MIN_CONFIDENCE

TOP_CODES = 15


def _f(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.3f}"


def _print_evaluation(ev: dict[str, Any]) -> None:
    click.echo(
        f"LOIO over interviews {', '.join(ev['interviews'])}: {ev['passages']} participant "
        f"passages ({ev['coded_passages']} coded), learner {ev['learner']}, "
        f"min confidence {ev['min_confidence']}, {ev['suggested']} suggested"
    )
    reached = "reached" if ev["target_reached"] else "NOT reached; best precision at"
    click.echo(
        f"precision target {ev['target_precision']}: {reached} {_f(ev['threshold_for_target'])}"
    )
    for level in ("passage", "interview"):
        for avg in ("micro", "macro"):
            m = ev[level][avg]
            click.echo(
                f"  {level:<9} {avg}  P={_f(m['precision'])} R={_f(m['recall'])} F1={_f(m['f1'])}"
            )
    codes = sorted(ev["passage"]["codes"].items(), key=lambda kv: -kv[1]["support"])[:TOP_CODES]
    click.echo("code  support  suggested  P  R  F1 (passage level)")
    for code, m in codes:
        click.echo(
            f"  {code:<45} {m['support']:>4} {m['suggested']:>4} "
            f"{_f(m['precision'])} {_f(m['recall'])} {_f(m['f1'])}"
        )
    click.echo("Cohen's kappa vs each coder (suggested | other human coder, same passages)")
    for r in ev["kappa"]:
        click.echo(
            f"  {r['coder']:<10} interviews {','.join(r['interviews']):<14} "
            f"passage {_f(r['suggested_passage'])} | {_f(r['other_passage'])}   "
            f"interview {_f(r['suggested_interview'])} | {_f(r['other_interview'])}"
        )
    for name, c in ev["learners"].items():
        m = c["at_threshold"]
        click.echo(
            f"learner {name}: average precision {_f(c['average_precision'])}, at "
            f"{_f(c['threshold_for_target'])} P={_f(m['precision'])} R={_f(m['recall'])}"
        )
    if ev["rare"]:
        click.echo(f"{len(ev['rare'])} code(s) too rare to learn (< {ev['min_examples']} passages)")


@click.command()
@click.option("--index-dir", type=click.Path(path_type=Path), default=None, help="Index location.")
@click.option("--interview", "interview", default=None, help="Only this interview id.")
@click.option(
    "--min-confidence",
    type=float,
    default=DEFAULT_MIN_CONFIDENCE,
    show_default=True,
    help="Suggest a code only at this calibrated confidence or above.",
)
@click.option("--evaluate", is_flag=True, help="Leave-one-interview-out scores, not suggestions.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@one_line_errors
def suggest(
    index_dir: Path | None,
    interview: str | None,
    min_confidence: float,
    evaluate: bool,
    as_json: bool,
) -> None:
    """Suggest codes for participant passages no researcher coded (labelled coder "suggested",
    never written into a transcript)."""
    from . import suggest as sg
    from .errors import MlqiError
    from .index import Index

    index = Index.load(_settings(index_dir=index_dir))
    if interview is not None and interview not in index.interviews:
        known = ", ".join(sorted(index.interviews, key=lambda i: (len(i), i)))
        raise MlqiError(f"unknown interview {interview} (the index holds {known})")
    if evaluate:
        ev = sg.evaluate(index, min_confidence=min_confidence)
        if as_json:
            _emit_json(ev)
        else:
            _print_evaluation(ev)
        return
    rows = sg.suggest(index, interview, min_confidence)
    rare = sg.rare_codes(index)
    if rare:
        click.echo(
            f"note: {len(rare)} code(s) too rare to learn (< {sg.MIN_EXAMPLES} passages), "
            f"never suggested: {', '.join(rare)}",
            err=True,
        )
    if as_json:
        _emit_json([s.to_dict() for s in rows])
        return
    for s in rows:
        snippet = " ".join(s.text.split())[:100]
        click.echo(f"{s.interview_id}:t{s.turn_index} {s.confidence:.3f} {s.code}  {snippet}")
    click.echo(f"{len(rows)} suggestion(s)", err=True)
