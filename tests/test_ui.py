"""The app's handlers on the real pipeline and seed index, and the real server on loopback.

Handlers are plain functions (``mlqi_rag.ui``), so most of this runs without a server. Rendering
tests that need no index use the parsed seed transcripts only; the rest (marked slow) use the
session's seed pipeline from conftest.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import shutil
import socket
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from netutil import free_port

from mlqi_rag import chat, guard, render, render_corpus, serve, ui
from mlqi_rag.errors import ConfigError
from mlqi_rag.settings import Settings
from mlqi_rag.transcripts import parse_paths
from mlqi_rag.types import Answer, Citation, Interview

MISSING = "How do practitioners handle missing values?"
FEDERATED = "Did any interviewee use federated learning?"
SEED_IDS = ["17", "25", "31", "32", "35"]
CARD = re.compile(r"<article class=\"evidence-card[^\"]*\"([^>]*)>", re.S)


def cards(evidence: str) -> list[dict[str, str]]:
    """The data-* attributes of every evidence card in the panel's HTML."""
    return [dict(re.findall(r'data-([a-z]+)="([^"]*)"', attrs)) for attrs in CARD.findall(evidence)]


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interviews(seed_dir: Path) -> dict[str, Interview]:
    ivs, errors = parse_paths([seed_dir])
    assert not errors
    return {iv.id: iv for iv in ivs}


@pytest.fixture(scope="module")
def parsed_pipe(interviews: dict[str, Interview]) -> Any:
    """Just enough of a Pipeline for rendering: the parsed interviews (no model, no index)."""
    return SimpleNamespace(index=SimpleNamespace(interviews=interviews), settings=Settings())


@pytest.fixture(scope="module")
def pipe(seed_pipeline: Any) -> Any:
    """The real pipeline on the session's seed index (conftest builds it once per session)."""
    return seed_pipeline


def run(pipe: Any, question: str | None, **kw: Any) -> list[chat.ChatUpdate]:
    return list(chat.respond(pipe, question, [], **kw))


def quote_in(iv: Interview, turn_pos: int) -> Citation:
    """A real citation: the first sentence of a turn's first paragraph, with exact offsets."""
    turn = iv.turns[turn_pos]
    p = turn.paragraphs[0]
    quote = re.split(r"(?<=[.?!])\s", p.text)[0]
    return Citation(
        interview_id=iv.id,
        label=iv.label,
        speaker=turn.speaker,
        role=turn.role,
        turn_index=turn.index,
        quote=quote,
        source=iv.source,
        start=p.start,
        end=p.start + len(quote),
        codes=turn.codes,
    )


# ---- rendering without an index ------------------------------------------------------------------


def test_esc_neutralises_html_and_template_syntax() -> None:
    out = render.esc('<script>alert("x")</script> ${value} {{x}}')
    assert "<" not in out and ">" not in out and '"' not in out
    assert "$" not in out and "{" not in out and "}" not in out


def test_card_has_stable_attributes_and_context(parsed_pipe: Any, interviews: Any) -> None:
    iv = interviews["32"]
    c = quote_in(iv, 7)
    html = render.evidence_card(parsed_pipe, c, n=1)
    [attrs] = cards(html)
    assert attrs["interview"] == "32" and attrs["verified"] == "true"
    assert attrs["turn"] == str(c.turn_index) and attrs["kind"] == "citation"
    assert "Interview 32" in html and "PO" in html and "Interviewee" in html
    assert f"turn {c.turn_index}" in html
    assert "✓ verified" in html
    for code in c.codes:
        assert f'<span class="ev-tag">{render.esc(code)}</span>' in html
    assert "<details" in html and "<summary>show in context</summary>" in html
    # the exchange: previous, cited and next turn; the quote highlighted in the cited one
    assert 'ev-turn-prev" data-turn="6"' in html and 'ev-turn-next" data-turn="8"' in html
    cited = html.split('ev-turn-cited"', 1)[1].split("ev-turn-next", 1)[0]
    assert f"<mark>{render.esc(c.quote)}</mark>" in cited


