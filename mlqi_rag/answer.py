"""Answers built from the evidence scan: retrieve → scan → choose quotes → write → verify.

Every engine shares the flow in ``BaseEngine``: retrieval (for the LLM's excerpts and the query
vector), the corpus-wide scan (which interviews discuss the question), quotes chosen and verified
from the scan (``evidence``), then the write-up. Abstention happens before any LLM call: when a
named tool or method occurs in no transcript ("No interview mentions Snorkel"), or when no
interview discusses the question. ``extractive`` needs no LLM; the LLM engines live in ``llm``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .calibration import COUNT_LEVEL
from .errors import ConfigError, SourceChangedError
from .evidence import Group, Quote, closest_quotes, group_heading, group_quotes, quotes_for
from .quotes import recheck
from .retrieval import Filters, RetrievalResult
from .scan_result import Scan
from .types import Answer, Citation, Hit, interview_order

NOT_IN_INTERVIEWS = "Not in the interviews"


def inline(quote: str) -> str:
    """A quote on one line for running text (the citation keeps the exact source text)."""
    return " ".join(quote.split())


def _ids(ids: list[str]) -> str:
    return ", ".join(ids)


def coverage_line(scan: Scan) -> str:
    """What the counts count: interviews (of all searched) that discuss it, and that touch it."""
    n = len(scan.interviews)
    d = [e.interview_id for e in scan.discussing]
    t = [e.interview_id for e in scan.touching]
    verb = "discusses" if len(d) == 1 else "discuss"
    line = f"{len(d)} of {n} interviews {verb} this{range_note(scan.count_range)}: {_ids(d)}."
    if t:
        line += f" {len(t)} more touch{'es' if len(t) == 1 else ''} on it: {_ids(t)}."
    return line


def range_note(count_range: Sequence[int] | None) -> str:
    """How sure the count of a "which interviewees…" list is: " (80% range 4–9)"."""
    if not count_range or count_range[0] == count_range[1]:
        return ""
    return f" ({round(100 * COUNT_LEVEL)}% range {count_range[0]}–{count_range[1]})"


def language_note(scan: Scan) -> str:
    """Never silent about the interviews the English model reads less well."""
    found = {e.interview_id for e in scan.discussing}
    missed = [iv for iv in scan.other_language if iv not in found]
    if not missed:
        return ""
    return (
        f"Note: interview {_ids(missed)} is not in English; it was searched through translated "
        "keywords and may be under-counted."
    )


def heard_note(scan: Scan) -> str:
    """Which listed interviews say the name only as the transcript misheard it, and how: the
    reader decides whether "sharp values" is SHAP."""
    by_name: dict[str, list[str]] = {}
    for name, iv, form in scan.heard_as:
        by_name.setdefault(name, []).append(f"“{form}” (interview {iv})")
    if not by_name:
        return ""
    parts = [f"{name} as {', '.join(forms)}" for name, forms in by_name.items()]
    return f"Counted as the name misheard in the transcript: {'; '.join(parts)}."


def outside_note(scan: Scan) -> str:
    """Where else a filtered search's names are said: "Outside this search, LightGBM is
    mentioned in interviews 8 and 13." """
    parts = [
        f"{name} is mentioned in interview{'s' if len(ivs) > 1 else ''} {_ids(list(ivs))}"
        for name, ivs in scan.said_outside
    ]
    return f"Outside this search, {'; '.join(parts)}." if parts else ""


def _format_citation(c: Citation) -> str:
    label = f" ({c.label})" if c.label else ""
    codes = f" [{', '.join(c.codes)}]" if c.codes else ""
    return f"Interview {c.interview_id}{label}, turn {c.turn_index}{codes}: “{inline(c.quote)}”"


def _bullets(quotes: tuple[Quote, ...] | list[Quote]) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for q in quotes:
        c = q.citation
        if c.interview_id in seen:
            lines.append(f"  - turn {c.turn_index}: “{inline(c.quote)}”")
        else:
            lines.append(f"- {_format_citation(c)}")
            seen.add(c.interview_id)
    return lines


def render_extractive(scan: Scan, groups: list[Group]) -> str:
    lines = [coverage_line(scan), ""]
    for i, g in enumerate(groups):
        if g.label:
            kind, count = group_heading(g.source, len({q.citation.interview_id for q in g.quotes}))
            if i:  # a blank line ends the list above (Markdown would take the header into it)
                lines.append("")
            lines.append(f"{kind} {g.label} ({count}):")
        lines += _bullets(g.quotes)
    if note := heard_note(scan):
        lines += ["", note]
    if scan.absent_names:  # "TensorFlow, Keras or PyTorch": answered for the others
        lines += ["", f"No interview mentions {' or '.join(scan.absent_names)}."]
    if scan.absent_words:
        lines += [
            "",
            f"No interview uses the word{'s' if len(scan.absent_words) > 1 else ''} "
            f"{', '.join(scan.absent_words)}.",
        ]
    if note := language_note(scan):
        lines += ["", note]
    if note := outside_note(scan):
        lines += ["", note]
    return "\n".join(lines)


