"""The fixed question set is valid against the real transcripts; the evaluator runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlqi_rag.cli import cli
from mlqi_rag.errors import QuestionError
from mlqi_rag.evaluation import Retrieved, covers, load_questions, retrieval_metrics
from mlqi_rag.quotes import participant_blocks
from mlqi_rag.transcripts import parse_paths

QUESTIONS = Path(__file__).resolve().parents[1] / "eval" / "questions.jsonl"
UNCODED = {"25", "17", "31"}


@pytest.fixture(scope="module")
def questions():  # type: ignore[no-untyped-def]
    return load_questions(QUESTIONS)


def test_question_set_shape(questions) -> None:  # type: ignore[no-untyped-def]
    assert len(questions) >= 40
    assert len({q.id for q in questions}) == len(questions)
    kinds = {q.kind for q in questions}
    assert kinds == {
        "factoid",
        "thematic",
        "per-interview",
        "code-based",
        "cross-interview",
        "unanswerable",
    }
    covered = {iv for q in questions for iv in q.gold_interviews}
    assert covered == {"32", "25", "17", "35", "31"}
    assert (
        sum(1 for q in questions if q.gold_interviews and set(q.gold_interviews) <= UNCODED) >= 15
    )
    assert sum(1 for q in questions if len(q.gold_interviews) >= 2) >= 8
    unanswerable = [q for q in questions if q.kind == "unanswerable"]
    assert len(unanswerable) >= 5 and all(
        not q.gold_interviews and not q.gold_quotes for q in unanswerable
    )
    assert sum(q.split == "heldout" for q in questions) == 10
    for q in questions:
        if q.kind != "unanswerable":
            assert q.gold_quotes and {g.interview for g in q.gold_quotes} <= set(q.gold_interviews)
            assert 1 <= len(q.answer_points) <= 4


def test_gold_quotes_are_verbatim_participant_speech(questions, seed_dir: Path) -> None:  # type: ignore[no-untyped-def]
    interviews, errors = parse_paths([seed_dir])
    assert not errors
    by_id = {iv.id: iv for iv in interviews}
    codes = {c for iv in interviews for c in iv.codes}
    for q in questions:
        assert set(q.gold_codes) <= codes, q.id
        for g in q.gold_quotes:
            iv = by_id[g.interview]
            src = Path(iv.source).read_text(encoding="utf-8")
            start = src.find(g.quote)
            assert start >= 0, f"{q.id}: not an exact substring of interview {g.interview}"
            end = start + len(g.quote)
            assert any(b.start <= start and end <= b.end for b in participant_blocks(iv, src)), (
                f"{q.id}: gold quote is not inside a participant turn"
            )
            assert 8 <= len(g.quote.split()) <= 40, q.id


def test_unanswerable_topics_are_absent(questions, seed_dir: Path) -> None:  # type: ignore[no-untyped-def]
    corpus = " ".join(p.read_text(encoding="utf-8").lower() for p in seed_dir.glob("*.md"))
    for term in ("federated", "quantum", "reinforcement", "self-driving", "carbon", "kafka"):
        assert term not in corpus


def test_coverage_arithmetic() -> None:
    item = Retrieved("32", "abc def ghi", ((100, 111),))
    assert covers(item, "def", None)
    assert covers(item, "zzz", (105, 115))  # 6 of 10 characters covered
    assert not covers(item, "zzz", (108, 120))
    assert not covers(item, "zzz", (105, 115), budget=3)


def test_retrieval_metrics_per_question(questions) -> None:  # type: ignore[no-untyped-def]
    q = next(q for q in questions if q.id == "q01")
    g = q.gold_quotes[0]
    items = [Retrieved("17", "x", ()), Retrieved(g.interview, f"... {g.quote} ...", ())]
    m = retrieval_metrics(items, q, lambda iv, quote: None)
    assert m["mrr"] == 0.5
    assert m["interview_recall@5"] == pytest.approx(1 / len(q.gold_interviews))
    assert m["interview_recall_capped@5"] == pytest.approx(1 / min(5, len(q.gold_interviews)))
    # a list longer than k: every one of the k interviews on it is a complete top k
    wide = q.model_copy(update={"gold_interviews": [str(i) for i in range(30)]})
    ten = [Retrieved(str(i), "x", ()) for i in range(10)]
    got = retrieval_metrics(ten, wide, lambda iv, quote: None)
    assert got["interview_recall@10"] == pytest.approx(1 / 3)
    assert got["interview_recall_capped@10"] == 1.0


def test_bad_question_file(tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "a", "question": "ok"}\n{"id": "b"}\n')
    with pytest.raises(QuestionError, match=r"q.jsonl:2: question: Field required"):
        load_questions(bad)
    bad.write_text("not json\n")
    with pytest.raises(QuestionError, match=r"q.jsonl:1"):
        load_questions(bad)


@pytest.mark.slow
def test_quick_eval_gate(seed_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """CI's quick eval: a subset, both baselines, and the quote-exactness gate at 1.0."""
    env = {"MLQI_INDEX_DIR": str(seed_index.index_dir)}
    args = [
        "eval",
        "--questions",
        str(QUESTIONS),
        "--limit",
        "10",
        "--min-exact",
        "1.0",
        "--report-dir",
        str(tmp_path / "results"),
        "--json",
    ]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    summary = out["summary"]
    assert summary["quote_exact_rate"] == 1.0
    assert summary["participant_share"] == 1.0
    for system in ("ours", "read", "llamaindex", "bm25"):
        assert 0 <= summary[f"{system}:interview_recall@5"] <= 1
        assert f"{system}:mrr" in summary
    report = Path(out["report"])
    text = report.read_text(encoding="utf-8")
    assert "llama-index defaults" in text and "BM25 only" in text
    assert "as the answer read" in text
    assert out["meta"]["corpus_hash"] in text and "all-MiniLM-L6-v2" in text
    assert report.with_suffix(".json").exists()
