"""A whole study in one corpus directory: seeds (Delve markdown), coders' Delve PDFs, the moderated
copies and the 36 plain transcripts become one interview per id, with codes kept per coder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlqi_rag.transcripts import parse_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(
    tmp_path_factory: pytest.TempPathFactory, seed_dir: Path, mlsss_dir: Path, delve_pdf_dir: Path
) -> Path:
    pdfs = delve_pdf_dir
    root = tmp_path_factory.mktemp("study")
    shutil.copytree(seed_dir, root / "seeds")
    shutil.copytree(mlsss_dir, root / "transcripts")
    shutil.copytree(pdfs / "codings", root / "codings")
    shutil.copytree(pdfs / "moderation", root / "moderation")
    return root


def test_one_interview_per_id_with_codes_per_coder(study: Path, tmp_path: Path) -> None:
    interviews, sources, errors = parse_corpus([study], cache_dir=tmp_path / "pdf-cache")
    assert not errors, [str(e) for e in errors]  # every coded copy aligned (>= 0.98)
    ids = [iv.id for iv in interviews]
    assert len(ids) == len(set(ids)) == 36
    by_id = {iv.id: iv for iv in interviews}
    # The plain transcript is the canonical text; quotes are checked against it.
    for iv in interviews:
        assert iv.format == "plain", (iv.id, iv.source)
        for t in iv.turns:
            for p in t.paragraphs:
                assert sources[iv.id][p.start : p.end] == p.text
    assert set(by_id["32"].coders) >= {"PO", "Ilan"}
    assert set(by_id["35"].coders) >= {"PO", "Ilan"}
    assert set(by_id["12"].coders) == {"PO", "Rached", "moderation"}
    assert set(by_id["7"].coders) == {"PO", "Rached"}
    assert by_id["2"].language == "fr"
    assert len(by_id["32"].copies) >= 3  # seed export, two PDFs, the moderation print
    assert by_id["17"].coders == ()  # the seed copy of 17 carries no codes
    # Interview 12: what a reader sees is moderation's; each coder keeps their own.
    paras = [p for t in by_id["12"].turns for p in t.paragraphs if p.coded]
    assert paras
    for p in paras:
        mod = p.codes_by("moderation")
        if mod:
            assert set(p.codes) == set(mod)
    assert any(p.codes_by("PO") != p.codes_by("Rached") for p in paras)


def test_a_pdf_alone_is_an_interview_and_verifies_against_its_text(
    tmp_path: Path, delve_pdf_dir: Path
) -> None:
    pdfs = delve_pdf_dir / "codings"
    corpus = tmp_path / "c"
    corpus.mkdir()
    shutil.copy(pdfs / "2023-06-04-Interview 7 - PO.pdf", corpus)
    interviews, sources, errors = parse_corpus([corpus], cache_dir=tmp_path / "cache")
    assert not errors and len(interviews) == 1
    iv = interviews[0]
    assert iv.id == "7" and iv.format == "delve-pdf" and iv.coders == ("PO",)
    text = sources["7"]
    assert all(text[p.start : p.end] == p.text for t in iv.turns for p in t.paragraphs)
    assert any(p.codes for t in iv.turns for p in t.paragraphs)
