"""Reviewing suggested codes: the store, its CSV, the CLI and the app's views, on the real coded
corpus (five interviews, two coders' Delve prints each) and the real suggestion model.

Suggestions are computed once per session (``coded_review_index`` in conftest) and each test
works on a fresh copy of that index, so decisions never leak from one test to the next. The
stale test edits a transcript of its own copy of the corpus; the read-only tests mount the
index read-only (root and ``unshare``), or make its folder look read-only in-process.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cliutil import can_mount_read_only, on_read_only_mount, one_line_error, run

from mlqi_rag import render, render_corpus, render_review, review, review_files, review_items, ui
from mlqi_rag.build import build_index
from mlqi_rag.export import csv_cell
from mlqi_rag.index import Index
from mlqi_rag.review import ReviewStore
from mlqi_rag.review_items import ACCEPTED_CODER, CSV_COLUMNS, suggestion_id
from mlqi_rag.settings import Settings
from mlqi_rag.types import Citation

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The per-user fallback location, inside the test's tmp dir."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def parse_csv(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return rows


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---- the store ----------------------------------------------------------------------------------


def test_store_decides_persists_and_exports(review_index: tuple[Settings, float]) -> None:
    s, mc = review_index
    before = digests(Path(s.corpus))
    index = Index.load(s)
    store = ReviewStore(index, mc)
    assert store.dir == Path(s.index_dir).resolve() / "review"
    assert store.cached()  # computed once for the session, read from the copied cache
    items = store.items()
    assert len(items) >= 4 and all(it.status == "pending" and not it.stale for it in items)
    assert len({it.id for it in items}) == len(items)
    for it in items:
        assert it.id == suggestion_id(it.interview_id, it.start, it.end, it.code)
        assert index.source_text(it.interview_id)[it.start : it.end] == it.text
        assert it.examples and all(e.interview_id != "" for e in it.examples)

    a, r = items[0], items[1]
    done = store.decide([a.id], "accepted", now="2026-01-02T03:04:05Z")
    assert [(d.id, d.status, d.decided_at) for d in done] == [
        (a.id, "accepted", "2026-01-02T03:04:05Z")
    ]
    store.decide([r.id], "rejected")

    # persisted as JSON beside the index, read back by a fresh store (another process, say)
    saved = json.loads((store.dir / review.DECISIONS_FILE).read_text(encoding="utf-8"))
    by_id = {suggestion_id(d["interview_id"], d["start"], d["end"], d["code"]): d
             for d in saved["decisions"]}  # fmt: skip
    assert set(by_id) == {a.id, r.id}
    assert by_id[a.id]["source_sha256"] == index.interviews[a.interview_id].sha256
    assert by_id[a.id]["status"] == "accepted" and by_id[r.id]["status"] == "rejected"
    assert not list(store.dir.glob(".*.tmp"))  # atomic writes leave no temporary file
    again = ReviewStore(Index.load(s), mc)
    status = {it.id: it.status for it in again.items()}
    assert status[a.id] == "accepted" and status[r.id] == "rejected"
    assert review_items.counts(again.items())["pending"] == len(items) - 2
    assert [it.id for it in review_items.filter_items(again.items(), "accepted")] == [a.id]
    assert [it.id for it in review_items.filter_items(again.items(), "rejected")] == [r.id]
    only = review_items.filter_items(again.items(), None, a.interview_id, a.code)
    assert a.id in {it.id for it in only}
    assert all(it.interview_id == a.interview_id and it.code == a.code for it in only)

    # the first store sees the other's file change
    store2 = ReviewStore(Index.load(s), mc)
    store2.decide([r.id], "accepted")
    assert {it.id: it.status for it in store.items()}[r.id] == "accepted"
    store2.decide([r.id], "pending")  # undo
    assert {it.id: it.status for it in store.items()}[r.id] == "pending"

    text, n = store.export_csv()
    assert n == 1
    assert text.startswith(",".join(CSV_COLUMNS) + "\r\n")
    [row] = parse_csv(text)
    assert row == {
        "interview_id": a.interview_id,
        "turn_index": str(a.turn_index),
        "start": str(a.start),
        "end": str(a.end),
        "passage": a.text,
        "code": a.code,
        "coder": ACCEPTED_CODER,
        "confidence": f"{a.confidence:.4f}",
        "decided_at": "2026-01-02T03:04:05Z",
    }
    # the transcripts were never touched
    assert digests(Path(s.corpus)) == before


def test_bad_decisions_are_refused_whole(review_index: tuple[Settings, float]) -> None:
    s, mc = review_index
    store = ReviewStore(Index.load(s), mc)
    first = store.items()[0]
    with pytest.raises(review.MlqiError, match="unknown suggestion id nope"):
        store.decide([first.id, "nope"], "accepted")
    assert store.decisions() == {}  # all or none
    with pytest.raises(review.MlqiError, match="no suggestion id"):
        store.decide([], "accepted")
    with pytest.raises(review.MlqiError, match="unknown status"):
        store.decide([first.id], "maybe")


def test_csv_cells_that_start_like_formulas_are_neutralised() -> None:
    rows = [["35", 2, 10, 40, "=HYPERLINK(\"http://x\")", "+Data-issues", ACCEPTED_CODER,
             "0.5000", "@2026"], ["7", 1, 0, 3, "-1 is fine\r\nnext line", "Q1", ACCEPTED_CODER,
             "0.1000", "2026-01-01T00:00:00Z"]]  # fmt: skip
    parsed = list(csv.reader(io.StringIO(review_items.to_csv(rows), newline="")))
    assert parsed[0] == list(CSV_COLUMNS)
    assert parsed[1][4] == '\'=HYPERLINK("http://x")' and parsed[1][5] == "'+Data-issues"
    assert parsed[1][8] == "'@2026"
    assert parsed[2][4] == "'-1 is fine\r\nnext line"  # a line break stays inside its cell
    assert [csv_cell(c) for c in rows[1]] == parsed[2]


# ---- stale decisions after a transcript changed ------------------------------------------------


@pytest.fixture
def editable(tmp_path: Path, coded_corpus: Path, coded_index: Settings, embedder):  # type: ignore[no-untyped-def]
    """A copy of the coded corpus (real files) and an index of it; vectors are reused from a
    copy of the session's coded index, so nothing is embedded again."""
    corpus = tmp_path / "corpus"
    shutil.copytree(coded_corpus, corpus, symlinks=False)
    idx = tmp_path / "index"
    shutil.copytree(coded_index.index_dir, idx, ignore=shutil.ignore_patterns("review"))
    s = Settings(corpus=corpus, index_dir=idx)
    report = build_index(s, embedder, progress=False)
    assert report.changed and not report.errors and report.embedded == 0
    return s