def render_abstention(
    closest: list[Citation],
    absent: tuple[str, ...] = (),
    outside: str = "",
    searched: Sequence[str] | None = None,
) -> str:
    """``searched``: the interviews a filtered search read (None: the whole corpus), named so
    that "not in the interviews" is not read as a finding about the study."""
    if absent:
        lines = [f"No interview mentions {' or '.join(absent)}."]
    elif searched is not None and not searched:
        lines = [f"{NOT_IN_INTERVIEWS}: no passage matches the filters."]
    elif searched is not None:
        which = f" ({_ids(sorted(searched, key=interview_order))})" if len(searched) <= 10 else ""
        whom = "the interview" if len(searched) == 1 else f"the {len(searched)} interviews"
        verb = "doesn't" if len(searched) == 1 else "don't"
        lines = [f"{NOT_IN_INTERVIEWS}: {whom} searched{which} {verb} discuss this."]
    else:
        lines = [f"{NOT_IN_INTERVIEWS}: the interviews don't discuss this."]
    if outside:
        lines += ["", outside]
    if closest:
        lines += ["", "Closest passages (closest, not an answer):"]
        lines += [f"- {_format_citation(c)}" for c in closest]
    return "\n".join(lines)


def with_warnings(text: str, warnings: tuple[str, ...]) -> str:
    """Say in the answer itself (CLI and app alike) which sources could not be quoted."""
    if not warnings:
        return text
    return text + "\n\n" + "\n".join(f"Warning: {w}" for w in warnings)


@dataclass(frozen=True)
class Draft:
    """Everything an engine writes from: the retrieval, the scan and the verified quotes."""

    result: RetrievalResult
    scan: Scan
    quotes: tuple[Quote, ...]
    groups: list[Group]
    meta: dict[str, Any]
    t0: float
    index: Any = field(repr=False, default=None)

    def excerpts(self) -> tuple[Hit, ...]:
        """Turns holding the chosen quotes first, then the rest of the retrieved passages.

        Every interview's best quote comes before any interview's second one: an LLM engine's
        token budget then reaches more interviews, and a "which interviewees…" answer needs all
        of them. On the dev questions of the 36 transcripts, the interviews that discuss it
        found in the first ten excerpts rose 0.765 -> 0.800 (first five 0.659 -> 0.714), gold
        quotes in them stayed at 0.643 (within 4,000 characters 0.535 -> 0.532); on the seeds'
        dev questions none of these fell."""
        nth: dict[str, int] = {}
        ranked = []
        for n, q in enumerate(self.quotes):
            iv = q.citation.interview_id
            ranked.append((nth.get(iv, 0), n, q))
            nth[iv] = nth.get(iv, 0) + 1
        first: dict[str, Hit] = {}
        for _, _, q in sorted(ranked, key=lambda t: t[:2]):
            chunk = self.index.chunks[int(self.index.spans.chunk[q.row])]
            first.setdefault(chunk.id, Hit(chunk=chunk, score=q.score, dense=q.score))
        rest = [h for h in self.result.hits if h.chunk.id not in first]
        return (*first.values(), *rest)


def _still_exact(index: Any, c: Citation) -> bool:
    try:
        return recheck(c, index.source_text(c.interview_id))
    except SourceChangedError:
        return False