def test_context_highlight_follows_source_offsets(parsed_pipe: Any, interviews: Any) -> None:
    iv = interviews["32"]
    turn = iv.turns[7]
    p = turn.paragraphs[1]  # a quote in the second paragraph of the turn
    quote = p.text[10:60]
    c = Citation(
        iv.id, iv.label, turn.speaker, turn.role, turn.index, quote, iv.source,
        p.start + 10, p.start + 60,
    )  # fmt: skip
    html = render.context_html(parsed_pipe, c)
    assert html.count("<mark>") == 1
    assert f"<mark>{render.esc(quote)}</mark>" in html


def test_transcript_text_is_escaped(parsed_pipe: Any, interviews: Any) -> None:
    c = quote_in(interviews["17"], 3)
    evil = Citation(
        c.interview_id, c.label, '<img src=x onerror="alert(1)">', c.role, c.turn_index,
        "<script>alert('quote')</script> ${document.cookie}", c.source, c.start, c.end,
        codes=("<b>code</b>",),
    )  # fmt: skip
    html = render.evidence_card(parsed_pipe, evil)
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "&#36;&#123;document.cookie&#125;" in html


def test_abstained_answer_shows_closest_cards(parsed_pipe: Any, interviews: Any) -> None:
    closest = (quote_in(interviews["35"], 2), quote_in(interviews["31"], 4))
    answer = Answer(
        question=FEDERATED,
        text="Not in the interviews: the interviews don't discuss this.",
        citations=(),
        abstained=True,
        engine="extractive",
        closest=closest,
        interviews_searched=tuple(SEED_IDS),
    )
    html = render.evidence_html(parsed_pipe, answer)
    assert 'data-state="abstained"' in html
    found = cards(html)
    assert [a["interview"] for a in found] == ["35", "31"]
    assert all(a["kind"] == "closest" for a in found)
    assert html.count("closest, not an answer") >= 3  # the summary and each card
    cov = render.coverage_html(parsed_pipe, answer, chat.make_filters())
    assert "No interview supports an answer" in cov and "17 (Rached)" in cov


def test_answer_panel_and_coverage(parsed_pipe: Any, interviews: Any) -> None:
    cites = (quote_in(interviews["32"], 7), quote_in(interviews["35"], 10))
    answer = Answer(
        question=MISSING,
        text="…",
        citations=cites,
        abstained=False,
        engine="extractive",
        settings={"seconds": 0.25},
        interviews_searched=("31", "32", "35"),
    )
    html = render.evidence_html(parsed_pipe, answer)
    assert [a["interview"] for a in cards(html)] == ["32", "35"]
    assert "2 quotes from 2 interviews" in html
    only = chat.make_filters(codes=["Data-missing-values"])
    cov = render.coverage_html(parsed_pipe, answer, only)
    assert 'data-cited="32,35"' in cov and 'data-searched="31,32,35"' in cov
    assert "Supported by 2 of 3 interviews searched" in cov
    assert "codes Data-missing-values" in cov and "participant speech only" in cov


def _evidence(iv: str, verdict: str, p: float) -> dict[str, Any]:
    return {"interview_id": iv, "verdict": verdict, "p_discusses": p, "p_touches": min(1, 2 * p)}


