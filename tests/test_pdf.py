"""Delve print PDFs: the real prints from the replication package, parsed for real."""

from __future__ import annotations

import hashlib
import json
import re
from itertools import chain
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from mlqi_rag import pdf, pdf_page
from mlqi_rag.errors import TranscriptError
from mlqi_rag.pdf import PARSER_VERSION, extract_pdf_text, parse_pdf, read_pdf
from mlqi_rag.transcripts import parse_file

REPO = Path(__file__).resolve().parents[1]


def _print(d: Path, interview: str, coder: str, folder: str = "codings") -> Path:
    return d / folder / f"2023-06-04-Interview {interview} - {coder}.pdf"


@pytest.fixture(scope="module")
def po12(delve_pdf_dir: Path) -> pdf.PdfTranscript:
    return read_pdf(_print(delve_pdf_dir, "12", "PO"))


def _paragraphs(iv):  # type: ignore[no-untyped-def]
    return [(t.speaker, p) for t in iv.turns for p in t.paragraphs]


def test_print_becomes_a_plain_transcript_with_exact_offsets(
    po12: pdf.PdfTranscript, delve_pdf_dir: Path
) -> None:
    iv, text = po12.interview, po12.text
    data = _print(delve_pdf_dir, "12", "PO").read_bytes()
    assert (iv.id, iv.label, iv.format, iv.language) == ("12", "PO", "delve-pdf", "en")
    assert iv.sha256 == hashlib.sha256(data).hexdigest()
    assert iv.coders == ("PO",)
    for _, p in _paragraphs(iv):
        assert text[p.start : p.end] == p.text
        assert "\n" not in p.text  # a wrapped paragraph is one line
    # no print header, footer, title or credit line survives; no code name is speech
    for bad in ("delvetool.com", "6/4/23", "2023-06-04-Interview", "Interview 12 - PO", "/20"):
        assert bad not in text
    lines = set(text.splitlines())
    assert not lines & set(iv.codes)
    assert extract_pdf_text(_print(delve_pdf_dir, "12", "PO")) == text


def test_paragraphs_equal_the_plain_transcript(po12: pdf.PdfTranscript, mlsss_dir: Path) -> None:
    """Wraps joined, page breaks bridged, labels read: the same paragraphs as the plain text
    (``all?`` opens page 10 but ends a paragraph whose label closes page 9)."""
    plain = parse_file(mlsss_dir / "Interview 12.txt")
    got = [(s, p.text) for s, p in _paragraphs(po12.interview)]
    assert got == [(s, p.text) for s, p in _paragraphs(plain)]
    assert [t.role for t in po12.interview.turns] == [t.role for t in plain.turns]


@pytest.mark.slow
@pytest.mark.parametrize(("number", "plain_name"), [("32", "Interview 32 - PO"), ("35", "")])
def test_longer_prints_equal_their_plain_transcripts(
    delve_pdf_dir: Path, mlsss_dir: Path, number: str, plain_name: str
) -> None:
    iv, _ = parse_pdf(_print(delve_pdf_dir, number, "PO"))
    plain = parse_file(mlsss_dir / f"{plain_name or 'Interview ' + number}.txt")
    assert [(s, p.text) for s, p in _paragraphs(iv)] == [(s, p.text) for s, p in _paragraphs(plain)]


def test_code_pills_are_split_by_shape_not_by_words(po12: pdf.PdfTranscript) -> None:
    """Names with spaces stay whole; several pills on one row stay apart."""
    assert set(po12.interview.codes) == {
        "Bad-software-practices",
        "Data-collection-manual",
        "Data-issues",
        "Data-low-quality",
        "Data-low-quantity",
        "Data-missing-values",
        "ME-metrics-a-are-poor-proxy-of-quality",
        "ML-pipeline-issues [MLP]",
        "MLP-unstable-external-dependency",
        "Misc",
        "Model-Evaluation-issues [ME]",
        "QM-data-privacy-issues",
        "Stakeholders-lack-of-knowledge",
        "stack-not-standardized",
    }
    para = next(p for _, p in _paragraphs(po12.interview) if p.text.startswith("It's really more"))
    assert para.text.endswith("comes from the crm and it's not updated.")
    assert para.codes == ("ME-metrics-a-are-poor-proxy-of-quality", "Model-Evaluation-issues [ME]")
    assert para.coded == (("PO", para.codes),)


def test_code_row_without_pills_splits_at_wide_gaps(delve_pdf_dir: Path) -> None:
    """Another renderer might drop the pill shapes: the gaps between names still split them."""
    doc = pdfium.PdfDocument(_print(delve_pdf_dir, "12", "PO").read_bytes())
    page = pdf_page.read_page(doc[9], 9)
    row = [line for line in page.lines if "Model-Evaluation" in line.text][:1]
    names = ["ME-metrics-a-are-poor-proxy-of-quality", "Model-Evaluation-issues [ME]"]
    assert pdf_page.codes_in(row, page.pills) == names
    assert pdf_page.codes_in(row, []) == names


