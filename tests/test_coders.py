"""Merging coded copies of one interview: constructed copies, then the real prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlqi_rag.coders import MODERATION, align, group_by_interview, merge_copies
from mlqi_rag.pdf import parse_pdf
from mlqi_rag.transcripts import parse_file, parse_text, read_source
from mlqi_rag.types import Interview

REPO = Path(__file__).resolve().parents[1]
PLAIN = ("Interview 2", "Interview 7", "Interview 12", "Interview 32 - PO", "Interview 35")


@pytest.fixture(scope="session")
def pdf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: each print is parsed once, whichever test file asks first."""
    return tmp_path_factory.getbasetemp() / "pdf-cache"


CANON = """Interviewer 1: What went wrong with your data?

Interviewee: The labels were noisy because three vendors annotated the images with different guidelines. We also had missing values in the sensor columns.

Interviewee: Then the model drifted after deployment, so we retrained it every month.

Interviewer 1: Thanks, that is all.
"""  # noqa: E501

# PO's copy: one canonical paragraph printed as two lines (one excerpt, codes on both).
PO = """## Interview 9 - PO

### Interviewer 1

What went wrong with your data?

### Interviewee

The labels were noisy because three vendors annotated the images

with different guidelines. We also had missing values in the sensor columns.

Data-noisy-labels

Data-missing-values

### Interviewee

Then the model drifted after deployment, so we retrained it every month.

MM-drift
"""

# Rached's copy: two canonical paragraphs merged into one, lightly edited, plus a line that
# is in no other copy.
RACHED = """## Interview 9 - Rached

### Interviewee

The labels was noisy because three vendors annotated the images with different guidelines. We also had missing values in the sensor columns. Then the model drifted after deployment, so we retrained it every month.

Data-low-quality

### Interviewer 1

Completely invented words that nobody ever said here.

Interviewer-noise
"""  # noqa: E501

AMIN = """## Interview 9 - Amin

### Interviewee

Then the model drifted after deployment, so we retrained it every month.

MM-drift
"""


def _copy(text: str, path: str) -> tuple[Interview, str]:
    return parse_text(text, Path(path)), text


def _codes(iv: Interview) -> list[tuple[str, ...]]:
    return [p.codes for t in iv.turns for p in t.paragraphs]


def _coded(iv: Interview) -> list[dict[str, tuple[str, ...]]]:
    return [dict(p.coded) for t in iv.turns for p in t.paragraphs]


def test_codes_follow_the_words_onto_the_plain_transcript() -> None:
    canon = _copy(CANON, "t/Interview 9.txt")
    po = _copy(PO, "t/Interview 9 - PO.md")
    rached = _copy(RACHED, "t/Interview 9 - Rached.md")
    merged, report = merge_copies([po, canon, rached])  # the plain one wins whatever its place
    assert merged.source == "t/Interview 9.txt" and merged.format == "plain"
    spans = [[(p.text, p.start, p.end) for p in t.paragraphs] for t in merged.turns]
    assert spans == [[(p.text, p.start, p.end) for p in t.paragraphs] for t in canon[0].turns]
    assert _coded(merged) == [
        {},
        {"PO": ("Data-noisy-labels", "Data-missing-values"), "Rached": ("Data-low-quality",)},
        {"PO": ("MM-drift",), "Rached": ("Data-low-quality",)},
        {},
    ]
    # no moderation: a reader sees every coder's codes
    assert _codes(merged)[1] == ("Data-noisy-labels", "Data-missing-values", "Data-low-quality")
    assert merged.coders == ("PO", "Rached")
    assert merged.copies == ("t/Interview 9 - PO.md", "t/Interview 9 - Rached.md")
    po_r, rached_r = report.copies
    assert (po_r.coder, po_r.coded_paragraphs, po_r.aligned, po_r.rate) == ("PO", 3, 3, 1.0)
    assert (rached_r.coded_paragraphs, rached_r.aligned) == (2, 1)
    assert rached_r.unaligned == ("Completely invented words that nobody ever said here.",)
    assert report.rate == 4 / 5


def test_moderation_codes_are_what_a_reader_sees() -> None:
    copies = [
        _copy(CANON, "t/Interview 9.txt"),
        _copy(PO, "t/Interview 9 - PO.md"),
        _copy(AMIN, "t/moderation/Interview 9 - Amin.md"),
    ]
    merged, report = merge_copies(copies)
    assert merged.coders == ("PO", MODERATION)
    assert _codes(merged) == [(), (), ("MM-drift",), ()]  # PO's other codes were not kept
    assert _coded(merged)[1] == {"PO": ("Data-noisy-labels", "Data-missing-values")}
    assert report.copies[1].coder == MODERATION and report.copies[1].label == "Amin"
    # a moderation print without codes (interview 32's) does not hide the coders' codes
    uncoded = AMIN.replace("\nMM-drift\n", "\n")
    merged, _ = merge_copies([*copies[:2], _copy(uncoded, "t/moderation/Interview 9 - Amin.md")])
    assert _codes(merged)[1] == ("Data-noisy-labels", "Data-missing-values")
    assert merged.coders == ("PO",)
    # the caller can flag moderation itself
    merged, _ = merge_copies(copies[:2], is_moderation=lambda iv: iv.label == "PO")
    assert merged.coders == (MODERATION,)


