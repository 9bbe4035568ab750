"""``mlqi-rag agreement`` and the coder filter, on a real index of the coded corpus (two coders'
Delve print PDFs, moderation copies and the plain transcripts of five interviews)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import Result
from cliutil import one_line_error, run

from mlqi_rag import agreement as ag
from mlqi_rag.chunking import ChunkParams, chunk_interview
from mlqi_rag.embedding import Embedder
from mlqi_rag.errors import QuestionError
from mlqi_rag.index import Index
from mlqi_rag.render_coders import fmt
from mlqi_rag.retrieval import Filters, Retriever
from mlqi_rag.settings import Settings

pytestmark = pytest.mark.slow
CODED = ["2", "7", "12", "32", "35"]


@pytest.fixture(scope="module")
def index(coded_index: Settings) -> Index:
    return Index.load(coded_index)


@pytest.fixture(scope="module")
def table(coded_index: Settings) -> Result:
    result = run("agreement", "--index-dir", str(coded_index.index_dir))
    assert result.exit_code == 0, result.output
    return result


# ---- agreement -----------------------------------------------------------------------------------


def test_table_has_every_coded_interview_and_the_library_figures(
    table: Result, index: Index
) -> None:
    out = table.stdout
    assert "Cohen's κ" in out and "Krippendorff's α" in out and "% agreement" in out
    rows = {ln.split("│")[1].strip(): ln for ln in out.splitlines() if ln.startswith("│")}
    for iv_id in CODED:
        r = ag.passage_agreement(index.interviews[iv_id]).overall
        cells = [c.strip() for c in rows[iv_id].split("│")[1:-1]]
        assert cells[3:6] == [fmt(r.kappa), fmt(r.alpha), fmt(r.percent, percent=True)], cells
    assert "Agreement over interviews" in out and "Top 15 codes" in out
    assert "all" in rows  # every passage pooled


def test_json_shape_and_interview_12_equals_passage_agreement(
    coded_index: Settings, index: Index
) -> None:
    result = run("agreement", "--index-dir", str(coded_index.index_dir), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # one JSON document, nothing else on stdout
    assert set(doc) == {"interviews", "skipped", "uncoded", "disagreements", "passage", "interview"}
    assert doc["interviews"] == CODED and doc["skipped"] == [] and doc["uncoded"] == []
    iv12 = index.interviews["12"]
    assert "moderation" in iv12.coders  # left out of the human-human figures
    expected = json.loads(json.dumps(ag.passage_agreement(iv12).to_dict()))
    assert doc["passage"]["interviews"]["12"] == expected
    assert doc["passage"]["interviews"]["12"]["coders"] == ["PO", "Rached"]
    assert doc["passage"]["overall"]["interviews"] == CODED
    assert doc["interview"]["level"] == "interview" and doc["interview"]["units"] == 5
    n = sum(len(ag.disagreements(index.interviews[i])) for i in CODED)
    assert doc["disagreements"] == n > 0
    for key in ("kappa", "alpha", "percent"):
        assert key in doc["passage"]["overall"]["overall"]

    only = run("agreement", "--index-dir", str(coded_index.index_dir), "--json", "--level",
               "passage", "--interview", "12")  # fmt: skip
    one = json.loads(only.stdout)
    assert "interview" not in one and one["interviews"] == ["12"]
    assert one["passage"]["interviews"] == {"12": expected}


def test_disagreements_csv(coded_index: Settings, index: Index, tmp_path: Path) -> None:
    out = tmp_path / "dis.csv"
    result = run("agreement", "--index-dir", str(coded_index.index_dir), "--interview", "12",
                 "--disagreements-csv", str(out), "--level", "interview")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"to {out}" in result.stderr
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    expected = ag.disagreements(index.interviews["12"])
    assert rows[0][:6] == ["interview", "turn", "speaker", "start", "end", "code"]
    assert len(rows) - 1 == len(expected) > 0
    assert {(r[0], int(r[1]), r[5]) for r in rows[1:]} == {
        ("12", d.turn_index, d.code) for d in expected
    }
    source = index.source_text("12")
    for r in rows[1:]:  # every passage is the transcript text at its offsets
        assert source[int(r[3]) : int(r[4])] == r[9].removeprefix("'")


def test_fewer_than_two_coders_is_skipped_and_no_coders_is_an_error(
    seed_dir: Path, mlsss_dir: Path, tmp_path: Path
) -> None:
    seeds = run("agreement", "--corpus", str(seed_dir))  # 32 and 35: one coder each
    assert "note: interview 32 skipped: fewer than two human coders (PO)" in seeds.stderr
    one_line_error(seeds, "two human coders")

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "Interview 10.txt").symlink_to(mlsss_dir / "Interview 10.txt")
    one_line_error(run("agreement", "--corpus", str(plain)), "no interview", "coded copies")


def test_missing_index_and_unknown_interview(coded_index: Settings, tmp_path: Path) -> None:
    one_line_error(run("agreement", "--index-dir", str(tmp_path / "none")), "mlqi-rag index")
    one_line_error(
        run("agreement", "--index-dir", str(coded_index.index_dir), "--interview", "99"),
        "unknown interview 99",
    )


# ---- per-coder codes on chunks and the coder filter ----------------------------------------------


def test_chunks_carry_each_coders_codes_through_the_index(index: Index) -> None:
    iv = index.interviews["12"]
    fresh = chunk_interview(
        iv, index.source_text("12"), ChunkParams(index.settings.chunk_max_tokens)
    )
    stored = [c for c in index.chunks if c.interview_id == "12"]
    assert [c.coded for c in stored] == [c.coded for c in fresh]
    assert any(dict(c.coded).get("Rached") for c in stored)
    for c in stored:
        paras = [
            p
            for t in iv.turns
            if t.index == c.turn_index
            for p in t.paragraphs
            if any(p.start < e and s < p.end for s, e in c.segments)
        ]
        for coder in iv.coders:
            assert set(c.codes_by(coder)) == {x for p in paras for x in p.codes_by(coder)}


def test_coder_filter_uses_that_coders_codes(index: Index, embedder: Embedder) -> None:
    r = Retriever(index, embedder)
    code = "MD-configuration-issue"  # Rached's only (interview 12): moderation dropped it
    assert code not in index.code_counts()
    with pytest.raises(QuestionError, match="unknown code"):
        r.retrieve("data quality problems", filters=Filters(codes=(code,)))
    hits = r.retrieve("data quality problems", k=30, filters=Filters(codes=(code,), coder="Rached"))
    assert hits.hits and all(code in h.chunk.codes_by("Rached") for h in hits.hits)
    rached = {
        c.id for c in index.chunks if code in c.codes_by("Rached") and c.role == "participant"
    }
    assert {h.chunk.id for h in hits.hits} == rached  # every such passage, and only those
    # a code both use: each coder's filter gives that coder's passages, not the reader's
    both = "Data-low-quality"
    for coder in ("PO", "Rached", "Ilan"):
        got = r.retrieve(both, k=50, filters=Filters(codes=(both,), coder=coder)).hits
        assert all(both in h.chunk.codes_by(coder) for h in got)
    po = {
        h.chunk.id for h in r.retrieve(both, k=50, filters=Filters(codes=(both,), coder="PO")).hits
    }
    ra = {
        h.chunk.id
        for h in r.retrieve(both, k=50, filters=Filters(codes=(both,), coder="Rached")).hits
    }
    assert po != ra
    with pytest.raises(QuestionError) as err:
        r.retrieve("data", filters=Filters(codes=(both,), coder="Nobody"))
    assert str(err.value) == "unknown coder 'Nobody'; known: Ilan, PO, Rached, moderation"


def test_cli_coder_option(coded_index: Settings) -> None:
    idx = str(coded_index.index_dir)
    ok = run("retrieve", "data quality problems", "--index-dir", idx, "--coder", "Rached",
             "--code", "Data-wrong-format", "--json")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    hits = json.loads(ok.stdout)["hits"]
    index = Index.load(coded_index)
    assert hits and all(
        "Data-wrong-format" in index.chunks[index.by_id[h["chunk_id"]]].codes_by("Rached")
        for h in hits
    )
    assert {h["interview_id"] for h in hits} <= {"2", "7", "12"}  # Rached's interviews
    one_line_error(
        run("retrieve", "data", "--index-dir", idx, "--coder", "Nobody"),
        "unknown coder 'Nobody'",
        "Ilan, PO, Rached",
    )