def test_coverage_strip_shows_every_interview_verdict(parsed_pipe: Any, interviews: Any) -> None:
    evidence = (
        _evidence("35", "touches", 0.31),
        _evidence("17", "silent", 0.02),
        _evidence("32", "discusses", 0.914),
        _evidence("31", "discusses", 0.6),
        _evidence("<b>x</b>", "silent", 0.0),  # not in the index: still escaped, still shown
    )
    answer = Answer(
        question=MISSING,
        text="2 of 5 interviews discuss this: 32, 31.",
        citations=(quote_in(interviews["32"], 7),),
        abstained=False,
        engine="extractive",
        interviews_searched=("17", "31", "32", "35", "<b>x</b>"),
        evidence=evidence,
    )
    cov = render.coverage_html(parsed_pipe, answer, chat.make_filters())
    assert "2 of 5 interviews discuss this; 1 more touches on it" in cov
    cells = re.findall(
        r'class="cov-cell cov-(\w+)" data-interview="([^"]+)" data-verdict="(\w+)" '
        r'data-strength="([\d.]+)" title="([^"]*)"',
        cov,
    )
    # discusses first, then touches, then silent; strongest first within each
    assert [(c[1], c[2]) for c in cells] == [
        ("32", "discusses"),
        ("31", "discusses"),
        ("35", "touches"),
        ("17", "silent"),
        ("&lt;b&gt;x&lt;/b&gt;", "silent"),
    ]
    assert all(c[0] == c[2] for c in cells)
    assert cells[0][3] == "0.914" and "91%" in cov and 'style="width: 91%"' in cov
    assert "Interview 32 · PO: discusses" in cells[0][4]
    assert "<b>x" not in cov
    assert 'data-discussing="32,31"' in cov and "quoted: 32 (PO)" in cov
    none = replace(answer, evidence=tuple(_evidence(i, "silent", 0.1) for i in SEED_IDS))
    assert "0 of 5 interviews discuss this<" in render.coverage_html(parsed_pipe, none)
    some = replace(none, evidence=(_evidence("17", "touches", 0.4), _evidence("25", "silent", 0)))
    assert "0 of 2 interviews discuss this; 1 touches on it" in render.coverage_html(
        parsed_pipe, some
    )


def test_coverage_strip_scales_to_hundreds(parsed_pipe: Any) -> None:
    import time

    ids = [str(i) for i in range(400)]
    verdicts = ("discusses", "touches", "silent")
    answer = Answer(
        question=MISSING,
        text="…",
        citations=(),
        abstained=False,
        engine="extractive",
        interviews_searched=tuple(ids),
        evidence=tuple(_evidence(i, verdicts[int(i) % 3], int(i) / 400) for i in ids),
    )
    t0 = time.perf_counter()
    cov = render.coverage_html(parsed_pipe, answer)
    assert time.perf_counter() - t0 < 0.2
    assert cov.count('class="cov-cell') == 400 and len(cov) < 400 * 400
    assert "134 of 400 interviews discuss this; 133 more touch on it" in cov


def test_code_passages_only_coded(parsed_pipe: Any, interviews: Any) -> None:
    code = "Data-missing-values"
    html = render_corpus.code_passages_html(parsed_pipe, code)
    passages = re.findall(r'<article class="passage"([^>]*)>', html)
    expected = [
        (iv.id, t.index)
        for iv in sorted(interviews.values(), key=lambda i: int(i.id))
        for t in iv.turns
        if any(code in p.codes for p in t.paragraphs)
    ]
    assert expected and len(passages) == len(expected)
    got = [
        (re.search(r'data-interview="(\w+)"', a)[1], int(re.search(r'data-turn="(\d+)"', a)[1]))  # type: ignore[index]
        for a in passages
    ]
    assert got == expected
    assert all(code in re.search(r'data-codes="([^"]*)"', a)[1].split("|") for a in passages)  # type: ignore[index]
    assert {iv for iv, _ in got} <= {"32", "35"}  # the only coded interviews
    assert f'data-count="{len(expected)}"' in html
    assert "No passage carries" in render_corpus.code_passages_html(parsed_pipe, "no-such-code")


def test_heatmap_counts(parsed_pipe: Any, interviews: Any) -> None:
    html = render_corpus.code_heatmap_html(parsed_pipe)
    for iv in SEED_IDS:
        assert f'<th data-interview="{iv}"' in html
    cells = re.findall(r'data-code="([^"]+)" data-interview="(\w+)" data-count="(\d+)"', html)
    counts = {(c, i): int(n) for c, i, n in cells}
    assert counts[("Data-missing-values", "32")] >= 1
    assert counts[("Data-missing-values", "17")] == 0  # 17 is not coded
    codes = {c for c, _ in counts}
    assert codes == {code for iv in interviews.values() for code in iv.codes}
    assert "uncoded" in html