class BaseEngine:
    """Retrieval, the scan, quote choice and abstention shared by every engine."""

    name = "base"

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    @property
    def settings(self) -> Any:
        return self.pipeline.settings

    def answer(self, question: str, filters: Filters | None = None, k: int | None = None) -> Answer:
        final: Answer | None = None
        for item in self.stream(question, filters, k):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def stream(
        self, question: str, filters: Filters | None = None, k: int | None = None
    ) -> Iterator[str | Answer]:
        """Yield text as it is written, then the verified ``Answer`` (always last)."""
        t0 = time.perf_counter()
        index = self.pipeline.index
        result = self.pipeline.retriever.retrieve(question, k=k, filters=filters)
        scan = self.pipeline.scanner.scan(result, result.query_vector)
        # A transcript edited, moved or deleted since indexing can't be quoted: its offsets
        # would cut the new text anywhere. It is left out, and the answer says so.
        problems = {
            e.interview_id: msg
            for e in scan.interviews
            if e.verdict != "silent" and (msg := index.source_problem(e.interview_id))
        }
        if problems:
            result = replace(
                result,
                hits=tuple(h for h in result.hits if h.chunk.interview_id not in problems),
                warnings=tuple(problems.values()),
            )
            # The count's range was for the list before these were left out: it no longer
            # holds the count shown, so it is not shown.
            scan = replace(
                scan,
                interviews=tuple(e for e in scan.interviews if e.interview_id not in problems),
                count_range=None,
            )
        meta = {
            **result.settings,
            "scan_model": scan.model,
            "unknown_terms": list(result.unknown_terms),
            "codes_named": list(result.matched_codes),
            "absent_names": list(scan.absent_names),
            "heard_as": [list(h) for h in scan.heard_as],
            "said_outside": {name: list(ivs) for name, ivs in scan.said_outside},
            "p_out_of_scope": round(scan.p_out_of_scope, 4),
        }
        quotes = (
            [
                q
                for e in scan.discussing
                for q in quotes_for(index, e, self.pipeline.scanner.quote_weights.margin)
            ]
            if not scan.out_of_scope
            else []
        )
        if not quotes:
            closest = closest_quotes(index, scan)
            absent = scan.absent_names if scan.ruled_out_by_name else ()
            filtered = len(result.searched) < len(index.interviews)
            text = render_abstention(
                closest, absent, outside_note(scan), result.searched if filtered else None
            )
            text = with_warnings(text, result.warnings)
            yield text
            yield Answer(
                question=result.question,
                text=text,
                citations=(),
                abstained=True,
                engine=self.name,
                settings={**meta, "seconds": time.perf_counter() - t0},
                closest=tuple(closest),
                interviews_searched=result.searched,
                warnings=result.warnings,
                coverage={
                    **{k: v for k, v in scan.coverage().items() if k != "range"},
                    "interviews": [],
                    "count": 0,
                },
                evidence=tuple(e.to_dict() for e in scan.interviews),
                passages=result.hits,
            )
            return
        groups = group_quotes(index, quotes, result.matched_codes, result.question)
        draft = Draft(result, scan, tuple(quotes), groups, meta, t0, index)
        yield from self.write(draft)

    def write(self, draft: Draft) -> Iterator[str | Answer]:
        raise NotImplementedError

    def finish(
        self,
        draft: Draft,
        text: str,
        citations: list[Citation],
        rejected: int,
        meta: dict[str, Any],
        fallback: bool = False,
    ) -> Answer:
        shown = [c for c in citations if _still_exact(self.pipeline.index, c)]
        result = draft.result
        return Answer(
            question=result.question,
            text=with_warnings(text, result.warnings),
            citations=tuple(shown),
            abstained=False,
            engine=self.name,
            settings={**meta, "seconds": time.perf_counter() - draft.t0},
            rejected_quotes=rejected + len(citations) - len(shown),
            interviews_searched=result.searched,
            fallback=fallback,
            warnings=result.warnings,
            coverage=draft.scan.coverage(),
            evidence=tuple(e.to_dict() for e in draft.scan.interviews),
            passages=draft.excerpts(),
            groups=groups_of(draft.groups, shown),
        )


def groups_of(groups: Sequence[Group], citations: Sequence[Citation]) -> tuple[dict[str, Any], ...]:
    """The answer's groups over the citations it shows: an LLM engine cites some of the quotes
    and a quote that no longer verifies is dropped, so a group keeps only what is shown."""
    where = {(c.interview_id, c.start, c.end): i for i, c in enumerate(citations)}
    out = []
    for g in groups:
        positions = [
            where[key]
            for q in g.quotes
            if (key := (q.citation.interview_id, q.citation.start, q.citation.end)) in where
        ]
        if positions:
            out.append(
                {
                    "label": g.label,
                    "source": g.source,
                    "interviews": list(dict.fromkeys(citations[i].interview_id for i in positions)),
                    "quotes": positions,
                }
            )
    return tuple(out)


class ExtractiveEngine(BaseEngine):
    """No LLM: each discussing interview's best verbatim sentences, grouped by practice."""

    name = "extractive"

    def write(self, draft: Draft) -> Iterator[str | Answer]:
        text = render_extractive(draft.scan, draft.groups)
        cites = [q.citation for g in draft.groups for q in g.quotes]
        answer = self.finish(draft, text, cites, 0, draft.meta)
        yield from answer.text.splitlines(keepends=True)
        yield answer


def _engines() -> dict[str, type[BaseEngine]]:
    from .llm import LocalEngine, OpenAIEngine

    return {"extractive": ExtractiveEngine, "local": LocalEngine, "openai": OpenAIEngine}


def get_engine(name: str, pipeline: Any) -> BaseEngine:
    engines = _engines()
    try:
        cls = engines[name]
    except KeyError:
        raise ConfigError(f"unknown engine {name!r}; choose one of: {', '.join(engines)}") from None
    return cls(pipeline)


def available_engines(settings: Any) -> list[str]:
    """Engines that are configured here (for the app's engine picker)."""
    names = ["extractive"]
    if settings.llm_model and Path(settings.llm_model).is_file():
        names.append("local")
    if settings.llm_base_url:
        names.append("openai")
    return names