def test_decision_on_an_edited_transcript_is_stale_and_never_exported(
    editable: Settings, coded_review_index: tuple[Settings, float], embedder: Any
) -> None:
    _, mc = coded_review_index
    store = ReviewStore(Index.load(editable), mc)
    items = store.items(compute=True)
    target = items[0]
    other = next((it for it in items if it.interview_id != target.interview_id), None)
    accepted = [target.id] + ([other.id] if other else [])
    store.decide(accepted, "accepted")
    assert store.export_csv()[1] == len(accepted)

    # a researcher edits the transcript after indexing: its offsets no longer hold
    path = Path(store.index.interviews[target.interview_id].source)
    assert Path(editable.corpus) in path.parents and not path.is_symlink()
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(target.text[:40], "Edited: " + target.text[:40], 1), "utf-8")
    now = {it.id: it for it in store.items()}
    assert "was edited" in now[target.id].stale and now[target.id].status == "accepted"
    assert not now[target.id].shown
    if other:
        assert not now[other.id].stale  # other interviews are unaffected
    csv_text, n = store.export_csv()
    assert n == len(accepted) - 1 and target.text not in csv_text
    with pytest.raises(review.MlqiError, match="was edited"):
        store.decide([target.id], "rejected")
    listed = run("review", "list", "--index-dir", str(editable.index_dir),
                  "--min-confidence", str(mc), "--status", "stale", "--json")  # fmt: skip
    assert listed.exit_code == 0, listed.output
    assert [d["id"] for d in json.loads(listed.stdout)] == [
        it.id for it in store.items() if it.stale
    ]
    assert target.id in listed.stdout

    # re-indexed: the decision was made on other text, so it stays stale until decided again
    build_index(editable, embedder, progress=False)
    fresh = ReviewStore(Index.load(editable), mc)
    assert not fresh.cached()  # a new generation: suggestions are computed anew
    decided = {it.id: it for it in fresh.items()}
    assert "changed since this decision" in decided[target.id].stale
    out = Path(editable.index_dir).parent / "accepted.csv"
    result = run("review", "export", str(out), "--index-dir", str(editable.index_dir))
    assert result.exit_code == 0, result.output
    rows = parse_csv(out.read_text(encoding="utf-8"))
    assert target.id not in {suggestion_id(r["interview_id"], int(r["start"]), int(r["end"]),
                                           r["code"]) for r in rows}  # fmt: skip
    assert len(rows) == len(accepted) - 1
    assert "stale accepted left out" in result.stderr