def test_session_quotes_and_export(tmp_path: Path, interviews: Any) -> None:
    c1, c2 = quote_in(interviews["32"], 7), quote_in(interviews["35"], 10)
    s = chat.SessionQuotes()
    path, msg = chat.export_quotes(s, "markdown", "last answer", tmp_path)
    assert path is None and "Nothing to export" in msg and list(tmp_path.iterdir()) == []

    s = s.add(Answer("q1", "t", (c1,), False, "extractive"))
    s = s.add(Answer("q2", "t", (c2, c1), False, "extractive"))
    s = s.add(Answer("q3", "t", (), True, "extractive", closest=(c2,)))
    assert s.last == () and s.all == (c1, c2)  # closest passages are never exported
    path, msg = chat.export_quotes(s, "markdown", "last answer", tmp_path)
    assert path is None
    path, msg = chat.export_quotes(s, "csv", "whole session", tmp_path)
    assert path and Path(path).parent == tmp_path.resolve() and "2 quotes" in msg
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert [r["interview"] for r in rows] == ["32", "35"]


def test_parse_auth() -> None:
    assert serve.parse_auth("") is None
    assert serve.parse_auth("ana:s3cr:et") == ("ana", "s3cr:et")
    for bad in ("ana", "ana:", ":pw"):
        with pytest.raises(ConfigError):
            serve.parse_auth(bad)


def test_settings_from_flags_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLQI_HOST", "127.0.0.2")
    monkeypatch.setenv("MLQI_PORT", "7999")
    s = serve.settings_from_args(serve.parse_args([]))
    assert (s.host, s.port) == ("127.0.0.2", 7999)
    args = serve.parse_args(
        ["--port", "8100", "--host", "127.0.0.1", "--corpus", str(tmp_path), "--index-dir", "ix"]
    )
    s = serve.settings_from_args(args)
    assert (s.host, s.port, s.corpus, s.index_dir) == ("127.0.0.1", 8100, tmp_path, Path("ix"))
    monkeypatch.delenv("MLQI_HOST")
    monkeypatch.delenv("MLQI_PORT")
    d = serve.settings_from_args(
        argparse.Namespace(host=None, port=None, corpus=None, index_dir=None, export_dir=None)
    )
    assert (d.host, d.port) == ("127.0.0.1", 7860)


