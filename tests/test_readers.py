"""A second reader's blind labels: the agreement figures, and the eval report that carries them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlqi_rag.cli import cli
from mlqi_rag.readers import alphas, levels, question_metrics

IVS = ["2", "7", "10", "12", "20", "31"]


def test_question_metrics_compare_the_readers_and_the_list() -> None:
    got = question_metrics(
        IVS,
        ({"7", "10", "12"}, {"20"}),
        ({"7", "10"}, {"12"}),
        listed={"10", "31"},
    )
    assert got["readers_f1"] == pytest.approx(2 * 2 / 5)
    assert got["readers_count_error"] == 1
    assert got["coverage_f1_second_reader"] == pytest.approx(2 * 1 / 4)
    assert got["coverage_count_error_second_reader"] == 0
    assert got["coverage_f1_first_reader"] == pytest.approx(2 * 1 / 5)
    assert got["coverage_count_error_first_reader"] == 1
    assert got["reader_levels"] == [[0, 2, 2, 2, 1, 0], [0, 2, 2, 1, 0, 0]]


def test_alpha_is_one_when_readers_agree_and_ordinal_forgives_near_misses() -> None:
    first = levels(IVS, {"7", "10", "12"}, {"20"})
    assert alphas([[first, first]]) == {"alpha_discusses": 1.0, "alpha_levels": 1.0}
    # The same one disagreement on interview 12, as "touches" and as "silent": both count fully
    # against "discusses or not", but the ordinal alpha holds the near miss less against them.
    near = alphas([[first, levels(IVS, {"7", "10"}, {"12", "20"})]])
    far = alphas([[first, levels(IVS, {"7", "10"}, {"20"})]])
    assert near["alpha_discusses"] == pytest.approx(far["alpha_discusses"])
    assert near["alpha_discusses"] < 1
    assert near["alpha_levels"] > far["alpha_levels"]
    assert alphas([]) == {"alpha_discusses": None, "alpha_levels": None}


@pytest.mark.slow
def test_eval_reports_the_second_reading(seed_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A second-read coverage question on the seeds: the report gains the agreement table, and
    the product's F1 against the first reader is the eval's own coverage F1."""
    q = {
        "id": "r1",
        "question": "Which interviewees describe how they deal with missing values?",
        "kind": "coverage",
        "gold_interviews": ["31", "32", "35"],
        "gold_touching": [],
        "second_reader": {"interviews": ["32", "35"], "touching": ["31"]},
    }
    plain = {**q, "id": "r2"}
    del plain["second_reader"]
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps(q) + "\n" + json.dumps(plain) + "\n", encoding="utf-8")
    args = ["eval", "--questions", str(qfile), "--no-baselines", "--json"]
    args += ["--report-dir", str(tmp_path / "results")]
    result = CliRunner().invoke(cli, args, env={"MLQI_INDEX_DIR": str(seed_index.index_dir)})
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    summary = out["summary"]
    assert summary["second_read"] == 1  # the question without a second reading is not counted
    assert summary["readers_f1"] == pytest.approx(0.8)
    assert summary["readers_count_mae"] == 1
    assert summary["coverage_f1_first_reader"] == pytest.approx(summary["coverage_f1"])
    first = summary["coverage_count_mae_first_reader"]
    second = summary["coverage_count_mae_second_reader"]
    assert first == summary["coverage_count_mae"] and abs(first - second) == 1  # gold 3, read 2
    assert 0 <= summary["coverage_f1_second_reader"] <= 1
    assert summary["coverage_f1_gold"] == pytest.approx(summary["coverage_f1"])
    assert summary["alpha_discusses"] < summary["alpha_levels"] < 1
    text = Path(out["report"]).read_text(encoding="utf-8")
    assert "Gold read twice" in text and "readers_f1" in text


@pytest.mark.slow
def test_eval_scores_reconciled_gold_and_keeps_each_reading(seed_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Where an adjudicator reconciled the two readings, the gold is the consensus, and the
    readers' agreement and the product's score against each reader come from the readings."""
    q = {
        "id": "r1",
        "question": "Which interviewees describe how they deal with missing values?",
        "kind": "coverage",
        "gold_interviews": ["31", "32", "35"],  # the consensus
        "gold_touching": [],
        "first_reader": {"interviews": ["32"], "touching": ["35"]},
        "second_reader": {"interviews": ["31", "32", "35", "17"], "touching": []},
    }
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps(q) + "\n", encoding="utf-8")
    args = ["eval", "--questions", str(qfile), "--no-baselines", "--json"]
    args += ["--report-dir", str(tmp_path / "results")]
    result = CliRunner().invoke(cli, args, env={"MLQI_INDEX_DIR": str(seed_index.index_dir)})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert summary["readers_f1"] == pytest.approx(2 * 1 / 5)  # {32} against {31, 32, 35, 17}
    assert summary["readers_count_mae"] == 3
    assert summary["coverage_f1_gold"] == pytest.approx(summary["coverage_f1"])
    # The list's length n is the same in all three count errors: gold 3, first 1, second 4.
    errors = (
        summary["coverage_count_mae"],
        summary["coverage_count_mae_first_reader"],
        summary["coverage_count_mae_second_reader"],
    )
    assert any(errors == (abs(n - 3), abs(n - 1), abs(n - 4)) for n in range(6)), errors