# ---- read-only index ----------------------------------------------------------------------------


def test_read_only_index_dir_falls_back_to_the_state_dir(
    review_index: tuple[Settings, float], _state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, mc = review_index
    primary = Path(s.index_dir).resolve() / "review"
    real = review_files.writable_dir
    monkeypatch.setattr(review_files, "writable_dir", lambda p: p != primary and real(p))
    store = ReviewStore(Index.load(s), mc)
    assert store.dir == review_files.state_dir(Path(s.index_dir), None)
    assert _state_home in store.dir.parents
    assert store.cached()  # the index's own cache is still read
    it = store.items()[0]
    store.decide([it.id], "accepted")
    assert (store.dir / review.DECISIONS_FILE).is_file()
    assert not (primary / review.DECISIONS_FILE).exists()
    assert ReviewStore(Index.load(s), mc).accepted()[0].id == it.id


def test_cli_on_a_read_only_mounted_index(
    review_index: tuple[Settings, float], tmp_path: Path
) -> None:
    s, mc = review_index
    idx = Path(s.index_dir)
    if not can_mount_read_only(idx):
        pytest.skip("needs root and unshare to mount a read-only directory")
    state = tmp_path / "ro-state"
    exe = Path(sys.executable).with_name("mlqi-rag")
    out = tmp_path / "accepted.csv"
    first = ReviewStore(Index.load(s), mc).items()[0]
    opts = f"--index-dir {idx} --min-confidence {mc}"
    script = (
        f"{exe} review accept {first.id} {opts}; echo accept-rc=$?; "
        f"{exe} review list --status accepted --json {opts}; echo list-rc=$?; "
        f"{exe} review export {out} {opts}; echo export-rc=$?"
    )
    result = on_read_only_mount(
        idx, script, env={**os.environ, "XDG_STATE_HOME": str(state)}, timeout=600
    )
    for step in ("accept", "list", "export"):
        assert f"{step}-rc=0" in result.stdout, result.stderr
    assert "Traceback" not in result.stderr
    assert f'"id": "{first.id}"' in result.stdout
    saved = review_files.state_dir(idx, state) / review.DECISIONS_FILE
    assert saved.is_file() and first.id in {
        suggestion_id(d["interview_id"], d["start"], d["end"], d["code"])
        for d in json.loads(saved.read_text())["decisions"]
    }
    assert not (idx / "review" / review.DECISIONS_FILE).exists()
    [row] = parse_csv(out.read_text(encoding="utf-8"))
    assert row["coder"] == ACCEPTED_CODER and row["passage"] == first.text


# ---- the CLI ------------------------------------------------------------------------------------


def test_cli_list_accept_reject_export(
    review_index: tuple[Settings, float], tmp_path: Path
) -> None:
    s, mc = review_index
    opts = ["--index-dir", str(s.index_dir), "--min-confidence", str(mc)]
    listed = run("review", "list", *opts, "--json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert len(items) >= 4 and {d["status"] for d in items} == {"pending"}
    assert set(items[0]) >= {"id", "interview_id", "turn_index", "start", "end", "text", "code",
                             "confidence", "status", "examples"}  # fmt: skip
    text = run("review", "list", *opts)
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0].startswith(items[0]["id"] + "  ")
    assert f"{len(items)} of {len(items)} suggestion(s) shown" in text.stderr

    a, r = items[0], items[1]
    acc = run("review", "accept", a["id"], *opts)
    assert acc.exit_code == 0, acc.output
    assert acc.stdout.startswith(f"Accepted {a['id']}")
    assert run("review", "reject", r["id"], *opts).exit_code == 0
    accepted = json.loads(run("review", "list", *opts, "--status", "accepted", "--json").stdout)
    assert [d["id"] for d in accepted] == [a["id"]]
    assert accepted[0]["decided_at"]
    rejected = json.loads(run("review", "list", *opts, "--status", "rejected", "--json").stdout)
    assert [d["id"] for d in rejected] == [r["id"]]
    pending = json.loads(run("review", "list", *opts, "--status", "pending", "--json").stdout)
    assert len(pending) == len(items) - 2
    mine = json.loads(
        run(
            "review", "list", *opts, "--interview", a["interview_id"], "--code", a["code"], "--json"
        ).stdout
    )
    assert a["id"] in {d["id"] for d in mine}
    assert {(d["interview_id"], d["code"]) for d in mine} == {(a["interview_id"], a["code"])}

    out = tmp_path / "accepted.csv"
    exp = run("review", "export", str(out), *opts)
    assert exp.exit_code == 0, exp.output
    assert "Wrote 1 accepted suggestion(s)" in exp.stderr
    raw = out.read_bytes().decode("utf-8")
    assert raw.startswith("interview_id,turn_index,start,end,passage,code,coder,confidence,"
                          "decided_at\r\n")  # fmt: skip
    [row] = parse_csv(raw)
    assert (row["interview_id"], row["code"], row["coder"]) == (
        a["interview_id"], a["code"], "suggested-accepted")  # fmt: skip
    assert row["passage"] == a["text"] and row["decided_at"] == accepted[0]["decided_at"]
    assert (int(row["start"]), int(row["end"])) == (a["start"], a["end"])


def test_cli_errors_are_one_line(review_index: tuple[Settings, float], tmp_path: Path) -> None:
    s, mc = review_index
    opts = ["--index-dir", str(s.index_dir), "--min-confidence", str(mc)]
    one_line_error(run("review", "accept", "0123456789", *opts), "unknown suggestion id 0123456789")
    one_line_error(run("review", "reject", "zz", *opts), "unknown suggestion id zz")
    line = one_line_error(run("review", "list", *opts, "--interview", "999"), "999")
    assert "2, 7, 12, 32, 35" in line
    one_line_error(run("review", "list", *opts, "--code", "No-such-code"), "No-such-code")
    missing = str(tmp_path / "nowhere")
    for cmd in (["list"], ["accept", "x"], ["export", str(tmp_path / "x.csv")]):
        one_line_error(run("review", *cmd, "--index-dir", missing), "no index found", "nowhere")
    blocked = Path(s.index_dir) / "CURRENT" / "x.csv"  # under a file: cannot be written
    one_line_error(run("review", "export", str(blocked), *opts), "cannot write")


# ---- the app's views ----------------------------------------------------------------------------


def test_views_hatch_heatmap_tag_cards_and_escape(
    review_index: tuple[Settings, float], tmp_path: Path
) -> None:
    s, mc = review_index
    index = Index.load(s)
    pipe = SimpleNamespace(index=index, settings=s)
    assert render_review.suggestion_tags_html(pipe, _cite(index, "2", 0, 1)) == ""  # none yet
    store = review.attach(index, mc)
    assert render_review.store_of(pipe) is store and review.attached(index) is store
    items = store.items()

    # heatmap: a cell only suggestions fill is hatched, with a legend; researchers' cells not
    _, _, counts = render_corpus.code_matrix(pipe)
    only = {k: n for k, n in render_review.suggested_counts(items).items() if k not in counts}
    heat = render_review.heatmap_html(pipe)
    cell = r'class="heat heat-suggested" data-code="([^"]+)" data-interview="(\w+)" '
    hatched = re.findall(cell + r'data-count="0" data-suggested="(\d+)"', heat)
    assert {(html_unescape(c), i): int(n) for c, i, n in hatched} == only
    assert only, "some suggestion falls where no researcher applied its code"
    assert "heat-legend" in heat and "hatched" in heat
    assert "heat-suggested" not in render_corpus.code_heatmap_html(pipe)  # the plain one, unchanged

    # rejecting every suggestion of a hatched cell clears it
    (code, iv), _ = next(iter(only.items()))
    ids = [it.id for it in items if it.code == code and it.interview_id == iv]
    store.decide(ids, "rejected")
    assert (code, iv) not in render_review.suggested_counts(store.items())
    store.decide(ids, "pending")

    # an answer card on a suggested passage: a dashed suggestion tag, apart from researchers'
    it = items[0]
    card = render.evidence_card(pipe, _cite(index, it.interview_id, it.start, it.end))
    tags = re.search(r'<div class="ev-tags ev-suggested"[^>]*>(.*?)</div>', card, re.S)
    assert tags and f'data-code="{render.esc(it.code)}"' in tags.group(1)
    assert "suggested: " in tags.group(1) and 'data-status="pending"' in tags.group(1)
    store.decide([it.id], "rejected")
    card = render.evidence_card(pipe, _cite(index, it.interview_id, it.start, it.end))
    assert f'data-code="{render.esc(it.code)}" data-status' not in card
    store.decide([it.id], "accepted")
    card = render.evidence_card(pipe, _cite(index, it.interview_id, it.start, it.end))
    assert 'data-status="accepted"' in card

    # the review table: every row, status and examples; transcript text escaped
    table = render_review.table_html(store.items())
    assert table.count('<tr class="rv-row"') == len(items)
    assert f'data-id="{it.id}"' in table and "rv-accepted" in table
    example = review_items.Example("7", 3, "<img src=x>", "PO", 0.5)
    hostile = review_items.Item("x", "35", 1, 0, 5, "<script>alert(1)</script> {x} $y", "<b>c</b>",
                                0.5, (example,))  # fmt: skip
    evil = render_review.table_html([hostile])
    assert "<script>" not in evil and "<img" not in evil and "<b>c" not in evil
    assert "&lt;script&gt;" in evil and "&#123;x&#125;" in evil and "&#36;y" in evil
    summary = render_review.summary_html(store, store.items())
    assert 'data-accepted="1"' in summary and f'data-total="{len(items)}"' in summary

    path, n = render_review.write_accepted(store, tmp_path / "exports")
    assert re.fullmatch(r"mlqi-suggestions-accepted-\d{8}-\d{6}\.csv", path.name) and n == 1
    assert path.read_bytes().decode("utf-8") == store.export_csv()[0]
    second, _ = render_review.write_accepted(store, tmp_path / "exports")
    assert second != path  # never overwritten


def test_ui_builds_with_review_panel(review_index: tuple[Settings, float], tmp_path: Path) -> None:
    s, _ = review_index
    pipe = SimpleNamespace(index=Index.load(s), settings=s)
    demo = ui.build_ui(pipe, tmp_path / "exports")  # type: ignore[arg-type]
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"review-compute", "review-table", "review-select", "review-accept", "review-reject",
            "review-export", "review-file", "review-min-confidence"} <= ids  # fmt: skip
    assert ".heat.heat-suggested" in ui.CSS and ".ev-tag-suggested" in ui.CSS


