"""Fault injection against the real CLI: each probe a hostile or careless user could try.

Every test here builds a real index (real parser, real model, real Chroma) over a copy of the
seed transcripts and then breaks something: line endings, an edit after indexing, a moved file,
a read-only disk, a bad name. The promise under test is always the same: a quote marked verified
is the file's exact text, and anything else is one clear line, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cliutil import can_mount_read_only, on_read_only_mount

from mlqi_rag.build import build_index
from mlqi_rag.chunking import ChunkParams, chunk_interviews
from mlqi_rag.cli import cli
from mlqi_rag.pipeline import Pipeline
from mlqi_rag.settings import Settings
from mlqi_rag.transcripts import parse_corpus, read_source

pytestmark = pytest.mark.slow

MISSING = "How do practitioners handle missing values?"
QUESTIONS = (
    MISSING,
    "Why are the price labels of the house valuation model noisy?",
    "What problems come from web scraping?",
    "How do practitioners explain model results to clients?",
    "Do practitioners use federated learning?",
)


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=True)


def assert_one_line_error(result: Result, *needles: str) -> str:
    """Failed cleanly: non-zero exit, no traceback, and a single error line naming the cause."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith(("error:", "Error:"))]
    assert errors, result.output
    for needle in needles:
        assert any(needle in ln for ln in errors), (needle, errors)
    return errors[-1]


def copy_seeds(seed_dir: Path, dest: Path, newline: str = "\n", only: tuple[str, ...] = ()) -> Path:
    dest.mkdir(parents=True)
    for f in sorted(seed_dir.glob("*.md")):
        if only and not any(f"-{i}-" in f.name for i in only):
            continue
        text = read_source(f)
        assert "\r" not in text
        (dest / f.name).write_bytes(text.replace("\n", newline).encode("utf-8"))
    return dest


def index_of(corpus: Path, index_dir: Path, embedder) -> Settings:  # type: ignore[no-untyped-def]
    s = Settings(corpus=corpus, index_dir=index_dir)
    build_index(s, embedder, progress=False)
    return s


def verified_exactly(pipe: Pipeline, answer) -> None:  # type: ignore[no-untyped-def]
    for c in answer.citations:
        raw = Path(c.source).read_bytes().decode("utf-8")
        assert raw[c.start : c.end] == c.quote
        assert len(c.quote.split()) <= 45


# ---- line endings ----------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_crlf_and_cr_seeds_parse_to_the_same_turns_codes_and_chunks(
    seed_dir: Path, tmp_path: Path, newline: str
) -> None:
    lf, lf_src, lf_err = parse_corpus([seed_dir])
    other, other_src, other_err = parse_corpus([copy_seeds(seed_dir, tmp_path / "c", newline)])
    assert not lf_err and not other_err
    for a, b in zip(lf, other, strict=True):
        assert [(t.speaker, t.role, t.text, t.codes) for t in a.turns] == [
            (t.speaker, t.role, t.text, t.codes) for t in b.turns
        ]
        for t in b.turns:
            for p in t.paragraphs:
                assert other_src[b.id][p.start : p.end] == p.text
    params = ChunkParams()
    ca = chunk_interviews(lf, lf_src, params)
    cb = chunk_interviews(other, other_src, params)
    assert [(c.id, c.text, c.question, c.codes) for c in ca] == [
        (c.id, c.text, c.question, c.codes) for c in cb
    ]


