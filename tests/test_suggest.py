"""Suggested codes on a real index of the coded corpus (two coders' Delve print PDFs, moderation
copies and the plain transcripts of five interviews), with the real embedding model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mlqi_rag.cli import cli
from mlqi_rag.embedding import Embedder
from mlqi_rag.index import Index, build_index
from mlqi_rag.settings import Settings
from mlqi_rag.suggest import (
    DEFAULT_MIN_CONFIDENCE,
    MIN_EXAMPLES,
    SUGGESTED,
    evaluate,
    rare_codes,
    suggest,
    with_suggestions,
)

pytestmark = pytest.mark.slow
CODED = {"2", "7", "12", "32", "35"}
KEYS = {"interview_id", "turn_index", "start", "end", "text", "code", "confidence", "examples"}
LOW = 0.05  # below the default, so the checks below see many suggestions


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def index(coded_index: Settings) -> Index:
    return Index.load(coded_index)


@pytest.fixture(scope="module")
def report(index: Index) -> dict:  # type: ignore[type-arg]
    return evaluate(index)


def test_loio_evaluation_reports_every_figure(report: dict) -> None:  # type: ignore[type-arg]
    assert set(report["interviews"]) == CODED
    assert report["passages"] > report["coded_passages"] > 100
    for level in ("passage", "interview"):
        for avg in ("micro", "macro"):
            assert set(report[level][avg]) == {"precision", "recall", "f1"}
        assert report[level]["codes"]["Data-low-quality"]["support"] > 0
    kappa = {r["coder"]: r for r in report["kappa"]}
    assert set(kappa) == {"PO", "Rached", "Ilan"}
    assert set(kappa["Rached"]["interviews"]) == {"2", "7", "12"}
    # the human-human reference on the same passages: moderate agreement
    assert all(0.2 < r["other_passage"] < 0.7 for r in report["kappa"])
    assert set(report["learners"]) == {"knn", "logistic"}


def test_default_confidence_is_the_chosen_threshold(report: dict) -> None:  # type: ignore[type-arg]
    """The data cannot reach passage precision 0.6 under LOIO (60 of 84 codes occur in one
    interview only): the default is the best-precision threshold with 20+ suggestions, and that
    is what it reaches (about 0.1 against chance ~0.01)."""
    assert report["target_reached"] is False
    assert report["threshold_for_target"] == pytest.approx(DEFAULT_MIN_CONFIDENCE, abs=0.002)
    micro = report["passage"]["micro"]
    assert report["suggested"] >= 20
    assert micro["precision"] >= 0.05
    assert (
        report["learners"]["knn"]["average_precision"]
        > (report["learners"]["logistic"]["average_precision"])
    )


def test_rare_codes_are_reported_and_never_suggested(index: Index, report: dict) -> None:  # type: ignore[type-arg]
    rare = rare_codes(index)
    assert rare and all(n < MIN_EXAMPLES for n in rare.values())
    assert report["rare"] == rare
    assert not set(rare) & set(report["learnable"])
    assert not {s.code for s in suggest(index, min_confidence=LOW)} & set(rare)


def test_suggestions_only_on_uncoded_passages_with_exact_text(index: Index) -> None:
    rows = suggest(index, min_confidence=LOW)
    assert rows
    for s in rows:
        assert set(s.to_dict()) == KEYS
        assert s.text == index.source_text(s.interview_id)[s.start : s.end]
        [para] = [
            p
            for t in index.interviews[s.interview_id].turns
            for p in t.paragraphs
            if (p.start, p.end) == (s.start, s.end)
        ]
        assert not para.coded, "a passage some researcher coded got a suggestion"
        assert s.confidence >= LOW
        assert s.examples and all(e.interview_id != s.interview_id for e in s.examples)
    one = rows[0].interview_id
    only = suggest(index, one, min_confidence=LOW)
    assert only and {s.interview_id for s in only} == {one}
    iv = with_suggestions(index.interviews[one], only)
    assert SUGGESTED in iv.coders
    assert [p.codes for t in iv.turns for p in t.paragraphs] == [
        p.codes for t in index.interviews[one].turns for p in t.paragraphs
    ]


def test_cli_json_and_table(coded_index: Settings) -> None:
    d = str(coded_index.index_dir)
    result = run("suggest", "--index-dir", d, "--json", "--min-confidence", str(LOW))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(set(r) == KEYS for r in rows)
    assert set(rows[0]["examples"][0]) >= {"interview_id", "turn_index", "text", "coder"}
    assert "too rare to learn" in result.stderr
    result = run("suggest", "--index-dir", d, "--evaluate")
    assert result.exit_code == 0, result.output
    assert "Cohen's kappa" in result.stdout and "passage   micro" in result.stdout


def test_errors(coded_index: Settings, tmp_path: Path, embedder: Embedder) -> None:
    one_line_error(run("suggest", "--index-dir", str(tmp_path / "none")), "mlqi-rag index")
    one_line_error(
        run("suggest", "--index-dir", str(coded_index.index_dir), "--interview", "999"),
        "unknown interview 999",
        "12",
    )
    corpus = tmp_path / "plain"
    corpus.mkdir()
    (corpus / "Interview 1.txt").write_text(
        "Interviewer: How do you check your data before training?\n"
        "Interviewee: We look at missing values and drift every week, by hand mostly.\n",
        encoding="utf-8",
    )
    s = Settings(corpus=corpus, index_dir=tmp_path / "plain-index")
    build_index(s, embedder, progress=False)
    one_line_error(
        run("suggest", "--index-dir", str(s.index_dir)), "no coded passages to learn from"
    )
