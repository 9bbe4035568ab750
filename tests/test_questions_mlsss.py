"""Validate the fixed evaluation question set over the 36 MLSSS study transcripts."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from mlqi_rag.evaluation import load_questions
from mlqi_rag.transcripts import parse_file

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "eval" / "questions_mlsss.jsonl"
SECOND_READER = REPO / "eval" / "checks" / "second_reader.jsonl"
KINDS = {
    "factoid",
    "thematic",
    "per-interview",
    "code-based",
    "cross-interview",
    "unanswerable",
    "coverage",
}
ABSENT = re.compile(r"^absent term:\s*(?P<term>.+?)\s*$", re.I)


def _raw() -> list[dict]:
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _transcript(mlsss_dir: Path, interview: str) -> Path:
    matches = [
        p
        for p in mlsss_dir.glob("*.txt")
        if re.fullmatch(rf"Interview {re.escape(interview)}(?:\s*-.*)?", p.stem)
    ]
    assert len(matches) == 1, f"interview {interview}: expected one file, found {matches}"
    return matches[0]


@pytest.fixture(scope="module")
def raw() -> list[dict]:
    return _raw()


def test_schema_loads_and_sizes(raw: list[dict]) -> None:
    questions = load_questions(QUESTIONS)
    assert len(questions) == len(raw) >= 70
    ids = [q.id for q in questions]
    assert len(set(ids)) == len(ids)
    assert all(q.kind in KINDS for q in questions)
    assert all(q.split in {"dev", "heldout"} for q in questions)
    assert {q.split for q in questions} == {"dev", "heldout"}
    assert all(q.gold_codes == [] for q in questions)
    assert all(q.answer_points for q in questions)


def test_kind_counts(raw: list[dict]) -> None:
    kinds = Counter(d["kind"] for d in raw)
    coverage = [d for d in raw if d["kind"] == "coverage"]
    assert len(coverage) >= 14
    assert all(d["gold_interviews"] and d["gold_quotes"] for d in coverage)
    assert kinds["unanswerable"] >= 10
    assert sum("2" in d["gold_interviews"] for d in raw) >= 4
    held = Counter(d["kind"] for d in raw if d["split"] == "heldout")
    assert held["coverage"] >= 18
    assert held["unanswerable"] >= 3


def test_gold_lists_consistent(raw: list[dict]) -> None:
    for d in raw:
        gold = d["gold_interviews"]
        touching = d.get("gold_touching", [])
        assert isinstance(touching, list)
        assert len(set(gold)) == len(gold), d["id"]
        assert not set(gold) & set(touching), d["id"]
        assert {g["interview"] for g in d["gold_quotes"]} <= set(gold), d["id"]
        if d["kind"] == "unanswerable":
            assert not gold and not d["gold_quotes"] and not touching, d["id"]
        else:
            assert gold and d["gold_quotes"], d["id"]


def test_gold_quotes_are_verbatim_participant_speech(raw: list[dict], mlsss_dir: Path) -> None:
    _check_quotes(raw, mlsss_dir)


def _check_quotes(raw: list[dict], mlsss_dir: Path) -> None:
    """Every gold quote is one line's exact text, inside a participant turn, 8–45 words."""
    cache: dict[str, tuple[str, list[str], list[tuple[int, int]]]] = {}
    for d in raw:
        for g in d["gold_quotes"]:
            iv, quote = g["interview"], g["quote"]
            assert "\n" not in quote and "\r" not in quote, d["id"]
            assert 8 <= len(quote.split()) <= 45, (d["id"], quote)
            if iv not in cache:
                path = _transcript(mlsss_dir, iv)
                text = path.open(encoding="utf-8", newline="").read()
                interview = parse_file(path)
                assert interview.id == iv
                paras = [
                    p for t in interview.turns if t.role == "participant" for p in t.paragraphs
                ]
                cache[iv] = (text, [p.text for p in paras], [(p.start, p.end) for p in paras])
            text, para_texts, spans = cache[iv]
            assert quote in text, (d["id"], iv, quote)
            in_turn = any(quote in t for t in para_texts) or any(
                quote in text[s:e] for s, e in spans
            )
            assert in_turn, (d["id"], iv, "quote is not inside a participant turn", quote)


def test_unanswerable_terms_absent(raw: list[dict], mlsss_dir: Path) -> None:
    corpus = [
        p.open(encoding="utf-8", newline="").read().lower() for p in sorted(mlsss_dir.glob("*.txt"))
    ]
    assert len(corpus) == 36
    multi = 0
    for d in raw:
        if d["kind"] != "unanswerable":
            continue
        terms = [m["term"] for a in d["answer_points"] if (m := ABSENT.match(a))]
        assert terms, f"{d['id']}: no 'absent term: ...' answer point"
        for term in terms:
            assert not any(term.lower() in t for t in corpus), (d["id"], term)
            multi += " " in term.strip()
    assert multi >= 3


