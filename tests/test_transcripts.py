from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlqi_rag.cli import cli
from mlqi_rag.errors import TranscriptError
from mlqi_rag.transcripts import (
    _DELVE_SPEAKER,
    _PLAIN_SPEAKER,
    _PLAIN_SPEAKER_ALONE,
    is_code_line,
    parse_file,
    parse_paths,
)
from mlqi_rag.types import Interview

SEED_IDS = {"32", "25", "17", "35", "31"}


def _content_spans(path: Path) -> list[tuple[int, int, str]]:
    """Every line's content that must be speech: not blank, heading, code, rule or footer."""
    text = path.read_text(encoding="utf-8")
    spans = []
    pos = 0
    for raw in text.splitlines(keepends=True):
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        lead = 0
        if (
            not stripped
            or stripped.startswith("## Interview")
            or _DELVE_SPEAKER.match(stripped)
            and (stripped.startswith(("#", "**")) or _PLAIN_SPEAKER_ALONE.match(line))
            or stripped.startswith("Created with the Delve")
            or re.fullmatch(r"-{3,}", stripped)
            or is_code_line(stripped)
        ):
            pos += len(raw)
            continue
        if m := _PLAIN_SPEAKER.match(line):
            lead = m.end()
        body = line[lead:]
        if body.strip():
            start = pos + lead + len(body) - len(body.lstrip())
            spans.append((start, start + len(body.strip()), body.strip()))
        pos += len(raw)
    return spans


def _check_invariants(iv: Interview) -> None:
    source = Path(iv.source).read_text(encoding="utf-8")
    paragraphs = [p for t in iv.turns for p in t.paragraphs]
    for p in paragraphs:
        assert source[p.start : p.end] == p.text
        for line in p.text.splitlines():
            assert not is_code_line(line.strip()), f"code token inside text: {line!r}"
    covered = {(p.start, p.end) for p in paragraphs}
    expected = _content_spans(Path(iv.source))
    assert {(s, e) for s, e, _ in expected} == covered
    assert len(paragraphs) == len(covered)  # exactly one paragraph per line
    for a, b in zip(iv.turns, iv.turns[1:], strict=False):
        assert a.speaker.replace(" ", "").lower() != b.speaker.replace(" ", "").lower()
    assert [t.index for t in iv.turns] == list(range(len(iv.turns)))


def test_seeds_parse_into_five_interviews(seed_dir: Path) -> None:
    interviews, errors = parse_paths([seed_dir])
    assert errors == []
    assert {iv.id for iv in interviews} == SEED_IDS
    labels = {iv.id: iv.label for iv in interviews}
    assert labels == {"32": "PO", "25": "Ilan", "17": "Rached", "35": "PO", "31": "Amin"}
    assert all(iv.format == "delve" for iv in interviews)
    coded = {iv.id for iv in interviews if iv.codes}
    assert coded == {"32", "35"}


@pytest.mark.parametrize(
    "name", sorted(p.name for p in Path(__file__).parents[1].glob("mlqi_rag/corpus/*.md"))
)
def test_seed_invariants(seed_dir: Path, name: str) -> None:
    _check_invariants(parse_file(seed_dir / name))


def test_codes_attach_to_the_paragraph_above(seed_dir: Path) -> None:
    iv = parse_file(seed_dir / "interview-32-PO.md")
    [para] = [
        p
        for t in iv.turns
        for p in t.paragraphs
        if "most of the times we just dropped the" in p.text
    ]
    assert set(para.codes) == {"Data-missing-value-fix", "Data-missing-values"}
    turn = next(t for t in iv.turns if para in t.paragraphs)
    assert turn.role == "participant"
    # Delve printed this coded excerpt over two lines; both carry the codes, and only they do.
    paras = list(turn.paragraphs)
    nxt = paras[paras.index(para) + 1]
    assert nxt.text.startswith("Uh, very important feature are missing")
    assert set(nxt.codes) == set(para.codes)
    source = Path(iv.source).read_text(encoding="utf-8")
    assert source[nxt.end :].lstrip("\n").startswith("Data-missing-value-fix")
    assert "Data-missing-values" not in para.text
    # The interviewer's question was coded separately by the researcher.
    question = iv.turns[turn.index - 1]
    assert question.role == "interviewer" and "Data-missing-values" in question.codes
    # An uncoded paragraph of the same interview stays uncoded.
    assert not iv.turns[1].codes


