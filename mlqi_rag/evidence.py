"""From a scan to quotes: each discussing interview's best verified quote(s), grouped by practice.

The scan says which interviews discuss the question and ranks each one's spans; this stage turns
that into citations (every one verified against the source, and capped in length) and, when the
evidence splits into distinct practices, into groups: by the researchers' codes when the quoted
passages carry them, otherwise by clustering the quotes' vectors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from . import grouping
from .errors import SourceChangedError
from .index import Index
from .quote_choice import SHIPPED
from .quotes import citation
from .scan_result import InterviewEvidence, Scan
from .types import Citation

MIN_GROUPING = 3  # fewer quoting interviews than this are listed, not grouped


@dataclass(frozen=True)
class Quote:
    citation: Citation
    row: int  # span table row
    score: float


@dataclass(frozen=True)
class Group:
    """One practice: its label, and what it was derived from (codes or a cluster)."""

    label: str
    source: str  # "codes" | "cluster" | "others" | "all"
    quotes: tuple[Quote, ...]


def group_heading(source: str, n_interviews: int) -> tuple[str, str]:
    """What a group's heading says around its label, the same in the answer's text and the
    app's panel: its kind ("code" when the researchers' codes made the group, "theme" when
    clusters did, "other" for the passages of one interviewee each) and its interview count."""
    kind = {"codes": "code", "others": "other"}.get(source, "theme")
    return kind, f"{n_interviews} interview{'s' if n_interviews != 1 else ''}"


def cite_row(index: Index, row: int) -> Citation | None:
    """A verified citation for one span of the index (None if it no longer verifies)."""
    chunk = index.chunks[int(index.spans.chunk[row])]
    start, end = int(index.spans.start[row]), int(index.spans.end[row])
    try:
        source = index.source_text(chunk.interview_id)
    except SourceChangedError:
        return None
    iv = index.interviews[chunk.interview_id]
    cite, _ = citation(source[start:end], iv, source, near=start)
    return cite


def _overlaps(a: Citation, b: Citation) -> bool:
    return a.interview_id == b.interview_id and a.start < b.end and b.start < a.end


def quotes_for(
    index: Index,
    evidence: InterviewEvidence,
    margin: float = SHIPPED.margin,
    per_interview: int = 2,
) -> list[Quote]:
    """The interview's best span, plus a second one when it scores within ``margin`` of it
    (``quote_choice.QuoteWeights.margin``)."""
    out: list[Quote] = []
    if not evidence.span_scores:
        return out
    best = evidence.span_scores[0]
    for row, score in zip(evidence.spans, evidence.span_scores, strict=True):
        if len(out) == per_interview or score < best - margin:
            break
        c = cite_row(index, row)
        if c is not None and not any(_overlaps(c, q.citation) for q in out):
            out.append(Quote(c, row, score))
    return out


def closest_quotes(index: Index, scan: Scan, n: int = 3) -> list[Citation]:
    """The strongest spans anywhere, for an abstention's "closest, not an answer"."""
    ranked = sorted(
        ((s, r) for e in scan.interviews for r, s in zip(e.spans, e.span_scores, strict=True)),
        reverse=True,
    )
    out: list[Citation] = []
    for _, row in ranked:
        c = cite_row(index, row)
        if c is not None and not any(_overlaps(c, o) for o in out):
            out.append(c)
        if len(out) == n:
            break
    return out


def group_quotes(
    index: Index, quotes: Sequence[Quote], named_codes: Sequence[str], question: str = ""
) -> list[Group]:
    """Group quotes into practices: by code when every quote carries a code the question did
    not name (a code tells what a passage says), else by clustering them as fitted on the
    researchers' codes (``grouping``), each cluster named by its distinctive words."""
    interviews = {q.citation.interview_id for q in quotes}
    if len(interviews) < MIN_GROUPING:
        return [Group("", "all", tuple(quotes))]
    named = set(named_codes)
    specific = [tuple(c for c in q.citation.codes if c not in named) for q in quotes]
    if all(specific):
        by_code: dict[str, list[Quote]] = {}
        counts = Counter(c for codes in specific for c in codes)
        for q, codes in zip(quotes, specific, strict=True):
            key = max(codes, key=lambda c: (counts[c], c))
            by_code.setdefault(key, []).append(q)
        return _ordered([Group(k, "codes", tuple(v)) for k, v in by_code.items()])
    labels = grouping.cluster_quotes(index, [q.row for q in quotes])
    clusters: dict[int, list[Quote]] = {}
    for q, lab in zip(quotes, labels, strict=True):
        clusters.setdefault(int(lab), []).append(q)
    # A theme is what several interviewees say: a cluster of one interviewee's quotes (two
    # thirds of the clusters on the 36 transcripts' dev questions) is listed with the others
    # like it, after the themes, not named as a practice of its own.
    themes = {k: v for k, v in clusters.items() if len({q.citation.interview_id for q in v}) > 1}
    if len(clusters) == 1 or not themes:
        return [Group("", "all", tuple(quotes))]
    names = grouping.label_clusters(
        {k: interview_texts(v) for k, v in clusters.items()},
        question,
        index.document_frequency,
        languages={index.interviews[q.citation.interview_id].language for q in quotes},
    )
    groups = _ordered([Group(names[k], "cluster", tuple(v)) for k, v in themes.items()])
    rest = tuple(
        sorted(
            (q for k, v in clusters.items() if k not in themes for q in v), key=lambda q: -q.score
        )
    )
    # the clusters that only one interviewee's quotes make up: not themes of the study
    return groups + [Group("passages", "others", rest)] if rest else groups


def interview_texts(quotes: Sequence[Quote]) -> list[str]:
    """A group's quotes joined per interview, for naming it: a word one interviewee repeats in
    two quotes ("funny", twice in interview 40 on Docker) is theirs, not the group's, which
    is counted in interviewees, as findings are."""
    texts: dict[str, list[str]] = {}
    for q in quotes:
        texts.setdefault(q.citation.interview_id, []).append(q.citation.quote)
    return [" ".join(t) for t in texts.values()]


def _ordered(groups: list[Group]) -> list[Group]:
    return sorted(
        groups,
        key=lambda g: (
            -len({q.citation.interview_id for q in g.quotes}),
            -max(q.score for q in g.quotes),
        ),
    )
