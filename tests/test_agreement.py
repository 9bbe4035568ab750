"""Inter-coder agreement: hand-computed cases, a published example, then the real interviews."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import replace
from pathlib import Path

import pytest

from mlqi_rag.agreement import (
    Disagreement,
    cohen_kappa,
    disagreements,
    disagreements_csv,
    interview_agreement,
    krippendorff_alpha,
    passage_agreement,
)
from mlqi_rag.coders import MODERATION, group_by_interview
from mlqi_rag.pdf import parse_pdf
from mlqi_rag.transcripts import parse_file, read_source
from mlqi_rag.types import Interview, Paragraph, Turn

REPO = Path(__file__).resolve().parents[1]


def _interview(iid: str, a: dict[int, tuple[str, ...]], b: dict[int, tuple[str, ...]]) -> Interview:
    """Ten participant paragraphs coded by A and B (paragraph number -> codes), one interviewer
    paragraph coded by A only (never a unit), and a moderation coder (left out by default)."""
    paras = []
    for i in range(10):
        coded = tuple(
            (name, codes[i]) for name, codes in (("A", a), ("B", b), (MODERATION, a)) if i in codes
        )
        paras.append(Paragraph(f"p{i}", 3 * i, 3 * i + 2, (), coded))
    asked = Paragraph("q", 40, 41, ("X",), (("A", ("X",)),))
    turns = (
        Turn(0, "Interviewer 1", "interviewer", (asked,)),
        Turn(1, "Interviewee", "participant", tuple(paras)),
    )
    return Interview(iid, "", f"{iid}.txt", "en", "plain", "0", turns, ("A", "B", MODERATION))


# Code X: A on paragraphs 0-3, B on 2-5. Code Y: both on paragraph 0.
A = {0: ("X", "Y"), 1: ("X",), 2: ("X",), 3: ("X",)}
B = {0: ("Y",), 2: ("X",), 3: ("X",), 4: ("X",), 5: ("X",)}


def test_passage_agreement_by_hand() -> None:
    r = passage_agreement(_interview("1", A, B))
    assert r.coders == ("A", "B") and r.units == 10
    x, y = r.codes
    # X: both 2 (p2, p3), A only 2, B only 2, neither 4.
    #   po = 6/10 = 0.6; pA = pB = 0.4; pe = .4*.4 + .6*.6 = 0.52; kappa = .08/.48 = 0.1667
    #   alpha: 20 values, o(1,1) = 4, o(0,0) = 8, o(0,1) = o(1,0) = 4; n1 = 8, n0 = 12;
    #   Do = 8/20 = 0.4; De = 2*12*8/(20*19) = 0.50526; alpha = 1 - 0.4/0.50526 = 0.2083
    assert (x.code, x.units, x.applied) == ("X", 10, (("A", 4), ("B", 4)))
    assert x.percent == pytest.approx(0.6)
    assert x.kappa == pytest.approx(0.08 / 0.48)
    assert x.alpha == pytest.approx(1 - 0.4 / (192 / 380))
    # Y: both on p0, neither elsewhere: perfect agreement.
    assert (y.code, y.percent, y.kappa, y.alpha) == ("Y", 1.0, 1.0, 1.0)
    # Pooled over 20 (paragraph, code) decisions: both 3, A only 2, B only 2, neither 13.
    #   po = 16/20 = 0.8; pA = pB = 5/20; pe = .0625 + .5625 = 0.625; kappa = .175/.375 = 0.4667
    #   alpha: n = 40, o(1,1) = 6, o(0,0) = 26, o(0,1) = o(1,0) = 4; n1 = 10, n0 = 30;
    #   Do = 8/40 = 0.2; De = 2*30*10/(40*39) = 0.38462; alpha = 1 - 0.2/0.38462 = 0.48
    o = r.overall
    assert (o.code, o.units, o.percent) == ("*", 20, pytest.approx(0.8))
    assert o.kappa == pytest.approx(0.175 / 0.375)
    assert o.alpha == pytest.approx(0.48)
    assert r.mean("kappa") == pytest.approx((0.08 / 0.48 + 1) / 2)
    d = r.to_dict()
    assert d["overall"]["kappa"] == 0.4667 and d["codes"][0]["applied"] == {"A": 4, "B": 4}


def test_moderation_can_be_compared_explicitly() -> None:
    r = passage_agreement(_interview("1", A, B), coders=("A", MODERATION))
    assert r.overall.kappa == 1.0 and r.overall.percent == 1.0
    with pytest.raises(ValueError, match="two coders"):
        passage_agreement(_interview("1", A, B), coders=("A",))


def test_published_examples() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal data,
    # 4 observers x 12 units with missing values: alpha = 0.743.
    n = None
    data: list[list[float | None]] = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    assert krippendorff_alpha(data) == pytest.approx(0.743, abs=5e-4)
    # Cohen's kappa, the textbook 2x2 table (Wikipedia "Cohen's kappa"): 50 items,
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> po = 0.7, pe = 0.5, kappa = 0.4.
    x = [1.0] * 25 + [0.0] * 25
    y = [1.0] * 20 + [0.0] * 5 + [1.0] * 10 + [0.0] * 15
    assert cohen_kappa(x, y) == pytest.approx(0.4)
    # undefined, not invented: nobody varies
    assert math.isnan(cohen_kappa([0.0, 0.0], [0.0, 0.0]))
    assert math.isnan(krippendorff_alpha([[0.0, 0.0], [0.0, 0.0]]))


def test_interview_level_with_a_coder_missing() -> None:
    one = _interview("1", A, B)
    two = _interview("2", {0: ("Z",)}, {})
    two = replace(two, coders=("A", MODERATION))  # B never coded interview 2
    r = interview_agreement([one, two], codebook=["X", "Y", "Z", "W"])
    assert r.level == "interview" and r.units == 2 and r.coders == ("A", "B")
    by = {s.code: s for s in r.codes}
    # interview 1: A {X, Y} (X also on the interviewer's question), B {X, Y}; 2: A {Z}, B missing
    assert by["X"].units == 1 and by["X"].percent == 1.0
    assert by["Z"].applied == (("A", 1), ("B", 0)) and by["Z"].units == 1  # interview 1 only
    assert math.isnan(by["W"].kappa) and math.isnan(by["W"].alpha)
    # pooled over interview 1's 4 codebook decisions: X, Y agree (1, 1), Z, W agree (0, 0)
    assert (r.overall.units, r.overall.percent, r.overall.kappa) == (4, 1.0, 1.0)


def test_disagreements_and_their_csv() -> None:
    rows = disagreements(_interview("1", A, B))
    assert [(r.text, r.code, r.applied_by, r.not_applied_by) for r in rows] == [
        ("p0", "X", ("A",), ("B",)),
        ("p1", "X", ("A",), ("B",)),
        ("p4", "X", ("B",), ("A",)),
        ("p5", "X", ("B",), ("A",)),
    ]  # Y and the interviewer's question are no disagreement
    assert rows[1].codes == (("A", ("X",)), ("B", ()))
    table = list(csv.reader(io.StringIO(disagreements_csv(rows))))
    assert table[0][:6] == ["interview", "turn", "speaker", "start", "end", "code"]
    assert table[1] == ["1", "1", "Interviewee", "0", "2", "X", "A", "B", "A: X; Y | B: Y", "p0"]
    assert len(table) == 5


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_cannot_become_formulas(lead: str) -> None:
    row = Disagreement(
        "1", 0, lead + "speaker", 0, 1, lead + "code", (lead + "A",), ("B",), (), lead + "1+1"
    )
    cells = list(csv.reader(io.StringIO(disagreements_csv([row]), newline="")))[1]
    for i in (2, 5, 6, 9):
        assert cells[i] == "'" + lead + cells[i][2:] and cells[i].startswith("'" + lead)
    assert cells[0] == "1"  # ordinary cells untouched


@pytest.mark.slow
def test_real_interviews(
    delve_pdf_dir: Path, mlsss_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = tmp_path_factory.getbasetemp() / "pdf-cache"
    pairs = []
    for name in ("2", "7", "12", "32 - PO", "35"):
        f = mlsss_dir / f"Interview {name}.txt"
        pairs.append((parse_file(f), read_source(f)))
    pairs += [parse_pdf(f, cache) for f in sorted(delve_pdf_dir.glob("*/*.pdf"))]
    interviews = [iv for iv, _, _ in group_by_interview(pairs)]
    corpus = interview_agreement(interviews)
    assert corpus.coders == ("PO", "Rached", "Ilan") and corpus.units == 5
    assert 0.0 < corpus.overall.alpha < 1.0
    book = [s.code for s in corpus.codes]  # every code a human coder used somewhere
    for iv in interviews:
        r = passage_agreement(iv)
        assert len(r.coders) == 2 and MODERATION not in r.coders
        assert r.units == sum(len(t.paragraphs) for t in iv.turns if t.role == "participant")
        for s in (r.overall, *r.codes):
            assert 0.0 <= s.percent <= 1.0
            if all(n > 0 for _, n in s.applied):  # a code both coders used
                assert -1.0 <= s.kappa <= 1.0 and -1.0 <= s.alpha <= 1.0
        assert 0.0 < r.overall.kappa < 0.8, (iv.id, r.overall)
        # pooled, two coders, no missing data, similar marginals: kappa and alpha nearly agree
        assert abs(r.overall.kappa - r.overall.alpha) < 0.01
        level = interview_agreement([iv], codebook=book).overall
        assert -1.0 <= level.kappa <= 1.0 and not math.isnan(level.alpha)
        assert len(disagreements(iv)) > 0
