"""Suggested codes on a real index of the coded corpus (three coders' Delve print PDFs, moderation
copies and the plain transcripts of five interviews), with the real embedding model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cliutil import one_line_error, run

from mlqi_rag.build import build_index
from mlqi_rag.embedding import Embedder
from mlqi_rag.index import Index
from mlqi_rag.settings import Settings
from mlqi_rag.suggest import (
    DEFAULT_MIN_CONFIDENCE,
    MIN_EXAMPLES,
    SUGGESTED,
    TOP_K,
    rare_codes,
    suggest,
    with_suggestions,
)
from mlqi_rag.suggest_eval import TARGET_PRECISION, evaluate

pytestmark = pytest.mark.slow
CODED = {"2", "7", "12", "32", "35"}
KEYS = {"interview_id", "turn_index", "start", "end", "text", "code", "confidence", "examples"}
LOW = 0.05  # below the default, so the checks below see many suggestions
CODE = "Data-low-quality"
# Held-out passage precision measured at 0.42 on 24 suggestions (the old kNN: 0.02): the 0.6
# target is not reached on these data (see eval/results/suggest.md), so this is the floor.
PRECISION_FLOOR = 0.35


@pytest.fixture(scope="module")
def index(coded_index: Settings) -> Index:
    return Index.load(coded_index)


@pytest.fixture(scope="module")
def report(index: Index, embedder: Embedder) -> dict:  # type: ignore[type-arg]
    return evaluate(index, embedder=embedder)


@pytest.fixture(scope="module")
def low(index: Index, embedder: Embedder) -> list:  # type: ignore[type-arg]
    return suggest(index, min_confidence=LOW, embedder=embedder)


def test_loio_evaluation_reports_every_figure(report: dict) -> None:  # type: ignore[type-arg]
    assert set(report["interviews"]) == CODED
    assert report["passages"] > report["coded_passages"] > 100
    assert set(report["learners"]) == {"pairwise", "knn"}
    json.dumps(report, allow_nan=False)  # strict JSON: an undefined kappa is null
    for r in report["learners"].values():
        assert set(r["thresholds"]) == CODED
        for at in (r["nested"], r["at_min_confidence"]):
            for level in ("passage", "interview"):
                for avg in ("micro", "macro"):
                    assert set(at[level][avg]) == {"precision", "recall", "f1"}
                assert at[level]["codes"][CODE]["support"] > 0
            kappa = {k["coder"]: k for k in at["kappa"]}
            assert set(kappa) == {"PO", "Rached", "Ilan"}
            assert set(kappa["Rached"]["interviews"]) == {"2", "7", "12"}
            assert set(kappa["Ilan"]["interviews"]) == {"32", "35"}
            # the human-human reference on the same passages: moderate agreement
            assert all(0.2 < k["other_passage"] < 0.7 for k in kappa.values())
            assert all(0.2 < k["other_interview"] < 0.7 for k in kappa.values())


def test_the_evaluation_report_shows_both_learners(report: dict) -> None:  # type: ignore[type-arg]
    """``suggest --evaluate``'s Markdown: each learner held out and fixed, with its figures."""
    from mlqi_rag.suggest_report import markdown

    text = markdown(report, "mlqi-rag suggest --evaluate")
    for name, r in report["learners"].items():
        row = next(x for x in text.splitlines() if x.startswith(f"| {name} (held out) |"))
        assert f"{r['nested']['passage']['micro']['precision']:.3f}" in row
        assert f"| {name} (fixed) |" in text
    assert report["threshold_rule"] in text and "mlqi-rag suggest --evaluate" in text


def test_held_out_precision_and_kappa_beat_the_knn_baseline(report: dict) -> None:  # type: ignore[type-arg]
    """Each interview at the threshold its training interviews chose (nested): the measured
    floor, well above the old kNN learner's; kappa above the baseline's for each coder, yet below
    the human-human kappa, which even a perfect model of the learnable codes cannot reach."""
    new, old = report["learners"]["pairwise"], report["learners"]["knn"]
    micro = new["nested"]["passage"]["micro"]
    assert new["nested"]["suggested"] >= 20
    assert micro["precision"] >= PRECISION_FLOOR
    assert micro["precision"] > 3 * old["nested"]["passage"]["micro"]["precision"]
    assert new["nested"]["interview"]["micro"]["precision"] >= 0.6
    assert new["average_precision"] > old["average_precision"]
    mine = {k["coder"]: k for k in new["nested"]["kappa"]}
    base = {k["coder"]: k for k in old["nested"]["kappa"]}
    ceiling = {k["coder"]: k for k in new["ceiling_kappa"]}
    for coder, k in mine.items():
        assert k["suggested_interview"] > max(base[coder]["suggested_interview"], 0.03), coder
        assert k["suggested_interview"] < k["other_interview"], coder
        assert ceiling[coder]["suggested_interview"] < k["other_interview"], coder


