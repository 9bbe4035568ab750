"""Immutable values passed between pipeline stages.

Frozen dataclasses rather than pydantic models: they are hashable, cheap, and nobody can edit a
quote after it was verified. ``to_dict`` gives the JSON shape the CLI, the app and the evaluator
share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["participant", "interviewer"]


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of speech; ``source_text[start:end] == text`` always holds.

    ``codes`` are the codes a reader sees (moderation where it exists, else every coder's);
    ``coded`` keeps each coder's own codes, ``(coder, codes)`` per coder who coded this text, so
    agreement can be measured and a filter can pick one coder.
    """

    text: str
    start: int
    end: int
    codes: tuple[str, ...] = ()
    coded: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def codes_by(self, coder: str) -> tuple[str, ...]:
        return next((codes for name, codes in self.coded if name == coder), ())


@dataclass(frozen=True)
class Turn:
    """Consecutive speech of one speaker (transcription splits are merged back)."""

    index: int
    speaker: str
    role: Role
    paragraphs: tuple[Paragraph, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for p in self.paragraphs for c in p.codes))

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.paragraphs)

    @property
    def start(self) -> int:
        return self.paragraphs[0].start

    @property
    def end(self) -> int:
        return self.paragraphs[-1].end

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "speaker": self.speaker,
            "role": self.role,
            "codes": list(self.codes),
            "start": self.start,
            "end": self.end,
            "paragraphs": [
                {
                    "text": p.text,
                    "start": p.start,
                    "end": p.end,
                    "codes": list(p.codes),
                    "coded": {coder: list(codes) for coder, codes in p.coded},
                }
                for p in self.paragraphs
            ],
        }


def interview_order(interview_id: str) -> tuple[int, int | str]:
    """Sort key for interview ids as a researcher lists them: 2 before 10, then any names."""
    return (0, int(interview_id)) if interview_id.isdigit() else (1, interview_id)


@dataclass(frozen=True)
class Interview:
    id: str
    label: str
    source: str
    language: str
    format: str
    sha256: str
    turns: tuple[Turn, ...]
    coders: tuple[str, ...] = ()  # who coded the copies merged into this interview
    copies: tuple[str, ...] = ()  # the other files (coded copies) merged into this interview

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for t in self.turns for c in t.codes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "source": self.source,
            "language": self.language,
            "format": self.format,
            "sha256": self.sha256,
            "coders": list(self.coders),
            "copies": list(self.copies),
            "codes": list(self.codes),
            "turns": [t.to_dict() for t in self.turns],
        }


@dataclass(frozen=True)
class Chunk:
    """A retrievable unit: (part of) one turn, plus the question it answers as context.

    ``text`` is what may be quoted; ``question`` only helps retrieval and is never quoted.
    ``segments`` are the exact source spans that ``text`` is made of (joined by blank lines).
    """

    id: str
    interview_id: str
    label: str
    turn_index: int
    speaker: str
    role: Role
    text: str
    question: str
    codes: tuple[str, ...]
    source: str
    segments: tuple[tuple[int, int], ...]
    token_count: int
    # each coder's own codes on the chunk's paragraphs, ``(coder, codes)`` per coder
    coded: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def codes_by(self, coder: str) -> tuple[str, ...]:
        return next((codes for name, codes in self.coded if name == coder), ())

    @property
    def start(self) -> int:
        return self.segments[0][0]

    @property
    def end(self) -> int:
        return self.segments[-1][1]

    @property
    def embed_text(self) -> str:
        """What gets embedded and keyword-indexed: the question gives a short answer its topic."""
        return f"{self.question}\n\n{self.text}" if self.question else self.text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["codes"] = list(self.codes)
        d["coded"] = {coder: list(codes) for coder, codes in self.coded}
        d["segments"] = [list(s) for s in self.segments]
        d["start"], d["end"] = self.start, self.end
        return d


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score (and, for display, its neighbouring turns)."""

    chunk: Chunk
    score: float
    dense: float = 0.0
    rank: int = 0
    context: tuple[Turn, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "chunk_id": c.id,
            "interview_id": c.interview_id,
            "label": c.label,
            "turn_index": c.turn_index,
            "speaker": c.speaker,
            "role": c.role,
            "text": c.text,
            "question_context": c.question,
            "codes": list(c.codes),
            "source": c.source,
            "start": c.start,
            "end": c.end,
            "score": round(self.score, 6),
            "similarity": round(self.dense, 6),
        }


@dataclass(frozen=True)
class Citation:
    """A verified quote: ``source_text[start:end] == quote``."""

    interview_id: str
    label: str
    speaker: str
    role: Role
    turn_index: int
    quote: str
    source: str
    start: int
    end: int
    codes: tuple[str, ...] = ()
    verified: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["codes"] = list(self.codes)
        return d


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    citations: tuple[Citation, ...]
    abstained: bool
    engine: str
    settings: dict[str, Any] = field(default_factory=dict)
    closest: tuple[Citation, ...] = ()
    rejected_quotes: int = 0
    interviews_searched: tuple[str, ...] = ()
    fallback: bool = False
    warnings: tuple[str, ...] = ()  # e.g. a transcript edited since indexing: not quoted
    # interviews that discuss / touch on the question, of all searched (the evidence scan)
    coverage: dict[str, Any] = field(default_factory=dict)
    evidence: tuple[dict[str, Any], ...] = ()  # per interview: verdict, probabilities, features
    # the passages the answer read, in its order: the turns of its quotes (strongest interview
    # first), then the rest of the retrieved ones; an abstention's are the retrieved ones
    passages: tuple[Hit, ...] = ()
    # the practices the quotes fall into: label, what it comes from ("codes" or "cluster"; "all"
    # when ungrouped), its interviews, and the positions of its quotes in ``citations``
    groups: tuple[dict[str, Any], ...] = ()

    @property
    def interviews_cited(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.interview_id for c in self.citations))

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "engine": self.engine,
            "citations": [c.to_dict() for c in self.citations],
            "closest": [c.to_dict() for c in self.closest],
            "rejected_quotes": self.rejected_quotes,
            "interviews_searched": list(self.interviews_searched),
            "fallback": self.fallback,
            "warnings": list(self.warnings),
            "coverage": self.coverage,
            "evidence": list(self.evidence),
            "groups": list(self.groups),
            "passages": [
                {
                    "interview_id": h.chunk.interview_id,
                    "turn_index": h.chunk.turn_index,
                    "chunk_id": h.chunk.id,
                }
                for h in self.passages
            ],
            "settings": self.settings,
        }