def test_second_reading_matches_its_record(raw: list[dict], mlsss_dir: Path) -> None:
    """The second reader's lists in the question set are those of the reader's own record
    (``eval/checks/second_reader.jsonl``), whose quotes are verbatim participant speech too; a
    second reading exists only for coverage questions, and covers held-out and dev alike."""
    record = [json.loads(x) for x in SECOND_READER.read_text(encoding="utf-8").splitlines() if x]
    by_id = {d["id"]: d for d in raw}
    assert len(record) >= 12
    for r in record:
        q = by_id[r["id"]]
        assert q["kind"] == "coverage" and r["question"] == q["question"], r["id"]
        assert q["second_reader"] == {
            "interviews": r["gold_interviews"],
            "touching": r["gold_touching"],
        }, r["id"]
        assert not set(r["gold_interviews"]) & set(r["gold_touching"]), r["id"]
        assert {g["interview"] for g in r["gold_quotes"]} == set(r["gold_interviews"]), r["id"]
    assert {d["id"] for d in raw if "second_reader" in d} == {r["id"] for r in record}
    assert {by_id[r["id"]]["split"] for r in record} == {"dev", "heldout"}
    _check_quotes(record, mlsss_dir)


ADJUDICATION = REPO / "eval" / "checks" / "adjudication.jsonl"


def _level(interviews: list[str], touching: list[str], iv: str) -> str:
    return "discusses" if iv in interviews else "touches" if iv in touching else "silent"


def test_reconciled_gold_is_the_readers_consensus(raw: list[dict], mlsss_dir: Path) -> None:
    """Where the gold was reconciled (``first_reader`` kept), each interview's gold level is the
    two readers' label where they agree and the adjudicator's where they do not; a question read
    once but exhaustively (no second reader) takes the adjudicated reading of all 36 interviews.
    The adjudicator's quotes are verbatim participant speech too."""
    record = [json.loads(x) for x in ADJUDICATION.read_text(encoding="utf-8").splitlines() if x]
    decided: dict[str, dict[str, dict]] = {}
    for r in record:
        assert r["label"] in {"discusses", "touches", "silent"}, r
        assert bool(r["quote"]) == (r["label"] != "silent"), r
        decided.setdefault(r["id"], {})[r["interview"]] = r
    reconciled = [d for d in raw if "first_reader" in d]
    assert {d["id"] for d in reconciled} == set(decided)
    assert sum(d["split"] == "heldout" for d in reconciled) >= 5
    all_ivs = {p.stem.split()[1] for p in mlsss_dir.glob("*.txt")}
    for d in reconciled:
        first, second, mine = d["first_reader"], d.get("second_reader"), decided[d["id"]]
        for iv in all_ivs:
            a = _level(first["interviews"], first["touching"], iv)
            if second is None:
                want = mine[iv]["label"]
            else:
                b = _level(second["interviews"], second["touching"], iv)
                want = a if a == b else mine[iv]["label"]
                if a != b:
                    assert (mine[iv]["first_reader"], mine[iv]["second_reader"]) == (a, b)
                else:
                    assert iv not in mine, (d["id"], iv, "adjudicated where the readers agree")
            assert _level(d["gold_interviews"], d["gold_touching"], iv) == want, (d["id"], iv)
    quoted = [
        {"id": r["id"], "gold_quotes": [{"interview": r["interview"], "quote": r["quote"]}]}
        for r in record
        if r["quote"]
    ]
    _check_quotes_verbatim(quoted, mlsss_dir)


def _check_quotes_verbatim(raw: list[dict], mlsss_dir: Path) -> None:
    """Like ``_check_quotes`` without the length bounds (an adjudicator's quote is evidence for a
    label, not a gold quote a citation must overlap)."""
    for d in raw:
        for g in d["gold_quotes"]:
            path = _transcript(mlsss_dir, g["interview"])
            text = path.open(encoding="utf-8", newline="").read()
            assert g["quote"] in text, (d["id"], g["interview"], g["quote"])
            interview = parse_file(path)
            spans = [
                (p.start, p.end)
                for t in interview.turns
                if t.role == "participant"
                for p in t.paragraphs
            ]
            assert any(g["quote"] in text[s:e] for s, e in spans), (d["id"], g["interview"])