def test_crlf_copy_of_the_seeds_gives_byte_identical_answers(
    seed_pipeline: Pipeline, seed_dir: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    crlf = index_of(copy_seeds(seed_dir, tmp_path / "crlf", "\r\n"), tmp_path / "idx", embedder)
    pipe = Pipeline.load(crlf, embedder)
    for q in QUESTIONS:
        a = seed_pipeline.engine("extractive").answer(q)
        b = pipe.engine("extractive").answer(q)
        assert a.text == b.text, q
        # Each quote is its own file's exact text: the CRLF file's quote keeps its CRLF.
        assert [c.quote for c in a.citations] == [
            c.quote.replace("\r\n", "\n") for c in b.citations
        ]
        assert [(c.interview_id, c.turn_index) for c in a.citations] == [
            (c.interview_id, c.turn_index) for c in b.citations
        ]
        assert b.citations or b.abstained
        verified_exactly(pipe, b)


# ---- edited, moved, missing ------------------------------------------------------------------


def test_transcript_edited_after_indexing_is_never_quoted_as_verified(
    seed_dir: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    corpus = copy_seeds(seed_dir, tmp_path / "c", only=("32", "35"))
    s = index_of(corpus, tmp_path / "idx", embedder)
    pipe = Pipeline.load(s, embedder)  # a long-running app: loaded before the edit
    before = pipe.engine("extractive").answer(MISSING)
    assert {"32", "35"} <= set(before.interviews_cited)
    f32 = next(corpus.glob("*-32-*"))
    f32.write_text("Inserted line shifts every offset.\n" + read_source(f32), encoding="utf-8")

    after = pipe.engine("extractive").answer(MISSING)
    assert "32" not in after.interviews_cited
    assert any("interview 32" in w and "mlqi-rag index" in w for w in after.warnings)
    assert "Warning: interview 32" in after.text
    verified_exactly(pipe, after)

    env = {"MLQI_INDEX_DIR": str(s.index_dir)}
    result = run(["ask", MISSING, "--json"], env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert all(c["interview_id"] != "32" for c in data["citations"])
    assert "was edited since it was indexed" in result.stderr
    # Re-indexing makes it quotable again, at the new offsets.
    assert run(["index", "--corpus", str(corpus)], env).exit_code == 0
    fresh = Pipeline.load(s, embedder).engine("extractive").answer(MISSING)
    assert "32" in fresh.interviews_cited and not fresh.warnings
    verified_exactly(pipe, fresh)


def test_a_count_range_is_not_shown_once_an_edited_transcript_is_left_out(
    seed_dir: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    corpus = copy_seeds(seed_dir, tmp_path / "c", only=("32", "35", "25"))
    pipe = Pipeline.load(index_of(corpus, tmp_path / "idx", embedder), embedder)
    which = "Which interviewees describe how they handle missing values?"
    before = pipe.engine("extractive").answer(which)
    assert before.coverage["of"] == 3 and "range" in before.coverage
    f32 = next(corpus.glob("*-32-*"))
    f32.write_text("Inserted line shifts every offset.\n" + read_source(f32), encoding="utf-8")
    after = pipe.engine("extractive").answer(which)
    assert "32" not in after.coverage["interviews"] and "range" not in after.coverage
    assert "% range" not in after.text.splitlines()[0] or after.abstained
    verified_exactly(pipe, after)


def test_relative_corpus_and_moved_transcript(seed_dir: Path, tmp_path: Path) -> None:
    copy_seeds(seed_dir, tmp_path / "work" / "corpus", only=("32", "35"))
    index_dir = tmp_path / "idx"
    env = {**os.environ, "MLQI_INDEX_DIR": str(index_dir)}

    def mlqi(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """The real console script, run from ``cwd``."""
        exe = Path(sys.executable).with_name("mlqi-rag")
        return subprocess.run(
            [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )

    # From the corpus's parent, with a relative --corpus.
    built = mlqi(tmp_path / "work", "index", "--corpus", "corpus", "--no-progress")
    assert built.returncode == 0, built.stderr
    manifest = json.loads(next(index_dir.glob("gen-*/manifest.json")).read_text())
    assert Path(manifest["corpus"]).is_absolute()
    assert all(Path(f).is_absolute() for f in manifest["files"])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    asked = mlqi(elsewhere, "ask", MISSING)
    assert asked.returncode == 0, asked.stderr
    assert "Interview 35" in asked.stdout

    shutil.move(tmp_path / "work" / "corpus", tmp_path / "moved")
    moved = mlqi(elsewhere, "ask", MISSING)
    assert "Traceback" not in moved.stderr
    assert "was moved or deleted since it was indexed" in moved.stderr
    assert "Interview 35 (PO), turn" not in moved.stdout  # nothing quoted from a missing file


# ---- caps ------------------------------------------------------------------------------------


def test_unpunctuated_200kb_turn_is_capped_in_chunks_and_quotes(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    words = " ".join(f"missing values dropped record{i % 97}" for i in range(40_000))
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "Interview 901.txt").write_text(
        f"Interviewer: How do you handle missing values?\nInterviewee: {words}\n",
        encoding="utf-8",
    )
    assert len(words) > 200_000
    s = index_of(corpus, tmp_path / "idx", embedder)
    pipe = Pipeline.load(s, embedder)
    assert max(c.token_count for c in pipe.index.chunks) <= s.chunk_max_tokens
    assert len(pipe.index.chunks) > 100
    answer = pipe.engine("extractive").answer(MISSING)
    assert answer.citations
    assert max(len(c.quote.split()) for c in answer.citations) <= 45
    verified_exactly(pipe, answer)


# ---- index location --------------------------------------------------------------------------


def test_read_only_index_still_answers_and_index_says_why(
    seed_dir: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    corpus = copy_seeds(seed_dir, tmp_path / "c", only=("32", "35"))
    s = index_of(corpus, tmp_path / "idx", embedder)
    if not can_mount_read_only(tmp_path / "idx"):
        pytest.skip("needs root and unshare to mount a read-only directory")
    exe = Path(sys.executable).with_name("mlqi-rag")
    idx = s.index_dir
    script = (
        f"{exe} ask '{MISSING}'; echo ask-rc=$?; "
        f"{exe} index --corpus {corpus} --force; echo index-rc=$?"
    )
    out = on_read_only_mount(idx, script, env={**os.environ, "MLQI_INDEX_DIR": str(idx)})
    assert "ask-rc=0" in out.stdout, out.stderr
    assert "Interview 35" in out.stdout
    assert "corrupt" not in out.stderr
    assert "index-rc=1" in out.stdout
    assert "Traceback" not in out.stderr
    assert "cannot write the index at" in out.stderr


def test_index_dir_that_is_a_file(seed_index: Settings, tmp_path: Path) -> None:
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    assert_one_line_error(run(["ask", MISSING, "--index-dir", str(f)]), "is a file")
    assert_one_line_error(
        run(["index", "--index-dir", str(f), "--corpus", str(seed_index.corpus)]), "is a file"
    )


# ---- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", ["0", "-1"])
def test_top_k_below_one_is_refused(seed_index: Settings, k: str) -> None:
    env = {"MLQI_INDEX_DIR": str(seed_index.index_dir)}
    for cmd in ("retrieve", "ask"):
        result = run([cmd, MISSING, "-k", k], env)
        assert result.exit_code == 2, result.output
        assert "-k" in result.stderr and "range" in result.stderr


def test_unknown_interview_and_code_are_named(seed_index: Settings) -> None:
    env = {"MLQI_INDEX_DIR": str(seed_index.index_dir)}
    line = assert_one_line_error(run(["ask", MISSING, "--interview", "999"], env), "999")
    assert "17, 25, 31, 32, 35" in line
    line = assert_one_line_error(run(["ask", MISSING, "--code", "No-such-code"], env))
    assert "unknown code 'No-such-code'" in line
    line = assert_one_line_error(run(["ask", "In interview 999, how are labels checked?"], env))
    assert "interview 999" in line
    assert_one_line_error(run(["retrieve", MISSING, "--interview", "999"], env), "999")


def test_code_filter_on_an_uncoded_corpus(seed_dir: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    corpus = copy_seeds(seed_dir, tmp_path / "c", only=("17", "25"))
    s = index_of(corpus, tmp_path / "idx", embedder)
    env = {"MLQI_INDEX_DIR": str(s.index_dir)}
    assert_one_line_error(
        run(["ask", MISSING, "--code", "Data-missing-values"], env), "carries codes"
    )


# ---- odd files in the corpus -----------------------------------------------------------------


def test_symlink_loop_directory_and_newline_name_are_reported(
    seed_dir: Path, tmp_path: Path
) -> None:
    corpus = copy_seeds(seed_dir, tmp_path / "c", only=("32",))
    (corpus / "loop.txt").symlink_to(corpus / "loop.txt")
    (corpus / "Interview 77.md").mkdir()
    (corpus / "Interview\n78.txt").write_bytes(b"\xff\xfe not utf-8")
    result = run(["parse", str(corpus)])
    assert result.exit_code == 0  # the good file still parses
    errors = result.stderr.splitlines()
    assert len(errors) == 3, errors
    assert any("loop.txt: broken or looping symbolic link" in e for e in errors)
    assert any("Interview 77.md: is a directory" in e for e in errors)
    assert any("Interview\\n78.txt: not valid UTF-8" in e for e in errors)


def test_index_exit_status_says_files_were_rejected(seed_dir: Path, tmp_path: Path) -> None:
    corpus = copy_seeds(seed_dir, tmp_path / "c", only=("32",))
    (corpus / "Interview 80.txt").write_bytes(b"")
    env = {"MLQI_INDEX_DIR": str(tmp_path / "idx")}
    result = run(["index", "--corpus", str(corpus)], env)
    assert result.exit_code == 2, result.output
    assert "Interview 80.txt: empty file" in result.stderr
    assert "1 file(s) rejected" in result.stderr
    assert "Indexed" in result.stdout
    # The good transcript is indexed and answers.
    assert run(["ask", MISSING, "--json"], env).exit_code == 0


# ---- export from the terminal ----------------------------------------------------------------


@pytest.mark.parametrize("ext", ["md", "csv", "tex"])
def test_ask_export_writes_verified_quotes(seed_index: Settings, tmp_path: Path, ext: str) -> None:
    env = {"MLQI_INDEX_DIR": str(seed_index.index_dir)}
    out = tmp_path / f"quotes.{ext}"
    result = run(["ask", MISSING, "--export", str(out)], env)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "we just dropped the" in text
    assert "32" in text


def test_ask_export_unknown_extension(seed_index: Settings, tmp_path: Path) -> None:
    env = {"MLQI_INDEX_DIR": str(seed_index.index_dir)}
    assert_one_line_error(
        run(["ask", MISSING, "--export", str(tmp_path / "quotes.docx")], env), "quotes.docx"
    )
