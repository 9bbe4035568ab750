"""``mlqi-rag fit-grouping``, ``fit-retrieval`` and ``fit-quotes``: fitting the constants that
were once set by hand, each reported on data it was not fitted on beside the setting used before.
Each exits 1 when the fit disagrees with what the package ships, so a hand edit cannot slip by."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from .cli import _emit_json, _fail, _settings, one_line_errors
from .cli_eval import _print_tables, labelled_sets_options


def _labelled(sets: tuple[tuple[Path, Path], ...], index_root: Path) -> list[tuple[str, Any, Any]]:
    """Each labelled corpus (default: the seeds and the 36 transcripts): its name, its loaded
    pipeline (the index built first when missing or stale) and its questions."""
    from .build import build_index
    from .cli_eval import default_sets
    from .evaluation import load_questions
    from .pipeline import Pipeline

    out = []
    for corpus, qfile in sets or default_sets():
        name = Path(corpus).name
        s = _settings(corpus=corpus, index_dir=index_root / name)
        build_index(s)
        out.append((name, Pipeline.load(s), load_questions(Path(qfile))))
    return out


def _pick_verdict(report: dict[str, Any], label: Callable[[dict[str, Any]], str]) -> None:
    """The fit's one line: the best dev point, its gain and standard error, and the pick."""
    click.echo(
        "best on dev: {} (gain {:+.4f}, one standard error {:.4f}) -> {}".format(
            label(report["best"]),
            report["best_gain"],
            report["best_gain_se"],
            "kept the setting before"
            if report["kept_baseline"]
            else "chosen: " + label(report["chosen"]),
        )
    )


def _must_ship(report: dict[str, Any], shipped: dict[str, Any], where: str) -> None:
    """Exit 1 when the fit's pick is not what the package ships (``where``)."""
    if report["chosen"] != shipped:
        _fail(f"the fitted {report['chosen']} differs from {where} {shipped}: update it")
        sys.exit(1)


