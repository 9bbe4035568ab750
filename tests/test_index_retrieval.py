"""The real index (Chroma + BM25 + the bundled model) on the real seed transcripts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from netutil import free_port

from mlqi_rag.build import build_index
from mlqi_rag.cli import cli
from mlqi_rag.embedding import Embedder
from mlqi_rag.errors import IndexMissingError
from mlqi_rag.index import Index, current_generation
from mlqi_rag.question import codes_named, validate_question
from mlqi_rag.retrieval import Filters, Retriever
from mlqi_rag.settings import Settings

pytestmark = pytest.mark.slow
MISSING = "How do practitioners handle missing values?"


@pytest.fixture(scope="session")
def retriever(seed_index: Settings, embedder: Embedder) -> Retriever:
    return Retriever(Index.load(seed_index), embedder)


def _check_retrieval(r: Retriever) -> None:
    hits = r.retrieve(MISSING).hits
    top3 = [h.chunk for h in hits[:3]]
    assert any(c.interview_id == "32" and "we just dropped the" in c.text for c in top3)

    coded = r.retrieve(MISSING, filters=Filters(codes=("Data-missing-values",))).hits
    assert coded and all("Data-missing-values" in h.chunk.codes for h in coded)

    only17 = r.retrieve(MISSING, k=10, filters=Filters(interviews=("17",))).hits
    assert len(only17) == 10 and {h.chunk.interview_id for h in only17} == {"17"}

    assert all(h.chunk.role == "participant" for h in hits)


def test_retrieval_on_the_seed_index(retriever: Retriever) -> None:
    _check_retrieval(retriever)


def test_hits_are_exact_source_spans(retriever: Retriever) -> None:
    for h in retriever.retrieve("How do you test machine learning models?").hits:
        src = Path(h.chunk.source).read_text(encoding="utf-8")
        first, *_ = h.chunk.text.split("\n\n")
        assert src[h.chunk.start : h.chunk.end].startswith(first)
        assert src[h.chunk.start : h.chunk.end].endswith(h.chunk.text.split("\n\n")[-1])


def test_interviewer_turns_only_when_asked(retriever: Retriever) -> None:
    both = retriever.retrieve(MISSING, filters=Filters(roles=())).hits
    assert {h.chunk.role for h in both} == {"participant", "interviewer"}
    asked = retriever.retrieve(MISSING, filters=Filters(roles=("interviewer",))).hits
    assert asked and all(h.chunk.role == "interviewer" for h in asked)


def test_all_codes_mode(retriever: Retriever) -> None:
    f = Filters(codes=("Data-missing-values", "Data-missing-value-fix"), codes_mode="all")
    hits = retriever.retrieve(MISSING, filters=f).hits
    assert hits and all(
        {"Data-missing-values", "Data-missing-value-fix"} <= set(h.chunk.codes) for h in hits
    )
    f = Filters(codes=("Data-missing-values", "QM-explainability-fix"), codes_mode="all")
    assert retriever.retrieve(MISSING, filters=f).hits == ()


def test_code_words_are_recognised() -> None:
    codes = [
        "Data-missing-values",
        "Data-missing-value-fix",
        "QM-explainability-issues",
        "QM-explainability-fix",
        "QM-robustness",
        "MM-drift",
    ]
    assert codes_named(MISSING, codes) == ("Data-missing-values", "Data-missing-value-fix")
    assert codes_named("What about explainability?", codes) == tuple(codes[2:4])
    assert codes_named("how did data drift affect them", codes) == ("MM-drift",)
    assert codes_named("How do teams deploy models?", codes) == ()


def test_code_aware_ranking_lifts_coded_chunks(seed_index: Settings, embedder: Embedder) -> None:
    q = "What explainability problems did they face?"
    boosted = Retriever(Index.load(seed_index), embedder).retrieve(q).hits
    plain = (
        Retriever(
            Index.load(seed_index), embedder, seed_index.model_copy(update={"code_boost": 0.0})
        )
        .retrieve(q)
        .hits
    )

    def coded_rank(hits: tuple) -> int:  # type: ignore[type-arg]
        return next(
            h.rank for h in hits if any(c.startswith("QM-explainability") for c in h.chunk.codes)
        )

    assert coded_rank(boosted) <= coded_rank(plain)
    assert coded_rank(boosted) == 1
    # uncoded transcripts still compete on their text
    assert {h.chunk.interview_id for h in boosted} & {"25", "17", "31"}


def test_passages_saying_a_named_tool_rank_however_it_was_transcribed(mlsss_pipeline) -> None:  # type: ignore[no-untyped-def]
    """Interviews 9 and 25 of the study say "ML flow", which BM25's "mlflow" does not match;
    the fitted name ranking finds them with interviews 2 and 6 ("MLflow"). Without it (weight
    0), two of the four are missing from the ten passages. "ML" and "IT" are not names that
    rank anything: most interviewees say them."""
    q = "Which interviewees say they use MLflow, and for what?"
    index, embedder, s = mlsss_pipeline.index, mlsss_pipeline.embedder, mlsss_pipeline.settings
    terms = mlsss_pipeline.retriever.terms

    def interviews(weight: float) -> set[str]:
        r = Retriever(index, embedder, s.model_copy(update={"name_weight": weight}), terms=terms)
        return {h.chunk.interview_id for h in r.retrieve(q, k=10).hits}

    assert s.name_weight > 0
    assert {"2", "6", "9", "25"} <= interviews(s.name_weight)
    assert len({"2", "6", "9", "25"} - interviews(0.0)) >= 2
    saying = terms.chunks_mentioning("MLflow")
    assert {index.chunks[p].interview_id for p in saying} == {"2", "6", "9", "25"}
    assert all(index.chunks[p].role == "participant" for p in saying)
    assert terms.distinctive_names("Why do ML projects fail in IT departments using MLflow?") == (
        "MLflow",
    )
    # a name the transcript misheard ranks too: interview 23's "sharply value" (Shapley value)
    shap = "Which interviewees talk about using SHAP / Shapley values to explain model predictions?"
    r = Retriever(index, embedder, s, terms=terms)
    assert "23" in {h.chunk.interview_id for h in r.retrieve(shap, k=10).hits}
    deaf = Retriever(index, embedder, s, terms=terms)
    deaf.terms = type(terms)(index)
    deaf.terms.heard = lambda question: {}  # type: ignore[method-assign]
    assert "23" not in {h.chunk.interview_id for h in deaf.retrieve(shap, k=10).hits}


def test_per_interview_cap(seed_index: Settings, embedder: Embedder) -> None:
    s = seed_index.model_copy(update={"per_interview_cap": 2})
    hits = (
        Retriever(Index.load(s), embedder, s)
        .retrieve("What data quality issues did you face?", k=10)
        .hits
    )
    counts = Counter(h.chunk.interview_id for h in hits)
    assert len(hits) == 10 and max(counts.values()) == 2 and len(counts) == 5


def test_exchange_context_is_display_only(retriever: Retriever) -> None:
    hits = retriever.retrieve(MISSING, k=3, with_context=True).hits
    top = hits[0]
    assert [t.index for t in top.context] == [
        top.chunk.turn_index - 1,
        top.chunk.turn_index,
        top.chunk.turn_index + 1,
    ]
    assert top.context[0].role == "interviewer"
    assert len(hits) == 3


def test_bad_questions_are_rejected() -> None:
    from mlqi_rag.errors import QuestionError

    for bad in ["", "   ", "?!?", "x" * 2001]:
        with pytest.raises(QuestionError):
            validate_question(bad)


def test_retrieve_cli_batch_json(seed_index: Settings, tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        json.dumps({"id": "a", "question": MISSING})
        + "\n"
        + json.dumps({"id": "b", "question": "explainability"})
        + "\n"
    )
    env = {"MLQI_INDEX_DIR": str(seed_index.index_dir)}
    result = CliRunner().invoke(
        cli, ["retrieve", "--questions", str(qfile), "-k", "4", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    hit = rows[0]["hits"][0]
    assert set(hit) >= {
        "interview_id",
        "label",
        "turn_index",
        "speaker",
        "role",
        "text",
        "question_context",
        "codes",
        "source",
        "start",
        "end",
        "score",
    }
    assert len(rows[0]["hits"]) == 4
    src = Path(hit["source"]).read_text(encoding="utf-8")
    assert hit["text"].split("\n\n")[0] in src[hit["start"] : hit["end"]]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    result = CliRunner().invoke(cli, ["retrieve", "--questions", str(bad)], env=env)
    assert result.exit_code == 1 and "bad.jsonl:1: question: Field required" in result.stderr


def test_missing_index_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["retrieve", MISSING], env={"MLQI_INDEX_DIR": str(tmp_path / "none")}
    )
    assert result.exit_code == 1
    assert "run `mlqi-rag index`" in result.stderr and result.stderr.count("\n") == 1


# ---- incremental builds -----------------------------------------------------------------------


@pytest.fixture
def corpus_copy(tmp_path: Path, seed_dir: Path) -> Path:
    d = tmp_path / "corpus"
    shutil.copytree(seed_dir, d)
    return d


def test_incremental_reindex(corpus_copy: Path, tmp_path: Path, embedder: Embedder) -> None:
    s = Settings(corpus=corpus_copy, index_dir=tmp_path / "idx")
    first = build_index(s, embedder, progress=False)
    assert first.embedded == first.chunks > 300

    before = embedder.calls
    again = build_index(s, embedder, progress=False)
    assert (again.changed, again.embedded, embedder.calls - before) == (False, 0, 0)
    assert again.generation == first.generation

    path = corpus_copy / "interview-31-Amin.md"
    extra = (
        "\n**Interviewer 1**\n\nDid you version your data?\n\n**Interviewee**\n\n"
        "We also versioned every dataset snapshot in a registry, with a checksum per file.\n"
    )
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    changed = build_index(s, embedder, progress=False)
    assert changed.files_changed == (str(path),)
    assert 0 < changed.embedded <= 3 and changed.reused >= changed.chunks - 3
    q = "Did they version every dataset snapshot in a registry?"
    hits = Retriever(Index.load(s), embedder).retrieve(q, k=3).hits
    assert any("versioned every dataset snapshot" in h.chunk.text for h in hits)

    (corpus_copy / "interview-17-Rached.md").unlink()
    removed = build_index(s, embedder, progress=False)
    assert removed.files_removed == (str(corpus_copy / "interview-17-Rached.md"),)
    assert removed.embedded == 0
    index = Index.load(s)
    assert "17" not in index.interviews and all(c.interview_id != "17" for c in index.chunks)
    # only the live generation and the one before it are kept on disk
    assert len(list((tmp_path / "idx").glob("gen-*"))) == 2

    rechunked = build_index(
        s.model_copy(update={"chunk_max_tokens": 200}), embedder, progress=False
    )
    assert rechunked.changed and "rebuild" in rechunked.rebuilt_reason
    with pytest.raises(IndexMissingError, match="other model or chunking"):
        Index.load(s)


def test_corrupt_index_is_reported(seed_dir: Path, tmp_path: Path, embedder: Embedder) -> None:
    s = Settings(index_dir=tmp_path / "idx")
    build_index(s, embedder, progress=False)
    gen = current_generation(tmp_path / "idx")
    assert gen
    (tmp_path / "idx" / gen / "chunks.jsonl").write_text("{not json\n")
    with pytest.raises(IndexMissingError, match=r"corrupt index .* run `mlqi-rag index`"):
        Index.load(s)
    # a rebuild repairs it
    build_index(s, embedder, progress=False, force=True)
    assert Index.load(s).chunks


def test_killed_build_leaves_the_old_index_answering(
    corpus_copy: Path, tmp_path: Path, embedder: Embedder
) -> None:
    idx = tmp_path / "idx"
    s = Settings(corpus=corpus_copy, index_dir=idx)
    build_index(s, embedder, progress=False)
    old = current_generation(idx)
    for p in corpus_copy.glob("*.md"):  # every file changes: the next build embeds everything
        p.write_text(
            p.read_text(encoding="utf-8") + "\n**Interviewee**\n\nOne more remark.\n",
            encoding="utf-8",
        )
    env = {**os.environ, "MLQI_CORPUS": str(corpus_copy), "MLQI_INDEX_DIR": str(idx)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlqi_rag", "index", "--progress"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    seen = ""
    deadline = time.time() + 120
    while time.time() < deadline:
        seen += proc.stderr.read(1)
        if "embedding chunks:" in seen and "/" in seen.split("embedding chunks:")[-1]:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "embedding chunks" in seen
    assert current_generation(idx) == old
    _check_retrieval(Retriever(Index.load(s), embedder))
    # the next build finishes the job and leaves no half-built generation behind
    report = build_index(s, embedder, progress=False)
    assert report.changed and current_generation(idx) != old
    assert len(list(idx.glob("gen-*"))) == 2


# ---- Chroma server -------------------------------------------------------------------------------


@pytest.fixture
def chroma_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(tmp_path / "chroma-server"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma run did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=20)


def test_chroma_server_mode(chroma_server: str, tmp_path: Path, embedder: Embedder) -> None:
    s = Settings(index_dir=tmp_path / "idx", chroma_url=chroma_server)
    report = build_index(s, embedder, progress=False)
    gen_dir = tmp_path / "idx" / report.generation
    assert not (gen_dir / "chroma").exists()  # vectors live on the server
    _check_retrieval(Retriever(Index.load(s), embedder))
    assert not build_index(s, embedder, progress=False).changed


def test_bad_transcripts_are_reported_and_never_corrupt_the_index(
    corpus_copy: Path, tmp_path: Path, embedder: Embedder
) -> None:
    idx = tmp_path / "idx"
    (corpus_copy / "empty.md").write_bytes(b"")
    (corpus_copy / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    env = {"MLQI_CORPUS": str(corpus_copy), "MLQI_INDEX_DIR": str(idx)}
    result = CliRunner().invoke(cli, ["index", "--json"], env=env)
    assert result.exit_code == 2, result.output  # built, but files were rejected
    assert "empty.md: empty file" in result.stderr and "binary.txt: binary file" in result.stderr
    report = json.loads(result.stdout)
    assert report["chunks"] > 300 and len(report["errors"]) == 2
    live = current_generation(idx)

    # a corpus with nothing usable leaves the existing index exactly as it was
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "latin1.txt").write_bytes("Interviewee: caf\xe9".encode("latin-1"))
    result = CliRunner().invoke(cli, ["index"], env={**env, "MLQI_CORPUS": str(bad)})
    assert result.exit_code == 1
    assert (
        result.stderr.startswith("error: nothing to index in")
        and "not valid UTF-8" in result.stderr
    )
    assert current_generation(idx) == live
    _check_retrieval(Retriever(Index.load(Settings(index_dir=idx)), embedder))


def test_loading_the_model_keeps_numpy_to_one_blas_thread() -> None:
    """OpenBLAS threads spinning after the scan's products would take the cores torch needs
    for the next question (``embedding.one_blas_thread``): once the model loads, numpy's BLAS
    runs on one thread. A fresh process, so no other test has loaded the model before."""
    code = (
        "import json; from threadpoolctl import threadpool_info\n"
        "from mlqi_rag.embedding import Embedder; from mlqi_rag.settings import Settings\n"
        "blas = lambda: [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "before = blas(); e = Embedder.from_settings(Settings()); e.embed(['a question'])\n"
        "print(json.dumps([before, blas()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert after and set(after) == {1}
    if (os.cpu_count() or 1) > 1:
        assert max(before) > 1  # numpy's own default, which the model's loading changes
