"""``mlqi-rag eval`` and ``mlqi-rag calibrate``: scoring the product on a fixed question set, and
fitting the scan's decision model on the labelled dev questions. Both build the index they need
and print rich tables (or ``--json``); the figures themselves come from ``evaluation`` and
``fitting``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from .cli import (
    _emit_json,
    _fail,
    _settings,
    corpus_option,
    engine_option,
    index_option,
    one_line_errors,
)


@click.command(name="eval")
@click.option(
    "--questions",
    "questions_file",
    type=click.Path(path_type=Path),
    default=Path("eval/questions.jsonl"),
    show_default=True,
)
@engine_option
@corpus_option
@index_option
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--split", default=None, help="Only questions of this split (dev or heldout).")
@click.option("--limit", type=int, default=None, help="Only the first N questions (quick runs).")
@click.option("--no-baselines", is_flag=True, help="Skip the two baselines.")
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    default=Path("eval/results"),
    show_default=True,
    help="Where the Markdown report is written.",
)
@click.option(
    "--min-exact",
    type=float,
    default=None,
    help="Exit 1 if the quote exact rate is below this (CI gate).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@one_line_errors
def eval_cmd(
    questions_file: Path,
    engine: str | None,
    corpus: Path | None,
    index_dir: Path | None,
    k: int,
    split: str | None,
    limit: int | None,
    no_baselines: bool,
    report_dir: Path,
    min_exact: float | None,
    as_json: bool,
) -> None:
    """Score retrieval and answers on a question set, beside two baselines."""
    from .build import build_index
    from .eval_report import report_tables, write_report
    from .evaluation import load_questions, run_eval
    from .pipeline import Pipeline

    s = _settings(corpus=corpus, index_dir=index_dir, engine=engine)
    questions = load_questions(questions_file)
    if split:
        questions = [q for q in questions if q.split == split]
    questions = questions[:limit] if limit else questions
    if corpus is not None:
        build_index(s)
    pipe = Pipeline.load(s)
    run = run_eval(
        pipe,
        questions,
        engine=s.engine,
        k=k,
        baselines=not no_baselines,
        progress=lambda m: click.echo(m, err=True),
    )
    path = write_report(run, report_dir)
    overall = run.summary()["overall"]
    if as_json:
        _emit_json({"meta": run.meta, "summary": overall, "report": str(path)})
    else:
        _print_tables(report_tables(run))
        click.echo(f"\nReport: {path}")
    exact = overall.get("quote_exact_rate")
    if min_exact is not None and exact is not None and exact < min_exact:
        _fail(f"quote exact rate {exact:.3f} is below {min_exact}")
        sys.exit(1)


def labelled_sets_options(f: Any) -> Any:
    """``--set CORPUS QUESTIONS`` (repeatable) and ``--index-root``: what every fit is made on."""
    f = click.option(
        "--index-root",
        type=click.Path(path_type=Path),
        default=Path("index/calibration"),
        show_default=True,
        help="Where each corpus's index is built.",
    )(f)
    return click.option(
        "--set",
        "sets",
        nargs=2,
        multiple=True,
        type=click.Path(path_type=Path),
        help="CORPUS QUESTIONS.jsonl (repeatable); default: the seeds and the 36 study "
        "transcripts.",
    )(f)


def default_sets() -> tuple[tuple[Path, Path], ...]:
    """The labelled corpora fits are made on: the seeds and the study's 36 transcripts (from
    ``../shared``, beside the checkout), each with its question file."""
    from .settings import bundled_corpus

    shared = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    return (
        (bundled_corpus(), Path("eval/questions.jsonl")),
        (shared / "mlsss-transcripts", Path("eval/questions_mlsss.jsonl")),
    )


def _print_tables(tables: list[tuple[str, list[str], list[list[str]]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    for title, header, rows in tables:
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            table.add_row(*r)
        console.print(table)


@click.command()
@labelled_sets_options
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where the fitted model is written (default: the one the settings use, the bundled"
    " scan_model.json, or scan_model_adapted.json with MLQI_EMBED_ADAPTER='').",
)
@click.option(
    "--ablate",
    multiple=True,
    metavar="FEATURE",
    help="Also report the dev questions out of fold (3 x 5-fold by question) with all "
    "features and without this one (repeatable; a comma list is one ablation).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@one_line_errors
def calibrate(
    sets: tuple[tuple[Path, Path], ...],
    index_root: Path,
    out: Path | None,
    ablate: tuple[str, ...],
    as_json: bool,
) -> None:
    """Fit the scan's decision model on labelled question–interview pairs (dev split), and
    report it on the held-out split beside a one-feature baseline."""
    from .build import build_index
    from .calibration import ScanModel
    from .evaluation import load_questions
    from .fitting import fit, pairs_for
    from .pipeline import Pipeline
    from .validation import (
        check_features,
        cross_validated,
        decisions,
        single_feature_baseline,
    )

    ablations = [tuple(f.strip() for f in a.split(",") if f.strip()) for a in ablate]
    try:
        check_features([f for names in ablations for f in names])
    except ValueError as exc:
        raise click.UsageError(f"--ablate: {exc}") from None

    sets = sets or default_sets()
    out = out or _settings().scan_model_path()  # the model these settings answer with
    pairs: list[Any] = []
    absent: dict[tuple[str, str], bool] = {}
    coverage: set[tuple[str, str]] = set()
    for corpus, qfile in sets:
        name = str(Path(corpus).name)
        s = _settings(corpus=corpus, index_dir=index_root / name, scan_model=out)
        build_index(s)
        # Features do not depend on the model: scan with the neutral one.
        pipe = Pipeline.load(s, model=ScanModel.neutral())
        questions = load_questions(qfile)
        coverage |= {(name, q.id) for q in questions if q.kind == "coverage"}
        got, miss = pairs_for(pipe, questions, name)
        pairs += got
        absent.update(miss)
        click.echo(f"{name}: {len(got)} question–interview pairs", err=True)
    model = fit(pairs, ruled={key for key, gone in absent.items() if gone})
    baseline = single_feature_baseline(pairs)
    report: dict[str, Any] = {"model": model.report, "splits": {}}
    for split in ("dev", "heldout"):
        for corpus in dict.fromkeys(p.corpus for p in pairs):
            rows = [p for p in pairs if p.split == split and p.corpus == corpus]
            if rows:
                report["splits"][f"{corpus}/{split}"] = {
                    "fitted": decisions(rows, model, absent),
                    "baseline span_max": decisions(rows, baseline, absent),
                }
    model = dataclasses.replace(model, report=report)
    model.save(out)
    ruled = {key for key, gone in absent.items() if gone}
    ablation = {
        " - ".join(("all features", *names)): cross_validated(pairs, ruled, coverage, names)
        for names in ([()] + ablations if ablations else [])
    }
    if as_json:
        _emit_json(
            {"out": str(out), "params": model.params(), "report": report}
            | ({"ablation": ablation} if ablation else {})
        )
        return
    click.echo(f"Wrote {out} (digest {model.digest})")
    for key, systems in report["splits"].items():
        for system, figures in systems.items():
            cells = " ".join(f"{k}={v:.3f}" for k, v in figures.items() if k != "questions")
            click.echo(f"  {key:<32} {system:<18} n={figures['questions']:<3} {cells}")
    click.echo(
        "  weights (discusses): "
        + ", ".join(
            f"{f}={w:+.2f}" for f, w in zip(model.features, model.coef_discusses, strict=True)
        )
    )
    if ablation:
        click.echo("Dev questions out of fold (3 x 5-fold by question):")
    width = max((len(system) for system in ablation), default=0)
    for system, by_corpus in ablation.items():
        for corpus_name, figures in by_corpus.items():
            cells = " ".join(f"{k}={v:.3f}" for k, v in figures.items() if k != "questions")
            click.echo(f"  {corpus_name + '/dev':<32} {system:<{width}} {cells}")