def test_underline_keeps_the_exact_coded_span(po12: pdf.PdfTranscript) -> None:
    """Only the end of this paragraph is underlined in the print, so only it is the span."""
    text = po12.text
    para = next(p for _, p in _paragraphs(po12.interview) if p.text.startswith("That's understood"))
    inside = [(s, e) for s, e in po12.spans if para.start <= s < para.end]
    assert len(inside) == 1
    s, e = inside[0]
    assert text[s:e].startswith("So a lot can happen there, I guess")
    assert text[s:e].endswith("and this is still ongoing.") and e == para.end
    assert text[para.start : s].endswith("but it's not done yet. ")
    assert set(para.codes) == {"ML-pipeline-issues [MLP]", "MLP-unstable-external-dependency"}


def test_every_speaker_label_variant(delve_pdf_dir: Path) -> None:
    iv, text = parse_pdf(_print(delve_pdf_dir, "2", "PO"))
    speakers = {t.speaker for t in iv.turns}
    assert {"Interviewer1", "Interviewee1", "Interviewer2", "Interviewer2 2"} <= speakers
    assert iv.language == "fr" and "Q4.4" in iv.codes  # question codes are pills too
    # printed unlabeled, but written "Interviewee1 : ..." inside the paragraph
    turn = next(t for t in iv.turns if t.paragraphs[0].text == "c'est exactement ça.")
    assert turn.speaker == "Interviewee1" and turn.role == "participant"
    assert "\nInterviewee1: c'est exactement ça.\n" in text
    assert pdf._LABEL.match("interviewr") and pdf._LABEL.match("Interviewer 2 2")
    assert not pdf._LABEL.match("Interview 12 - PO")


def test_moderation_print_without_codes(delve_pdf_dir: Path) -> None:
    iv, _ = parse_pdf(_print(delve_pdf_dir, "32", "Amin", "moderation"))
    assert (iv.id, iv.label, iv.codes, iv.coders) == ("32", "Amin", (), ())


def test_cache_is_keyed_by_content_and_version(delve_pdf_dir: Path, tmp_path: Path) -> None:
    path = _print(delve_pdf_dir, "12", "Amin", "moderation")
    cache = tmp_path / "pdf-cache"
    first = read_pdf(path, cache)
    entry = cache / f"{first.interview.sha256}-{PARSER_VERSION}.json"
    assert [f.name for f in cache.iterdir()] == [entry.name]
    # a hit is read, not re-parsed: an edit to the entry shows through
    doc = json.loads(entry.read_text(encoding="utf-8"))
    doc["label"] = "from-cache"
    entry.write_text(json.dumps(doc), encoding="utf-8")
    again = read_pdf(path, cache)
    assert again.interview.label == "from-cache" and again.text == first.text
    # a damaged entry is re-made, silently
    entry.write_text("{not json", encoding="utf-8")
    assert read_pdf(path, cache) == first
    assert json.loads(entry.read_text(encoding="utf-8"))["label"] == "Amin"


def _minimal_pdf(content: bytes) -> bytes:
    """A valid one-page PDF (Helvetica) with the given content stream."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_minimal_pdf(b""), "no text layer"),
        (
            _minimal_pdf(b"BT /F1 12 Tf 72 700 Td (Interviewee: we had missing values) Tj ET"),
            "not a Delve print",
        ),
        (b"Interviewee: a text file named .pdf\n", "not a PDF"),
        (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R", "not a readable PDF"),
    ],
    ids=["scan", "other-pdf", "not-pdf", "truncated"],
)
def test_unusable_files_raise_one_line_errors(tmp_path: Path, content: bytes, reason: str) -> None:
    f = tmp_path / "Interview 99 - X.pdf"
    f.write_bytes(content)
    with pytest.raises(TranscriptError) as err:
        parse_pdf(f, tmp_path / "cache")
    assert reason in err.value.reason and err.value.path == str(f)
    assert "\n" not in str(err.value)


def test_truncated_real_print_is_refused(delve_pdf_dir: Path, tmp_path: Path) -> None:
    data = _print(delve_pdf_dir, "12", "PO").read_bytes()
    f = tmp_path / "cut.pdf"
    f.write_bytes(data[: len(data) // 3])
    with pytest.raises(TranscriptError, match=r"cut\.pdf: "):
        parse_pdf(f)


@pytest.mark.slow
def test_all_prints_parse_consistently(delve_pdf_dir: Path, mlsss_dir: Path) -> None:
    """Every shared print: offsets exact, ids and coders from the print, and the same words as
    the plain transcript (HTML printing only collapses runs of spaces)."""
    files = sorted(delve_pdf_dir.glob("*/*.pdf"))
    assert len(files) == 12
    plain_names = {"32": "Interview 32 - PO.txt"}
    for f in files:
        iv, text = parse_pdf(f)
        number, coder = re.search(r"Interview (\d+) - (\w+)", f.name).groups()  # type: ignore[union-attr]
        assert (iv.id, iv.label) == (number, coder)
        assert iv.coders == ((coder,) if f.name != "2023-06-04-Interview 32 - Amin.pdf" else ())
        for _, p in _paragraphs(iv):
            assert text[p.start : p.end] == p.text
        plain = parse_file(mlsss_dir / plain_names.get(number, f"Interview {number}.txt"))
        words = [re.findall(r"\w+", p.text.lower()) for _, p in _paragraphs(iv)]
        plain_words = [re.findall(r"\w+", p.text.lower()) for _, p in _paragraphs(plain)]
        if f.name == "2023-06-04-Interview 2 - Rached.pdf":
            continue  # this copy was edited in Delve (a company name anonymised): checked above
        assert list(chain(*words)) == list(chain(*plain_words))
