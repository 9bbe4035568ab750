"""``mlqi-rag suggest``: suggested codes for passages no researcher coded, or (``--evaluate``)
how often such suggestions match the researchers, leaving one interview out at a time."""

from __future__ import annotations

import difflib
import json
import shlex
from pathlib import Path
from typing import Any

import click

from .cli import _emit_json, _settings, one_line_errors
from .suggest import DEFAULT_MIN_CONFIDENCE


def _check_code(index: Any, code: str) -> None:
    """A code no researcher applied, or one too rare to learn, is a one-line error."""
    from . import suggest as sg
    from .errors import MlqiError

    known = sorted(
        {c for iv in index.interviews.values() for t in iv.turns for c in t.codes}
        | {c for iv in index.interviews.values() for c in _coded(iv)}
    )
    if code not in known:
        by_lower = {c.lower(): c for c in known}
        near = difflib.get_close_matches(code.lower(), list(by_lower), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(by_lower[c] for c in near)}?" if near else ""
        raise MlqiError(f"unknown code {code!r} (no researcher applied it){hint}")
    rare = sg.rare_codes(index)
    if code in rare:
        raise MlqiError(
            f"code {code!r} is too rare to learn ({rare[code]} passage(s); a code needs "
            f"{sg.MIN_EXAMPLES}+ passages in {sg.MIN_INTERVIEWS}+ interviews): never suggested"
        )


def _pruned(ev: dict[str, Any]) -> dict[str, Any]:
    """The report without per-code rows of the ablations (the chosen learner and the baseline
    keep theirs)."""
    from .suggest_eval import BASELINE

    out = {**ev, "learners": dict(ev["learners"])}
    for name, r in ev["learners"].items():
        if name not in (ev["learner"], BASELINE):
            r = {**r}
            for at in ("nested", "at_min_confidence"):
                r[at] = {
                    **r[at],
                    **{lv: {**r[at][lv], "codes": {}} for lv in ("passage", "interview")},
                }
            out["learners"][name] = r
    return out


def _coded(iv: Any) -> set[str]:
    return {c for t in iv.turns for p in t.paragraphs for _, cs in p.coded for c in cs}


@click.command()
@click.option("--index-dir", type=click.Path(path_type=Path), default=None, help="Index location.")
@click.option("--interview", "interview", default=None, help="Only this interview id.")
@click.option("--code", "code", default=None, help="Only suggestions of this code.")
@click.option(
    "--min-confidence",
    type=float,
    default=DEFAULT_MIN_CONFIDENCE,
    show_default=True,
    help="Suggest a code only at this calibrated confidence or above.",
)
@click.option("--evaluate", is_flag=True, help="Leave-one-interview-out scores, not suggestions.")
@click.option(
    "--learner",
    "learners",
    multiple=True,
    help="With --evaluate: the learners to compare (repeat; default: pairwise and knn).",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="With --evaluate: also write the report as FILE.md and FILE.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@one_line_errors
def suggest(
    index_dir: Path | None,
    interview: str | None,
    code: str | None,
    min_confidence: float,
    evaluate: bool,
    learners: tuple[str, ...],
    report: Path | None,
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
    if code is not None:
        _check_code(index, code)
    if evaluate:
        from . import suggest_eval as se
        from .suggest_report import markdown

        ev = se.evaluate(index, min_confidence, learners or (se.DEFAULT_LEARNER, se.BASELINE))
        args = ["--index-dir", str(index.settings.index_dir), "--evaluate"]
        for name in learners:
            args += ["--learner", name]
        if min_confidence != DEFAULT_MIN_CONFIDENCE:
            args += ["--min-confidence", str(min_confidence)]
        if report is not None:
            args += ["--report", str(report)]
        command = "mlqi-rag suggest " + shlex.join(args)
        ev["command"] = command
        text = markdown(ev, command)
        if report is not None:
            base = report.with_suffix("")
            base.parent.mkdir(parents=True, exist_ok=True)
            base.with_suffix(".md").write_text(text, encoding="utf-8")
            doc = json.dumps(_pruned(ev), indent=1, ensure_ascii=False)
            base.with_suffix(".json").write_text(doc + "\n", encoding="utf-8")
        if as_json:
            _emit_json(ev)
        else:
            click.echo(text, nl=False)
        return
    rows = sg.suggest(index, interview, min_confidence, code=code)
    rare = sg.rare_codes(index)
    if rare:
        click.echo(
            f"note: {len(rare)} code(s) too rare to learn (a code needs {sg.MIN_EXAMPLES}+ "
            f"passages in {sg.MIN_INTERVIEWS}+ interviews), never suggested: {', '.join(rare)}",
            err=True,
        )
    if as_json:
        _emit_json([s.to_dict() for s in rows])
        return
    for s in rows:
        snippet = " ".join(s.text.split())[:100]
        click.echo(f"{s.interview_id}:t{s.turn_index} {s.confidence:.3f} {s.code}  {snippet}")
    click.echo(f"{len(rows)} suggestion(s)", err=True)
