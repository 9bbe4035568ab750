"""The review's values: a researcher's decision about a suggested code, the item a reviewer sees,
and the pure functions over items (filters, counts, the accepted-codes CSV). ``review`` keeps
them on disk; the CLI, the app and the renderers all read them from here."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SourceChangedError
from .export import csv_cell
from .index import Index
from .suggest import Example, Suggestion, passage_fields

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
STATUSES = (PENDING, ACCEPTED, REJECTED)
STALE = "stale"  # a filter, not a status: an item of any status can be stale
ACCEPTED_CODER = "suggested-accepted"
CSV_COLUMNS = (
    "interview_id",
    "turn_index",
    "start",
    "end",
    "passage",
    "code",
    "coder",
    "confidence",
    "decided_at",
)
ID_CHARS = 10


def suggestion_id(interview_id: str, start: int, end: int, code: str) -> str:
    """Stable id of a suggestion: the same passage and code always get the same id."""
    key = f"{interview_id}:{start}:{end}:{code}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:ID_CHARS]


@dataclass(frozen=True)
class Decision:
    """What a researcher decided about one suggestion, on which version of the transcript."""

    interview_id: str
    turn_index: int
    start: int
    end: int
    code: str
    text: str
    confidence: float
    status: str
    decided_at: str
    source_sha256: str

    @property
    def id(self) -> str:
        return suggestion_id(self.interview_id, self.start, self.end, self.code)

    def to_dict(self) -> dict[str, Any]:
        return {
            "interview_id": self.interview_id,
            "turn_index": self.turn_index,
            "start": self.start,
            "end": self.end,
            "code": self.code,
            "text": self.text,
            "confidence": self.confidence,
            "status": self.status,
            "decided_at": self.decided_at,
            "source_sha256": self.source_sha256,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        status = str(d["status"])
        if status not in (ACCEPTED, REJECTED):
            raise ValueError(f"unknown status {status!r}")
        return cls(
            interview_id=str(d["interview_id"]),
            turn_index=int(d["turn_index"]),
            start=int(d["start"]),
            end=int(d["end"]),
            code=str(d["code"]),
            text=str(d.get("text", "")),
            confidence=float(d.get("confidence", 0.0)),
            status=status,
            decided_at=str(d.get("decided_at", "")),
            source_sha256=str(d["source_sha256"]),
        )


@dataclass(frozen=True)
class Item:
    """A suggestion as the reviewer sees it: the current suggestion (or, when the model no
    longer makes it, the decision alone) with its status, and why it is stale ("" if not)."""

    id: str
    interview_id: str
    turn_index: int
    start: int
    end: int
    text: str
    code: str
    confidence: float
    examples: tuple[Example, ...] = ()
    status: str = PENDING
    decided_at: str = ""
    stale: str = ""
    suggested: bool = True  # False: only the decision remains (the model no longer suggests it)

    @property
    def shown(self) -> bool:
        """Whether it is shown as a suggestion (heatmap, cards): pending or accepted, not stale."""
        return self.status != REJECTED and not self.stale

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **passage_fields(self),
            "status": self.status,
            "decided_at": self.decided_at or None,
            "stale": self.stale or None,
            "suggested": self.suggested,
            "examples": [e.to_dict() for e in self.examples],
        }


def suggestion_from_dict(d: dict[str, Any]) -> Suggestion:
    return Suggestion(
        interview_id=str(d["interview_id"]),
        turn_index=int(d["turn_index"]),
        start=int(d["start"]),
        end=int(d["end"]),
        text=str(d["text"]),
        code=str(d["code"]),
        confidence=float(d["confidence"]),
        examples=tuple(
            Example(
                interview_id=str(e["interview_id"]),
                turn_index=int(e["turn_index"]),
                text=str(e["text"]),
                coder=str(e["coder"]),
                similarity=float(e["similarity"]),
            )
            for e in d.get("examples", ())
        ),
    )


def filter_items(
    items: Iterable[Item],
    status: str | None = None,
    interview: str | None = None,
    code: str | None = None,
) -> list[Item]:
    """``status`` is one of ``STATUSES`` or ``"stale"``; empty / None = any."""
    out = []
    for it in items:
        if interview and it.interview_id != interview:
            continue
        if code and it.code != code:
            continue
        if status == STALE and not it.stale:
            continue
        if status in STATUSES and it.status != status:
            continue
        out.append(it)
    return out


def counts(items: Iterable[Item]) -> dict[str, int]:
    """How many items per status, and how many are stale."""
    out = dict.fromkeys((*STATUSES, STALE), 0)
    for it in items:
        out[it.status] += 1
        out[STALE] += bool(it.stale)
    return out


def csv_rows(index: Index, items: Iterable[Item]) -> list[list[object]]:
    """The accepted, current items as CSV rows (coder ``suggested-accepted``): the passage is
    read from the transcript now, so a row is exported only when its text still stands there."""
    rows: list[list[object]] = []
    for it in items:
        if it.status != ACCEPTED or it.stale:
            continue
        try:
            passage = index.source_text(it.interview_id)[it.start : it.end]
        except (KeyError, SourceChangedError):
            continue
        if passage != it.text:  # offsets no longer hold (cannot happen with the same sha256)
            continue
        rows.append(
            [
                it.interview_id,
                it.turn_index,
                it.start,
                it.end,
                passage,
                it.code,
                ACCEPTED_CODER,
                f"{it.confidence:.4f}",
                it.decided_at,
            ]
        )
    return rows


def to_csv(rows: Iterable[Sequence[object]]) -> str:
    """``CSV_COLUMNS`` then ``rows``; a cell a spreadsheet would run as a formula is
    neutralised (``export.csv_cell``)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    return buf.getvalue()