def test_speech_that_looks_short_is_text_not_code(seed_dir: Path) -> None:
    interviews, _ = parse_paths([seed_dir])
    texts = {p.text for iv in interviews for t in iv.turns for p in t.paragraphs}
    assert {"Okay.", "Um,", "Yeah."} <= texts
    assert not is_code_line("Mm-hmm") and is_code_line("last-question-answers")


# Each heading form the seeds use, the file it occurs in, and the role it must give.
HEADINGS = [
    ("### Interviewee", "participant"),
    ("#### Interviewer 1", "interviewer"),
    ("**Interviewee**", "participant"),
    ("### **Interviewee**", "participant"),
    ("**Interviewer 2**", "interviewer"),
    ("#### Interviewee", "participant"),
    ("### Interviewer 1", "interviewer"),
    ("**Interviewer 1**", "interviewer"),
]


@pytest.mark.parametrize(("heading", "role"), HEADINGS)
def test_every_delve_heading_form(seed_dir: Path, heading: str, role: str) -> None:
    hits = 0
    for path in sorted(seed_dir.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        iv = parse_file(path)
        by_start = {p.start: t for t in iv.turns for p in t.paragraphs}
        for m in re.finditer(rf"^{re.escape(heading)}\n\s*(?=\S)", text, re.M):
            turn = by_start[m.end()]
            assert turn.role == role
            assert turn.speaker == heading.strip("#* ")
            hits += 1
    assert hits, f"heading {heading!r} not found in the seeds"


def test_header_label_variants(seed_dir: Path) -> None:
    # "## Interview 17- Rached" has no space before the dash
    assert "## Interview 17- Rached" in (seed_dir / "interview-17-Rached.md").read_text()
    assert parse_file(seed_dir / "interview-17-Rached.md").id == "17"


def test_all_study_transcripts_parse(mlsss_dir: Path) -> None:
    interviews, errors = parse_paths([mlsss_dir])
    assert errors == []
    assert len(interviews) == 36
    for iv in interviews:
        assert iv.format == "plain"
        _check_invariants(iv)
    by_id = {iv.id: iv for iv in interviews}
    assert by_id["32"].label == "PO" and by_id["17"].label == ""
    assert by_id["2"].language == "fr"
    assert sum(iv.language == "fr" for iv in interviews) == 1


PLAIN_VARIANTS = [
    ("Interviewee:", "participant"),
    ("interviewee:", "participant"),
    ("Interviewer 1:", "interviewer"),
    ("Interviewer1:", "interviewer"),
    ("interviewer:", "interviewer"),
    ("Interviewer 2:", "interviewer"),
    ("Interviewee1 :", "participant"),
    ("Interviewer1 :", "interviewer"),
    (" Interviewee:", "participant"),
    ("Unknown Speaker", "interviewer"),
]


@pytest.mark.parametrize(("label", "role"), PLAIN_VARIANTS)
def test_every_plain_label_variant(mlsss_dir: Path, label: str, role: str) -> None:
    for path in sorted(mlsss_dir.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        matches = [
            ln
            for ln in lines
            if ln.startswith(label) and (label.startswith(" ") or not ln.startswith(" "))
        ]
        matches = [ln for ln in matches if ln[len(label) :].strip() or label == "Unknown Speaker"]
        if not matches:
            continue
        iv = parse_file(path)
        by_text = {p.text: t for t in iv.turns for p in t.paragraphs}
        line = matches[0]
        if label == "Unknown Speaker":
            i = lines.index(line)
            line = next(x for x in lines[i + 1 :] if x.strip())
            body = line.strip()
        else:
            body = line[len(label) :].strip()
        turn = by_text[body]
        assert turn.role == role
        assert turn.speaker.replace(" ", "").lower() == label.strip(" :").replace(" ", "").lower()
        return
    pytest.fail(f"label {label!r} not found in the study transcripts")


def test_unlabeled_lines_continue_the_previous_speaker(mlsss_dir: Path) -> None:
    path = mlsss_dir / "Interview 2.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    iv = parse_file(path)
    by_text = {p.text: t for t in iv.turns for p in t.paragraphs}
    unlabeled = [
        i
        for i, ln in enumerate(lines)
        if ln.strip() and not _PLAIN_SPEAKER.match(ln) and not _PLAIN_SPEAKER_ALONE.match(ln)
    ]
    assert unlabeled
    for i in unlabeled:
        prev = next(ln for ln in reversed(lines[:i]) if _PLAIN_SPEAKER.match(ln))
        speaker = _PLAIN_SPEAKER.match(prev)["speaker"]  # type: ignore[index]
        assert by_text[lines[i].strip()].speaker.replace(" ", "") == speaker.replace(" ", "")


def test_file_name_gives_id_and_label(mlsss_dir: Path) -> None:
    iv = parse_file(mlsss_dir / "Interview 32 - PO.txt")
    assert (iv.id, iv.label) == ("32", "PO")
    assert parse_file(mlsss_dir / "Interview 17.txt").id == "17"


# ---- bad input -------------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path: Path, seed_dir: Path, mlsss_dir: Path) -> dict[str, Path]:
    d = tmp_path / "corpus"
    d.mkdir()
    shutil.copy(seed_dir / "interview-32-PO.md", d / "interview-32-PO.md")
    (d / "empty.txt").write_bytes(b"")
    (d / "blank.md").write_text("\n  \n")
    (d / "binary.txt").write_bytes(
        (seed_dir / "interview-25-Ilan.md").read_bytes()[:200] + b"\x00\x01\x02"
    )
    french = (mlsss_dir / "Interview 2.txt").read_text(encoding="utf-8")
    (d / "latin1.txt").write_bytes(french.encode("latin-1", errors="replace"))
    # real prose, but no speaker labels anywhere
    prose = "\n".join(
        p.text for t in parse_file(d / "interview-32-PO.md").turns[:3] for p in t.paragraphs
    )
    (d / "prose.txt").write_text(prose, encoding="utf-8")
    return {p.name: p for p in d.iterdir()}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.txt", "empty file"),
        ("blank.md", "empty file"),
        ("binary.txt", "binary file"),
        ("latin1.txt", "not valid UTF-8 (byte 0x"),
        ("prose.txt", "no speaker turns found"),
    ],
)
def test_bad_input_names_file_and_reason(
    bad_files: dict[str, Path], name: str, reason: str
) -> None:
    with pytest.raises(TranscriptError) as exc:
        parse_file(bad_files[name])
    message = str(exc.value)
    assert message.startswith(str(bad_files[name]))
    assert reason in message
    assert "\n" not in message