@click.command(name="fit-grouping")
@click.option(
    "--corpus",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Coded transcripts (default: the study's Delve prints, ../shared/corpus/delve-pdf).",
)
@click.option(
    "--index-dir",
    type=click.Path(path_type=Path),
    default=Path("index/calibration/delve-pdf"),
    show_default=True,
    help="Where that corpus's index is built.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@one_line_errors
def fit_grouping(corpus: Path | None, index_dir: Path, as_json: bool) -> None:
    """Fit how an answer's quotes are clustered into practices, on the researchers' codes:
    each code family scored held out (adjusted Rand index), beside the setting used before."""
    from . import grouping
    from .build import build_index
    from .index import Index

    if corpus is None:
        corpus = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "delve-pdf"
        if not corpus.is_dir():
            _fail(f"{corpus}: no coded corpus here; pass --corpus")
            sys.exit(1)
    s = _settings(corpus=corpus, index_dir=index_dir)
    build_index(s)
    index = Index.load(s)
    fams = grouping.families(index)
    if not fams:
        _fail(f"{corpus}: {grouping.NO_FAMILIES}")
        sys.exit(1)
    report = grouping.fit(index, fams)
    if as_json:
        _emit_json(report)
    else:
        rows = [
            [
                r["family"],
                ", ".join(f"{c} ({n})" for c, n in r["codes"].items()),
                str(r["samples"]),
                "{turn_weight:g} {linkage} {distance:g}".format(**r["setting"]),
                f"{r['ari_fitted']:.3f}",
                f"{r['ari_baseline']:.3f}",
            ]
            for r in report["families"]
        ]
        held = report["held_out"]
        rows.append(
            ["mean", "", "", "", f"{held['ari_fitted']:.3f}", f"{held['ari_baseline']:.3f}"]
        )
        _print_tables(
            [
                (
                    "Quote clusters against the researchers' codes (adjusted Rand index, each "
                    "family held out)",
                    [
                        "family",
                        "codes (paragraphs)",
                        "samples",
                        "fitted on the others",
                        "fitted",
                        "baseline",
                    ],
                    rows,
                )
            ]
        )
        click.echo(
            "fitted on all families: {turn_weight:g} {linkage} {distance:g}".format(
                **report["fitted"]
            )
        )
    if report["fitted"] != report["shipped"]:
        _fail(
            "the fitted setting differs from grouping.SHIPPED "
            f"({report['shipped']}): update it to {report['fitted']}"
        )
        sys.exit(1)


@click.command(name="fit-retrieval")
@labelled_sets_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@one_line_errors
def fit_retrieval(sets: tuple[tuple[Path, Path], ...], index_root: Path, as_json: bool) -> None:
    """Fit the retriever's fusion constants on the dev questions (interview recall@10, quote
    hit@10 and MRR), and report the held-out questions beside the setting used before."""
    from dataclasses import asdict

    from . import retrieval_fit
    from .settings import Settings

    fit_sets = [
        retrieval_fit.FitSet(name, pipe, tuple(questions))
        for name, pipe, questions in _labelled(sets, index_root)
    ]
    report = retrieval_fit.fit(fit_sets, progress=lambda m: click.echo(m, err=True))
    defaults = Settings.model_fields
    shipped = {k: defaults[k].default for k in asdict(retrieval_fit.BASELINE)}
    report["shipped"] = shipped
    if as_json:
        _emit_json(report)
    else:
        rows: list[list[str]] = []
        for split in ("dev", "heldout"):
            for system in ("chosen", "baseline", "best"):
                for corpus, f in report[split].get(system, {}).items():
                    rows.append(
                        [
                            f"{corpus}/{split}",
                            system,
                            str(f["questions"]),
                            *(f"{f[m]:.3f}" for m in (*retrieval_fit.METRICS, "score")),
                        ]
                    )
        _print_tables(
            [
                (
                    "Retrieval constants: the pick beside the setting before (held-out never "
                    "picks)",
                    ["questions", "setting", "n", *retrieval_fit.METRICS, "mean"],
                    rows,
                )
            ]
        )
        _pick_verdict(report, lambda d: retrieval_fit.RetrievalSetting(**d).label())
        for knob, applies in (
            ("code_boost", "the questions that name a code"),
            ("name_weight", "the questions that name a tool some interviewees say"),
        ):
            w = report[knob]
            _print_tables(
                [
                    (
                        f"{knob}, on {applies} (the constants before it at their pick)",
                        ["questions", "setting", "n", *retrieval_fit.METRICS, "mean"],
                        [
                            [
                                f"{corpus}/{split}",
                                f"{system} ({w[system][knob]:g})",
                                str(f["questions"]),
                                *(f"{f[m]:.3f}" for m in (*retrieval_fit.METRICS, "score")),
                            ]
                            for split in ("dev", "heldout")
                            for system in ("chosen", "baseline")
                            for corpus, f in w[split][system].items()
                        ],
                    )
                ]
            )
            _pick_verdict(w, _knob_label(knob))
    _must_ship(report, shipped, "Settings' defaults")
    for knob in ("code_boost", "name_weight"):
        _must_ship(report[knob], {knob: Settings.model_fields[knob].default}, "Settings' default")


def _knob_label(knob: str) -> Callable[[dict[str, Any]], str]:
    return lambda d: f"{knob}={d[knob]:g}"


@click.command(name="fit-quotes")
@labelled_sets_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@one_line_errors
def fit_quotes(sets: tuple[tuple[Path, Path], ...], index_root: Path, as_json: bool) -> None:
    """Fit how an interview's quote is chosen among its spans, on the dev questions' gold
    quotes, and report the held-out ones beside the weights used before."""
    from dataclasses import asdict

    from . import quote_choice

    pipelines, cases = {}, []
    for name, pipe, questions in _labelled(sets, index_root):
        pipelines[name] = pipe
        cases += quote_choice.cases_for(pipe, questions, name)
    report = quote_choice.fit(pipelines, cases, progress=lambda m: click.echo(m, err=True))
    report["shipped"] = asdict(quote_choice.SHIPPED)
    if as_json:
        _emit_json(report)
    else:
        rows = [
            [f"{corpus}/{split}", system, str(f["cases"]), f"{f['hit']:.3f}"]
            + [f"{f['quotes_per_interview']:.2f}"]
            for split in ("dev", "heldout")
            for system in ("chosen", "baseline")
            for corpus, f in report[split][system].items()
        ]
        _print_tables(
            [
                (
                    "Quote choice: gold quotes shown, given the interview is cited (held-out "
                    "never picks)",
                    ["cases", "weights", "n", "gold quote hit", "quotes per interview"],
                    rows,
                )
            ]
        )
        _pick_verdict(report, lambda d: quote_choice.QuoteWeights(**d).label())
    _must_ship(report, report["shipped"], "quote_choice.SHIPPED")


@click.command(name="fit-adapter")
@labelled_sets_options
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the fitted adapter here (.npz) instead of checking it against the shipped one.",
)
@click.option(
    "--ridge",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Pull towards the identity (default: adapter_fit.RIDGE, the shipped recipe).",
)
@click.option(
    "--cross-fit",
    is_flag=True,
    help="Instead, report the scan model out of fold on the dev questions, on the model's own "
    "vectors and through adapters fitted without each question's fold (about ten minutes).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@one_line_errors
def fit_adapter(
    sets: tuple[tuple[Path, Path], ...],
    index_root: Path,
    out: Path | None,
    ridge: float | None,
    cross_fit: bool,
    as_json: bool,
) -> None:
    """Fit the linear adapter that questions and passages pass through, on the dev questions'
    gold quotes, and report ranking by cosine with and without it on the held-out ones."""
    from . import adapter, adapter_fit

    labelled = _labelled(sets, index_root)
    data = [adapter_fit.labelled(n, p, q) for n, p, q in labelled]
    ridge = adapter_fit.RIDGE if ridge is None else ridge
    if cross_fit:
        _cross_fit(labelled, data, ridge, as_json)
        return
    fitted = adapter_fit.fit(data, ridge=ridge)
    report = adapter_fit.report(data, fitted, ridge)
    if out is not None:
        fitted.save(out)
        report["written"] = str(out)
    if as_json:
        _emit_json(report)
    else:
        rows = [
            [
                f"{corpus}/{split}",
                system,
                f"{f['interview_ap']:.3f} ({f['coverage_questions']})",
                f"{f['span_hit@10']:.3f} ({f['quoted_questions']})",
            ]
            for corpus, by_split in report["corpora"].items()
            for split, systems in by_split.items()
            for system, f in systems.items()
        ]
        _print_tables(
            [
                (
                    "Ranking by cosine, the model's own vectors beside the adapter's "
                    "(held-out never trains)",
                    ["questions", "vectors", "interview AP (n)", "gold span in top 10 (n)"],
                    rows,
                )
            ]
        )
        click.echo(f"fitted adapter {fitted.digest}")
    if out is None:
        shipped = adapter.load(adapter.BUNDLED)
        assert fitted.matrix is not None and shipped.matrix is not None
        if not np.allclose(fitted.matrix, shipped.matrix, atol=1e-4):
            _fail(
                f"the fitted adapter {fitted.digest} differs from the shipped "
                f"{adapter.BUNDLED.name} ({shipped.digest}): refit with --out"
            )
            sys.exit(1)


def _cross_fit(
    labelled: list[tuple[str, Any, Any]], data: list[Any], ridge: float, as_json: bool
) -> None:
    from . import adapter_crossfit

    sets = [(n, p, q, d) for (n, p, q), d in zip(labelled, data, strict=True)]
    report = adapter_crossfit.compare(sets, ridge, progress=lambda m: click.echo(m, err=True))
    if as_json:
        _emit_json(report)
        return
    keys = ["precision", "recall", "set_f1", "abstention", "false_abstention"]
    keys += ["coverage_f1", "count_mae"]
    rows = [
        [f"{corpus}/dev", system, *(f"{figures[k]:.3f}" for k in keys)]
        for system in ("raw", "cross-fitted adapter")
        for corpus, figures in report[system].items()
    ]
    _print_tables(
        [
            (
                "Scan model out of fold on the dev questions (3 x 5-fold), adapter ridge "
                f"{report['ridge']}",
                ["questions", "vectors", *keys],
                rows,
            )
        ]
    )