def _cite(index: Index, iv_id: str, start: int, end: int) -> Citation:
    iv = index.interviews[iv_id]
    text = index.source_text(iv_id)
    turn = next((t for t in iv.turns if t.start <= start < t.end), iv.turns[0])
    return Citation(iv_id, iv.label, turn.speaker, turn.role, turn.index, text[start:end],
                    iv.source, start, end)  # fmt: skip


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_two_processes_deciding_keep_each_others_decisions(tmp_path: Path) -> None:
    """The app and the CLI hold their own ``DecisionFile`` on one folder: a write by one is
    read back by the other (the file changed on disk), and writes made under the lock on what
    was read fresh inside it lose nothing, three processes racing."""
    import multiprocessing

    from mlqi_rag.errors import MlqiError
    from mlqi_rag.review_decisions import DECISIONS_FILE, DecisionFile
    from mlqi_rag.review_files import ReviewFiles

    app = DecisionFile(ReviewFiles(tmp_path, tmp_path / "state"))
    cli = DecisionFile(ReviewFiles(tmp_path, tmp_path / "state"))
    assert app.read() == {} and cli.read() == {}
    _decide(app, 1)
    assert set(cli.read()) == {_decision(1).id}  # read back: the file changed

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_decide_often, args=(tmp_path, n)) for n in (2, 3, 4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert set(app.read()) == {_decision(n).id for n in (1, 2, 3, 4)}

    (tmp_path / "review" / DECISIONS_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(MlqiError, match=r"cannot read the review decisions in .*decisions\.json"):
        cli.read()


def _decision(n: int) -> Any:
    from mlqi_rag.review_items import Decision

    return Decision("7", n, n * 10, n * 10 + 5, "Data-missing", "t", 0.9, "accepted", "now", "s")


def _decide(f: Any, n: int) -> None:
    with f.locked() as d:
        current = f.read(fresh=True)
        current[_decision(n).id] = _decision(n)
        f.save(d, current)


def _decide_often(root: Path, n: int) -> None:
    from mlqi_rag.review_decisions import DecisionFile
    from mlqi_rag.review_files import ReviewFiles

    f = DecisionFile(ReviewFiles(root, root / "state"))
    for _ in range(20):  # many small writes, racing the other processes
        _decide(f, n)
