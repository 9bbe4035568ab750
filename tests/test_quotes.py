"""Quote verification: pure functions, tested on the real transcripts (and with hypothesis)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlqi_rag.quotes import citation, normalise, participant_blocks, recheck, verify_quote
from mlqi_rag.transcripts import parse_file
from mlqi_rag.types import Interview, Paragraph


@pytest.fixture(scope="module")
def iv32(seed_dir: Path) -> tuple[Interview, str]:
    iv = parse_file(seed_dir / "interview-32-PO.md")
    return iv, Path(iv.source).read_text(encoding="utf-8")


def _participant_paragraphs(iv: Interview) -> list[Paragraph]:
    return [p for t in iv.turns if t.role == "participant" for p in t.paragraphs]


def _interviewer_paragraphs(iv: Interview) -> list[Paragraph]:
    return [p for t in iv.turns if t.role == "interviewer" for p in t.paragraphs]


def test_exact_quote(iv32: tuple[Interview, str]) -> None:
    iv, src = iv32
    v = verify_quote("we just dropped the, uh, the record", iv, src)
    assert v.status == "exact" and src[v.start : v.end] == v.quote
    assert set(v.codes) == {"Data-missing-value-fix", "Data-missing-values"}


@pytest.mark.parametrize(
    "variant",
    [
        "We just dropped the the record",  # fillers dropped, case changed
        "we just dropped the — uh — the record",  # dashes
        "“we   just dropped the, uh,\nthe record”",  # curly quotes, whitespace
        "WE JUST DROPPED THE, UM, THE RECORD",
    ],
)
def test_normalised_quote_is_reanchored_to_source(
    iv32: tuple[Interview, str], variant: str
) -> None:
    iv, src = iv32
    v = verify_quote(variant, iv, src)
    assert v.status == "normalised"
    assert v.quote == "we just dropped the, uh, the record" == src[v.start : v.end]


def test_changed_word_is_rejected(iv32: tuple[Interview, str]) -> None:
    iv, src = iv32
    for bad in [
        "we just deleted the record",
        "we never dropped the record",
        "we just droped the record",
    ]:
        v = verify_quote(bad, iv, src)
        assert v.status == "rejected" and v.quote == ""


def test_interviewer_speech_is_not_a_finding(iv32: tuple[Interview, str]) -> None:
    iv, src = iv32
    v = verify_quote("How do you address this problem?", iv, src)
    assert v.status == "rejected" and "interviewer" in v.reason
    cite, _ = citation("How do you address this problem?", iv, src)
    assert cite is None


def test_quote_across_a_transcription_line_split(iv32: tuple[Interview, str]) -> None:
    iv, src = iv32
    quote = "some like, uh, Uh, very important feature are missing"
    v = verify_quote(quote, iv, src)
    assert v.ok and "\n\n" in v.quote and src[v.start : v.end] == v.quote
    # but never across a speaker heading
    heading_split = "number of rooms of a house. It's, uh, very important to create the price. Okay"
    assert not verify_quote(heading_split, iv, src).ok


def test_blocks_never_contain_headings_or_codes(iv32: tuple[Interview, str]) -> None:
    iv, src = iv32
    for b in participant_blocks(iv, src):
        text = src[b.start : b.end]
        assert "Interview" not in [ln.strip("#* ") for ln in text.splitlines()]
        assert "Data-missing-values" not in text.splitlines()


def test_wrong_interview_is_rejected(seed_dir: Path, iv32: tuple[Interview, str]) -> None:
    iv17 = parse_file(seed_dir / "interview-17-Rached.md")
    _, src32 = iv32
    src17 = Path(iv17.source).read_text(encoding="utf-8")
    assert not verify_quote("we just dropped the, uh, the record", iv17, src17).ok


def test_normalise_keeps_a_map_to_the_source() -> None:
    text = "Uh, it’s the—um—Record."
    norm, where = normalise(text)
    assert norm == "it's the record"
    assert len(where) == len(norm)
    for c, i in zip(norm, where, strict=True):
        if c != " ":
            assert text[i].lower().replace("’", "'") == c


def test_recheck_catches_a_stale_citation(iv32: tuple[Interview, str]) -> None:
    iv, src = iv32
    cite, _ = citation("we just dropped the, uh, the record", iv, src)
    assert cite is not None and recheck(cite, src)
    assert not recheck(cite, src[: cite.start] + "X" + src[cite.start + 1 :])


# ---- properties ---------------------------------------------------------------------------------

PROPS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPS
@given(data=st.data())
def test_any_substring_of_participant_speech_verifies(
    iv32: tuple[Interview, str], data: st.DataObject
) -> None:
    iv, src = iv32
    para = data.draw(st.sampled_from(_participant_paragraphs(iv)))
    i = data.draw(st.integers(0, len(para.text) - 1))
    j = data.draw(st.integers(i + 1, len(para.text)))
    quote = para.text[i:j]
    if not quote.strip().strip("\"“”'‘’").strip():
        return
    v = verify_quote(quote, iv, src, near=para.start + i)
    assert v.ok
    assert src[v.start : v.end] == v.quote
    assert v.quote in quote  # only surrounding whitespace/quote marks may be trimmed


@PROPS
@given(data=st.data())
def test_one_character_change_is_never_accepted_as_is(
    iv32: tuple[Interview, str], data: st.DataObject
) -> None:
    iv, src = iv32
    para = data.draw(st.sampled_from([p for p in _participant_paragraphs(iv) if len(p.text) > 30]))
    i = data.draw(st.integers(0, len(para.text) - 25))
    quote = para.text[i : i + data.draw(st.integers(20, min(120, len(para.text) - i)))]
    pos = data.draw(st.integers(0, len(quote) - 1))
    new_char = data.draw(st.sampled_from("xqzQ7 ,.-’"))
    changed = quote[:pos] + new_char + quote[pos + 1 :]
    v = verify_quote(changed, iv, src, near=para.start + i)
    if not v.ok:
        return
    # accepted only as exact source text: either the change left a real substring, or the
    # match was re-anchored to what the participant really said
    assert src[v.start : v.end] == v.quote
    assert v.status == "exact" or normalise(v.quote)[0] == normalise(changed.strip("\"“”'‘’ "))[0]
    if v.status == "exact":
        assert v.quote in src


@PROPS
@given(data=st.data())
def test_interviewer_text_is_rejected(iv32: tuple[Interview, str], data: st.DataObject) -> None:
    iv, src = iv32
    participant_text = "\n".join(p.text for p in _participant_paragraphs(iv))
    para = data.draw(st.sampled_from([p for p in _interviewer_paragraphs(iv) if len(p.text) > 40]))
    i = data.draw(st.integers(0, len(para.text) - 40))
    quote = para.text[i : i + 40]
    if normalise(quote)[0] in normalise(participant_text)[0]:
        return  # the participant happened to say the same words
    assert not verify_quote(quote, iv, src).ok