def test_a_single_coded_copy_passes_through_with_its_coder() -> None:
    merged, report = merge_copies([_copy(PO, "t/Interview 9 - PO.md")])
    assert merged.coders == ("PO",) and merged.copies == () and report.copies == ()
    assert _coded(merged)[1] == {"PO": ("Data-noisy-labels", "Data-missing-values")}
    plain, _ = merge_copies([_copy(CANON, "t/Interview 9.txt")])
    assert plain.coders == () and all(not c for c in _codes(plain))


def test_copies_of_different_interviews_are_refused() -> None:
    with pytest.raises(ValueError, match="different interviews"):
        merge_copies([_copy(CANON, "t/Interview 9.txt"), _copy(CANON, "t/Interview 8.txt")])
    with pytest.raises(ValueError):
        merge_copies([])


def test_group_by_interview_returns_the_canonical_text() -> None:
    parsed = [
        _copy(PO, "t/Interview 9 - PO.md"),
        _copy(CANON.replace("data", "model"), "t/Interview 8.txt"),
        _copy(CANON, "t/Interview 9.txt"),
    ]
    out = group_by_interview(parsed)
    assert [(iv.id, text == CANON) for iv, text, _ in out] == [("9", True), ("8", False)]
    iv, text, report = out[0]
    for t in iv.turns:
        for p in t.paragraphs:
            assert text[p.start : p.end] == p.text
    assert report.to_dict()["copies"][0]["rate"] == 1.0


def _real(delve_pdf_dir: Path, mlsss_dir: Path, cache: Path) -> list[tuple[Interview, str]]:
    pairs = []
    for name in PLAIN:
        f = mlsss_dir / f"{name}.txt"
        pairs.append((parse_file(f), read_source(f)))
    return pairs + [parse_pdf(f, cache) for f in sorted(delve_pdf_dir.glob("*/*.pdf"))]


@pytest.mark.slow
def test_every_print_aligns_onto_its_plain_transcript(
    delve_pdf_dir: Path, mlsss_dir: Path, pdf_cache: Path
) -> None:
    merged = group_by_interview(_real(delve_pdf_dir, mlsss_dir, pdf_cache))
    assert [iv.id for iv, _, _ in merged] == ["2", "7", "12", "32", "35"]
    rates = {Path(c.source).name: c.rate for _, _, r in merged for c in r.copies}
    assert len(rates) == 12
    assert all(rate >= 0.98 for rate in rates.values()), rates
    by_id = {iv.id: iv for iv, _, _ in merged}
    assert by_id["12"].coders == ("PO", "Rached", MODERATION)
    assert by_id["32"].coders == ("Ilan", "PO")  # the moderation print carries no code
    for iv, text, report in merged:
        assert iv.format == "plain" and len(iv.copies) == len(report.copies)
        for t in iv.turns:
            for p in t.paragraphs:
                assert text[p.start : p.end] == p.text
                names = [name for name, _ in p.coded]
                assert len(names) == len(set(names))
                if MODERATION in iv.coders:
                    assert p.codes == p.codes_by(MODERATION)
                else:
                    assert set(p.codes) == {c for _, cs in p.coded for c in cs}
    # interview 12: every code moderation kept appears where moderation put it
    assert sum(bool(p.codes) for t in by_id["12"].turns for p in t.paragraphs) == 22


@pytest.mark.slow
@pytest.mark.parametrize("number", ["32", "35"])
def test_po_prints_carry_the_same_codes_as_the_seed_exports(
    delve_pdf_dir: Path, seed_dir: Path, pdf_cache: Path, number: str
) -> None:
    """Two exports of PO's coding (Delve markdown, Delve print): same codes, paragraph by
    paragraph, once aligned."""
    md = parse_file(seed_dir / f"interview-{number}-PO.md")
    printed, _ = parse_pdf(
        delve_pdf_dir / "codings" / f"2023-06-04-Interview {number} - PO.pdf", pdf_cache
    )
    a = [p for t in printed.turns for p in t.paragraphs]
    b = [p for t in md.turns for p in t.paragraphs]
    mapping = align(a, b)
    coded = [i for i, p in enumerate(a) if p.codes]
    assert len(coded) >= 15 and all(i in mapping for i in coded)
    compared = 0
    for i, targets in mapping.items():
        for q in targets:
            assert set(a[i].codes) == set(b[q].codes), (a[i].text[:60], b[q].text[:60])
            compared += bool(a[i].codes)
    assert compared >= len(coded)
    assert set(printed.codes) == set(md.codes)
