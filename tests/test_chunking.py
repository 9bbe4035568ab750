from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlqi_rag.chunking import _SENTENCE_END, ChunkParams, chunk_interview, count_tokens
from mlqi_rag.cli import cli
from mlqi_rag.transcripts import parse_paths
from mlqi_rag.types import Chunk, Interview


@pytest.fixture(scope="module")
def seeds(seed_dir: Path) -> list[tuple[Interview, str]]:
    interviews, _ = parse_paths([seed_dir])
    return [(iv, Path(iv.source).read_text(encoding="utf-8")) for iv in interviews]


def _chunks(
    seeds: list[tuple[Interview, str]], params: ChunkParams
) -> list[tuple[Interview, str, list[Chunk]]]:
    return [(iv, src, chunk_interview(iv, src, params)) for iv, src in seeds]


@pytest.mark.parametrize("cap", [350, 80])
def test_chunks_are_exact_turn_text_under_the_cap(
    seeds: list[tuple[Interview, str]], cap: int
) -> None:
    params = ChunkParams(max_tokens=cap)
    for iv, src, chunks in _chunks(seeds, params):
        for c in chunks:
            assert c.text == "\n\n".join(src[s:e] for s, e in c.segments)
            turn = iv.turns[c.turn_index]
            assert (c.speaker, c.role) == (turn.speaker, turn.role)
            for s, e in c.segments:  # every segment lies inside one paragraph of its turn
                assert any(p.start <= s and e <= p.end for p in turn.paragraphs)
            if c.token_count > cap:  # only an unsplittable single sentence may exceed the cap
                assert len(c.segments) == 1 and not _SENTENCE_END.search(c.text)
            assert c.question not in c.text or not c.question


def test_every_substantive_turn_is_covered_exactly_once(seeds: list[tuple[Interview, str]]) -> None:
    params = ChunkParams()
    for iv, src, chunks in _chunks(seeds, params):
        for turn in iv.turns:
            spans = sorted(s for c in chunks if c.turn_index == turn.index for s in c.segments)
            if count_tokens(turn.text) < params.min_tokens and not turn.codes:
                assert spans == []  # tiny turns don't stand alone ...
                continue
            covered = "".join(src[s:e] for s, e in spans)
            assert covered.replace(" ", "") == "".join(p.text for p in turn.paragraphs).replace(
                " ", ""
            )
            for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False):
                assert e1 <= s2


def test_tiny_turns_join_the_next_exchange(seeds: list[tuple[Interview, str]]) -> None:
    params = ChunkParams()
    iv, src, chunks = next(x for x in _chunks(seeds, params) if x[0].id == "17")
    tiny = [t for t in iv.turns if count_tokens(t.text) < params.min_tokens and not t.codes]
    assert tiny
    for t in tiny:
        later = [c for c in chunks if c.turn_index > t.index]
        if later:
            assert t.paragraphs[-1].text in later[0].question


def test_question_is_context_not_quote(seeds: list[tuple[Interview, str]]) -> None:
    iv, src, chunks = next(x for x in _chunks(seeds, ChunkParams()) if x[0].id == "32")
    [c] = [c for c in chunks if "most of the times we just dropped the" in c.text]
    assert c.role == "participant"
    assert "How do you address this problem?" in c.question
    assert "How do you address this problem?" not in c.text
    assert c.embed_text.startswith(c.question) and c.embed_text.endswith(c.text)
    assert set(c.codes) == {"Data-missing-value-fix", "Data-missing-values"}
    assert c.label == "PO" and c.id.startswith("32:t")


def test_chunks_cli_json(seed_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["chunks", "--json", "--max-tokens", "200", str(seed_dir / "interview-31-Amin.md")]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(r["interview_id"] == "31" for r in rows)
    keys = {
        "id",
        "interview_id",
        "label",
        "turn_index",
        "speaker",
        "role",
        "codes",
        "source",
        "start",
        "end",
        "token_count",
        "question",
        "text",
    }
    assert keys <= rows[0].keys()
    src = Path(rows[0]["source"]).read_text(encoding="utf-8")
    for r in rows:
        assert src[r["start"] : r["end"]].startswith(r["text"].split("\n\n")[0])