def test_directory_with_bad_files_still_parses_the_good(bad_files: dict[str, Path]) -> None:
    folder = next(iter(bad_files.values())).parent
    interviews, errors = parse_paths([folder])
    assert [iv.id for iv in interviews] == ["32"]
    assert len(errors) == 5

    result = CliRunner().invoke(cli, ["parse", str(folder)])
    assert result.exit_code == 0
    assert "Interview 32 (PO)" in result.stdout
    assert result.stderr.count("error: ") == 5
    assert "latin1.txt: not valid UTF-8" in result.stderr


def test_cli_fails_only_when_nothing_parsed(bad_files: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        cli, ["parse", str(bad_files["empty.txt"]), str(bad_files["binary.txt"])]
    )
    assert result.exit_code == 1
    assert "empty.txt: empty file" in result.stderr
    result = CliRunner().invoke(cli, ["parse", "/nonexistent/file.txt"])
    assert result.exit_code == 1
    assert "/nonexistent/file.txt: no such file or directory" in result.stderr


def test_copies_of_one_interview_merge(tmp_path: Path, seed_dir: Path) -> None:
    """Files with one interview id are copies of one interview (issue 11), not duplicates:
    one interview, the first copy's text, the other listed as a copy, each coder once."""
    shutil.copy(seed_dir / "interview-32-PO.md", tmp_path / "a.md")
    shutil.copy(seed_dir / "interview-32-PO.md", tmp_path / "b.md")
    interviews, errors = parse_paths([tmp_path])
    assert not errors
    [iv] = interviews
    assert iv.source == str(tmp_path / "a.md") and iv.copies == (str(tmp_path / "b.md"),)
    assert iv.coders == ("PO",)
    coded = [p.coded for t in iv.turns for p in t.paragraphs if p.coded]
    assert coded and all(len(c) == 1 and c[0][0] == "PO" for c in coded)


def test_parse_json_fields(seed_dir: Path) -> None:
    import json

    result = CliRunner().invoke(cli, ["parse", "--json", str(seed_dir / "interview-35-PO.md")])
    assert result.exit_code == 0, result.output
    [iv] = json.loads(result.stdout)
    assert {"id", "label", "source", "language", "turns", "codes"} <= iv.keys()
    turn = iv["turns"][1]
    assert {"index", "speaker", "role", "paragraphs", "codes"} <= turn.keys()
    assert {"text", "codes", "start", "end"} <= turn["paragraphs"][0].keys()