def test_main_fails_fast_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index_dir = tmp_path / "never-built"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve.main(["--port", str(port), "--index-dir", str(index_dir)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert not index_dir.exists()  # it stopped before any slow work

    monkeypatch.setenv("MLQI_PORT", "not-a-port")
    assert serve.main([]) == 2
    assert "invalid setting port" in capsys.readouterr().err
    monkeypatch.setenv("MLQI_PORT", "7860")
    monkeypatch.setenv("MLQI_AUTH", "no-colon")
    assert serve.main([]) == 1
    assert "MLQI_AUTH must look like user:password" in capsys.readouterr().err


def test_export_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLQI_EXPORT_DIR", str(tmp_path / "ex"))
    assert chat.resolve_export_dir(Settings().export_dir) == (tmp_path / "ex").resolve()
    assert (tmp_path / "ex").is_dir()
    monkeypatch.delenv("MLQI_EXPORT_DIR")
    fresh = chat.resolve_export_dir()
    try:
        assert fresh.is_dir() and fresh.name.startswith("mlqi-exports-")
    finally:
        shutil.rmtree(fresh)


# ---- what transcripts and clients cannot do ------------------------------------------------------

HOSTILE = (
    "We drop rows ![x](http://127.0.0.9/leak.png) <img src=http://127.0.0.9/x> "
    "[click](http://127.0.0.9/go) <http://127.0.0.9/auto> www.example.org *not bold* `x` & more"
)


def test_chat_text_renders_transcript_markup_as_text() -> None:
    from markdown_it import MarkdownIt

    answer = f"1 of 1 interviews discusses this: 90.\n\n- Interview 90, turn 1: “{HOSTILE}”"
    shown = chat.chat_text(answer)
    html = MarkdownIt("commonmark").render(shown)
    assert set(re.findall(r"<([a-z]+)", html)) <= {"p", "ul", "li"}, html  # the list stays
    assert "<img" not in html and "href" not in html
    assert not re.search(r"(?<!\\)://|(?<!\\)www\.", shown)  # no bare URL to autolink
    text = re.sub(r"<[^>]+>", "", html)
    import html as htmllib

    assert HOSTILE in htmllib.unescape(text)  # the reader sees exactly what was said
    assert chat.chat_text(MISSING) == MISSING  # plain text is left as it is


def test_login_throttle_backs_off_and_resets() -> None:
    now = [1000.0]
    t = guard.LoginThrottle(clock=lambda: now[0])
    for _ in range(2):
        assert t.wait("a") == 0
        t.attempt("a")
    assert t.wait("a") == 0  # two failures are free
    waits = []
    for _ in range(7):
        t.attempt("a")
        waits.append(t.wait("a"))
        now[0] += waits[-1]
    assert waits == [1, 2, 4, 8, 16, 30, 30]  # doubling, capped
    t.attempt("a")
    assert t.wait("b") == 0  # per client
    t.succeeded("a")
    assert t.wait("a") == 0
    t.attempt("a")
    assert t.wait("a") == 0  # counting starts again after a success


def test_export_registry_allows_only_written_files(tmp_path: Path) -> None:
    reg = guard.ExportRegistry()
    exports, cache = tmp_path / "exports", tmp_path / "cache"
    written = chat.export_quotes(
        chat.SessionQuotes(last=(quote_stub(),), all=(quote_stub(),)), "csv", "last answer", exports
    )[0]
    assert written is not None
    reg.add(written)
    assert reg.allows(written, [cache])
    copy = cache / "abc123" / Path(written).name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(Path(written).read_bytes())
    assert reg.allows(copy, [cache])  # Gradio's cached copy of it
    assert not reg.allows(copy, [])  # … only inside the cache
    planted = exports / "mlqi-quotes-20260101-000000.csv"
    planted.write_text("planted", encoding="utf-8")
    assert not reg.allows(planted, [cache])
    copy.write_text("changed", encoding="utf-8")
    assert not reg.allows(copy, [cache])
    assert not reg.allows(exports / "missing.csv", [cache])
    assert not reg.allows(exports, [cache])


def quote_stub() -> Citation:
    return Citation(
        "32", "PO", "Interviewee", "participant", 3, "=cmd|' /C calc'!A0", "/x/i.md", 0, 18
    )


# ---- handlers on the real pipeline ---------------------------------------------------------------


@pytest.mark.slow
def test_missing_values_cites_32_verified(pipe: Any) -> None:
    updates = run(pipe, MISSING)
    assert len(updates) >= 3  # pending, streamed text, final
    final = updates[-1]
    assert final.error is None and final.answer is not None and not final.answer.abstained
    found = cards(final.evidence)
    assert any(a["interview"] == "32" and a["verified"] == "true" for a in found), found
    assert "show in context" in final.evidence and "<mark>" in final.evidence
    # every card's quote is exactly the transcript text at its offsets
    for c in final.answer.citations:
        assert pipe.index.source_text(c.interview_id)[c.start : c.end] == c.quote
    assert final.history[0] == {"role": "user", "content": MISSING}
    assert final.history[-1] == {"role": "assistant", "content": chat.chat_text(final.answer.text)}
    assert 'class="coverage"' in final.coverage and "32" in final.coverage
    # the strip: one cell per searched interview, its verdict as the scan gave it
    strip = dict(re.findall(r'data-interview="(\w+)" data-verdict="(\w+)"', final.coverage))
    assert set(strip) == set(final.answer.interviews_searched)
    assert strip == {e["interview_id"]: e["verdict"] for e in final.answer.evidence}
    assert render.coverage_header(final.answer) in final.coverage
    # streamed text grows towards the final answer (extractive: line by line)
    streamed = [u.history[-1]["content"] for u in updates[1:-1]]
    assert streamed and all(final.history[-1]["content"].startswith(s) for s in streamed)


@pytest.mark.slow
def test_interview_filter(pipe: Any) -> None:
    final = run(pipe, MISSING, interviews=["17"])[-1]
    assert final.error is None and final.answer is not None
    assert final.answer.interviews_searched == ("17",)
    found = cards(final.evidence)
    assert found and {a["interview"] for a in found} == {"17"}
    assert 'data-searched="17"' in final.coverage


@pytest.mark.slow
def test_code_filter_and_participant_toggle(pipe: Any) -> None:
    final = run(pipe, MISSING, codes=["Data-missing-values"], participant_only=False)[-1]
    assert final.error is None and final.answer is not None
    assert set(final.answer.interviews_searched) <= {"32", "35"}
    assert final.answer.settings["roles"] == []
    assert final.answer.settings["codes"] == ["Data-missing-values"]
    # interview 17 carries no codes: nothing to search, said plainly
    none = run(pipe, MISSING, interviews=["17"], codes=["Data-missing-values"])[-1]
    assert none.error is None and none.answer is not None and none.answer.abstained
    assert "No passage matches these filters" in none.coverage
    assert "matches the filters" in none.evidence and cards(none.evidence) == []


@pytest.mark.slow
def test_abstention_marks_closest(pipe: Any) -> None:
    final = run(pipe, FEDERATED)[-1]
    assert final.error is None and final.answer is not None
    assert final.answer.abstained, final.answer.text
    assert "closest, not an answer" in final.evidence or "Not in the interviews" in final.evidence
    assert all(a["kind"] == "closest" for a in cards(final.evidence))
    assert "Not in the interviews" in final.history[-1]["content"]


@pytest.mark.slow
@pytest.mark.parametrize("question", ["", "   ", "?!"])
def test_bad_question_is_a_message(pipe: Any, question: str) -> None:
    final = run(pipe, question)[-1]
    assert final.answer is None and final.error
    assert "Traceback" not in final.history[-1]["content"]
    assert final.history[-1]["role"] == "assistant"
    assert "Error" in final.history[-1]["content"]
    assert 'data-state="error"' in final.evidence


@pytest.mark.slow
def test_unknown_engine_is_a_message(pipe: Any) -> None:
    final = run(pipe, MISSING, engine="nope")[-1]
    assert final.error and "unknown engine" in final.error


@pytest.mark.slow
def test_choices_and_corpus_views(pipe: Any) -> None:
    assert [v for _, v in ui.interview_choices(pipe)] == SEED_IDS
    codes = dict((v, label) for label, v in ui.code_choices(pipe))
    n = pipe.index.code_counts()["Data-missing-values"]
    assert codes["Data-missing-values"] == f"Data-missing-values ({n})"
    assert ui.engine_choices(pipe.settings)[0] == "extractive"

    rows = render_corpus.corpus_rows(pipe)
    assert [r[0] for r in rows] == SEED_IDS
    by_id = {r[0]: dict(zip(render_corpus.CORPUS_HEADERS, r, strict=True)) for r in rows}
    assert by_id["32"]["Coded"] == "yes" and by_id["17"]["Coded"] == "no"
    for r in by_id.values():
        assert r["Turns"] >= r["Participant turns"] > 0 and r["Words"] > r["Participant words"]
    heat = render_corpus.code_heatmap_html(pipe)
    assert all(f'data-interview="{i}"' in heat for i in SEED_IDS)
    assert all(f'data-code="{c}"' in heat for c in pipe.index.code_counts())
    assert "5 interviews" in render_corpus.corpus_summary(pipe)
    assert render_corpus.most_used_code(pipe) in pipe.index.code_counts()


@pytest.mark.slow
def test_export_after_answer(pipe: Any, tmp_path: Path) -> None:
    final = run(pipe, MISSING)[-1]
    assert final.answer is not None
    session = chat.SessionQuotes().add(final.answer)
    path, msg = chat.export_quotes(session, "markdown", "last answer", tmp_path)
    assert path is not None
    text = Path(path).read_text(encoding="utf-8")
    assert f"**Question:** {MISSING}" in text
    for c in final.answer.citations:
        assert f"— Interview {c.interview_id}, turn {c.turn_index}" in text


@pytest.mark.slow
def test_first_run_builds_with_progress_message(
    seed_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(seed_dir / "interview-25-Ilan.md", corpus)  # one transcript keeps this quick
    settings = Settings(corpus=corpus, index_dir=tmp_path / "index")
    p = serve.prepare_pipeline(settings, progress=False)
    out = capsys.readouterr().out
    assert "Building the index of 1 transcripts" in out and "Index ready" in out
    assert list(p.index.interviews) == ["25"]
    serve.prepare_pipeline(settings, progress=False)
    assert "Index up to date" in capsys.readouterr().out


# ---- the real server -----------------------------------------------------------------------------


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                if len(addr) == 8:
                    found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
                else:
                    found.add(addr)
    return found


@pytest.mark.slow
def test_server_binds_loopback_and_chat_endpoint_works(pipe: Any, tmp_path: Path) -> None:
    from gradio_client import Client

    port = free_port()
    exports = tmp_path / "exports"
    settings = Settings(index_dir=pipe.settings.index_dir, port=port)
    demo = ui.build_ui(pipe, exports)
    try:
        url = serve.serve(demo, settings, exports, block=False, quiet=True)
        assert url.startswith(f"http://127.0.0.1:{port}")
        assert listening_addresses(port) == {"127.0.0.1"}

        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        api = client.view_api(return_format="dict", print_info=False)
        assert "/chat" in api["named_endpoints"]
        assert len(api["named_endpoints"]) == 1  # nothing else is exposed to API clients
        q, history, evidence, coverage = client.predict(
            MISSING, [], [], [], "any", True, "extractive", 10, "", api_name="/chat"
        )
        assert q == ""
        assert [m["role"] for m in history] == ["user", "assistant"]
        found = cards(evidence)
        assert found and all(a["verified"] == "true" for a in found)
        assert 'class="coverage"' in coverage

        # Gradio serves no file outside what the app generated (transcripts, index, source)
        for path in (Path(pipe.index.interviews["32"].source), Path(ui.__file__)):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10)
            assert err.value.code in (403, 404)
    finally:
        demo.close()


@pytest.mark.slow
def test_server_login(pipe: Any, tmp_path: Path) -> None:
    from gradio_client import Client

    port = free_port()
    settings = Settings(index_dir=pipe.settings.index_dir, port=port, auth="ana:pw123")
    demo = ui.build_ui(pipe, tmp_path)
    try:
        url = serve.serve(demo, settings, tmp_path, block=False, quiet=True)
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do
            Client(url, verbose=False, analytics_enabled=False).predict(
                "", [], [], [], "any", True, "extractive", 10, api_name="/chat"
            )
        client = Client(url, verbose=False, analytics_enabled=False, auth=("ana", "pw123"))
        result = client.predict("", [], [], [], "any", True, "extractive", 10, api_name="/chat")
        assert "Error" in result[1][-1]["content"][0]["text"]  # empty question → message
    finally:
        demo.close()


@pytest.mark.slow
def test_app_removes_its_own_export_dir_on_exit(seed_index: Settings, tmp_path: Path) -> None:
    """Quotes are confidential: a temporary export directory the app made is gone after it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MLQI_EXPORT_DIR", "GRADIO_TEMP_DIR")}
    app = Path(ui.__file__).resolve().parents[1] / "app.py"
    proc = subprocess.Popen(
        [sys.executable, str(app), "--port", str(port), "--index-dir", str(seed_index.index_dir)],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    export_dir = None
    deadline = time.time() + 120
    for line in proc.stdout:
        if line.startswith("Exports go to "):
            export_dir = Path(line.removeprefix("Exports go to ").strip())
        if line.startswith("Open http://127.0.0.1") or time.time() > deadline:
            break
    assert export_dir is not None and export_dir.is_dir()
    assert export_dir.name.startswith("mlqi-exports-")
    proc.send_signal(signal.SIGINT)  # Ctrl+C
    assert proc.wait(timeout=60) == 0
    assert not export_dir.exists()


# ---- coders: the corpus tab on the coded corpus --------------------------------------------------


@pytest.fixture(scope="module")
def coded_pipe(coded_index: Settings) -> Any:
    """The coded corpus's real index; rendering needs no model."""
    from mlqi_rag.index import Index

    return SimpleNamespace(index=Index.load(coded_index), settings=coded_index)


@pytest.mark.slow
def test_corpus_rows_show_coders_and_copies(coded_pipe: Any) -> None:
    by_id = {
        r[0]: dict(zip(render_corpus.CORPUS_HEADERS, r, strict=True))
        for r in render_corpus.corpus_rows(coded_pipe)
    }
    assert by_id["12"]["Coders"] == "PO, Rached, moderation" and by_id["12"]["Coded copies"] == 3
    assert by_id["7"]["Coders"] == "PO, Rached" and by_id["7"]["Coded copies"] == 2


@pytest.mark.slow
def test_heatmap_per_coder(coded_pipe: Any) -> None:
    from mlqi_rag import render_coders

    choices = render_coders.coder_choices(coded_pipe, "reader")
    assert choices == [("reader", ""), ("Ilan", "Ilan"), ("PO", "PO"), ("Rached", "Rached"),
                       ("moderation", "moderation")]  # fmt: skip

    def counts(html: str) -> dict[tuple[str, str], int]:
        cells = re.findall(r'data-code="([^"]+)" data-interview="(\w+)" data-count="(\d+)"', html)
        return {(c, i): int(n) for c, i, n in cells}

    reader = counts(render_corpus.code_heatmap_html(coded_pipe))
    rached = counts(render_corpus.code_heatmap_html(coded_pipe, "Rached"))
    code = "MD-configuration-issue"  # Rached's, dropped in moderation
    assert rached[(code, "12")] >= 1 and (code, "12") not in reader
    iv12 = coded_pipe.index.interviews["12"]
    turns = sum(any(code in p.codes_by("Rached") for p in t.paragraphs) for t in iv12.turns)
    assert rached[(code, "12")] == turns
    assert all(n == 0 for (_, iv), n in rached.items() if iv in ("32", "35"))  # not Rached's
    assert "not coded by Rached" in render_corpus.code_heatmap_html(coded_pipe, "Rached")
    nobody = render_corpus.code_heatmap_html(coded_pipe, "Nobody")
    assert "No interview carries qualitative codes coded by Nobody" in nobody


@pytest.mark.slow
def test_agreement_panel_and_disagreements_csv(coded_pipe: Any, tmp_path: Path) -> None:
    from mlqi_rag import agreement, render_coders

    ivs = coded_pipe.index.interviews
    ca = render_coders.corpus_agreement(ivs.values())
    html = render_coders.agreement_table_html(ca)
    rows = dict(re.findall(r'<tr class="ag-row[^"]*" data-interview="([^"]+)"(.*?)</tr>', html))
    assert set(rows) == {"2", "7", "12", "32", "35", "*"}
    r12 = agreement.passage_agreement(ivs["12"]).overall
    got = dict(re.findall(r'data-stat="(\w+)">([^<]+)<', rows["12"]))
    assert got == {
        "kappa": render_coders.fmt(r12.kappa),
        "alpha": render_coders.fmt(r12.alpha),
        "percent": render_coders.fmt(r12.percent, percent=True),
    }
    assert "Interview 12" in rows["12"] and "PO, Rached" in rows["12"]
    dis = render_coders.disagreements_html(ca)
    assert f'data-count="{len(ca.disagreements)}"' in dis and len(ca.disagreements) > 0
    assert dis.count("<tr data-interview=") == min(len(ca.disagreements), 300)
    codes = render_coders.code_agreement_html(ca)
    assert 'data-level="passage"' in codes and 'data-level="interview"' in codes

    path = render_coders.write_disagreements(ca.disagreements, tmp_path)
    assert path.name.startswith("mlqi-disagreements-") and path.suffix == ".csv"
    assert path.read_bytes().decode("utf-8") == agreement.disagreements_csv(ca.disagreements)
    second = render_coders.write_disagreements(ca.disagreements[:1], tmp_path)
    assert second != path  # never overwritten
    reg = guard.ExportRegistry()
    reg.add(path)
    assert reg.allows(path) and not reg.allows(second)

    # nobody to compare: the panel says why instead of showing numbers
    seed_only = render_coders.corpus_agreement([ivs["12"].__class__(**{
        **{f: getattr(ivs["12"], f) for f in ("id", "label", "source", "language", "format",
                                               "sha256", "turns", "copies")},
        "coders": ("PO",),
    })])  # fmt: skip
    empty = render_coders.agreement_table_html(seed_only)
    assert 'data-count="0"' in empty and "fewer than two human coders (PO)" in empty


@pytest.mark.slow
def test_ui_builds_with_coder_views(coded_pipe: Any, tmp_path: Path) -> None:
    demo = ui.build_ui(coded_pipe, tmp_path / "exports")
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"agreement-table", "disagreements", "export-disagreements", "heatmap-coder"} <= ids
    assert "filter-coder" in ids