def test_default_confidence_is_the_fitted_threshold(report: dict) -> None:  # type: ignore[type-arg]
    new = report["learners"]["pairwise"]
    assert report["default_min_confidence"] == DEFAULT_MIN_CONFIDENCE
    assert new["threshold_on_all_folds"] == pytest.approx(DEFAULT_MIN_CONFIDENCE, abs=0.005)
    assert TARGET_PRECISION == 0.6
    assert new["target_reached_on_all_folds"] is False  # the best the rule found: see above
    # each fold chose a threshold near the default: the rule is stable across folds
    assert all(0.1 < t < 0.5 for t in new["thresholds"].values()), new["thresholds"]
    at = new["at_min_confidence"]
    assert at["suggested"] >= 10 and at["passage"]["micro"]["precision"] >= PRECISION_FLOOR


def test_rare_codes_are_reported_and_never_suggested(index: Index, report: dict, low: list) -> None:  # type: ignore[type-arg]
    rare = rare_codes(index)
    assert rare and all(n < MIN_EXAMPLES for n in rare.values())
    assert "Q9" in rare and CODE not in rare
    assert set(rare) <= set(report["learners"]["pairwise"]["rare"])
    assert not set(rare) & set(report["learners"]["pairwise"]["learnable"])
    assert {s.code for s in low} and not {s.code for s in low} & set(rare)


def test_suggestions_only_on_uncoded_passages_with_exact_text(index: Index, low: list) -> None:  # type: ignore[type-arg]
    assert low
    per_passage: dict[tuple[str, int], int] = {}
    for s in low:
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
        assert all(s.code in {c for _, cs in e_codes(index, e) for c in cs} for e in s.examples)
        key = (s.interview_id, s.start)
        per_passage[key] = per_passage.get(key, 0) + 1
    assert max(per_passage.values()) <= TOP_K
    one = low[0].interview_id
    only = suggest(index, one, min_confidence=LOW)
    assert only and {s.interview_id for s in only} == {one}
    iv = with_suggestions(index.interviews[one], only)
    assert SUGGESTED in iv.coders
    assert [p.codes for t in iv.turns for p in t.paragraphs] == [
        p.codes for t in index.interviews[one].turns for p in t.paragraphs
    ]


def e_codes(index: Index, e: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Every coder's codes on the paragraph an example quotes."""
    iv = index.interviews[e.interview_id]  # type: ignore[attr-defined]
    [t] = [t for t in iv.turns if t.index == e.turn_index]  # type: ignore[attr-defined]
    [p] = [p for p in t.paragraphs if p.text.startswith(e.text)]  # type: ignore[attr-defined]
    return p.coded


def test_code_filter(index: Index, low: list, coded_index: Settings) -> None:  # type: ignore[type-arg]
    want = {(s.interview_id, s.start, s.code) for s in low if s.code == CODE}
    got = suggest(index, min_confidence=LOW, code=CODE)
    assert want and {(s.interview_id, s.start, s.code) for s in got} == want
    d = str(coded_index.index_dir)
    result = run("suggest", "--index-dir", d, "--code", CODE, "--json", "--min-confidence", "0.05")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and {r["code"] for r in rows} == {CODE}
    one_line_error(
        run("suggest", "--index-dir", d, "--code", "data-low-qualty"),
        "unknown code 'data-low-qualty'",
        f"did you mean {CODE}",
    )
    one_line_error(run("suggest", "--index-dir", d, "--code", "Q9"), "'Q9' is too rare to learn")


def test_cli_json_table_and_report(coded_index: Settings, tmp_path: Path) -> None:
    d = str(coded_index.index_dir)
    result = run("suggest", "--index-dir", d, "--json", "--min-confidence", str(LOW))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(set(r) == KEYS for r in rows)
    assert set(rows[0]["examples"][0]) == {
        "interview_id",
        "turn_index",
        "text",
        "coder",
        "similarity",
    }
    assert "too rare to learn" in result.stderr and "Q9" in result.stderr
    result = run("suggest", "--index-dir", d)
    assert result.exit_code == 0, result.output
    assert "suggestion(s)" in result.stderr
    out = tmp_path / "suggest.md"
    result = run(
        "suggest", "--index-dir", d, "--evaluate", "--learner", "pairwise", "--report", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "Cohen's kappa" in result.stdout and "| pairwise (held out) |" in result.stdout
    assert out.read_text(encoding="utf-8") == result.stdout
    doc = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert set(doc["learners"]) == {"pairwise"} and "--evaluate" in doc["command"]
    one_line_error(run("suggest", "--index-dir", d, "--evaluate", "--learner", "svm"), "svm")


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
