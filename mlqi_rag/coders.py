"""One interview, several coded copies: put every coder's codes on one canonical text.

Researchers code the same interview independently (a Delve print per coder), then reconcile
("moderation"). The copies are the same speech, re-wrapped, re-paragraphed and lightly edited
(HTML printing collapses double spaces; a paragraph can be merged or split at a page break), so
codes are carried over by aligning *words*, not lines: both texts become lower-case word
sequences, ``difflib`` finds the common runs, and a copy paragraph's codes go to every canonical
paragraph that holds a real share of its matched words. One copy paragraph may so land on
several canonical paragraphs, and several copy paragraphs on one.

Rules, chosen so that a reader and the agreement statistics see the same thing:

* canonical text: the plain transcript (format ``plain``) when there is one, else a Delve
  markdown copy, else the first PDF (all else equal, input order);
* a copy's coder is its label (``Interview 12 - PO`` → ``PO``); a moderation copy is stored as
  coder ``"moderation"`` (the person's name stays in the report) because what matters downstream
  is its role, and human-human agreement must leave it out;
* ``Paragraph.codes`` (what a reader sees) = moderation's codes when a moderation copy carries
  any code at all; otherwise (no moderation copy, or a moderation print without codes, like
  interview 32's) the union of every coder's codes.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .types import Interview, Paragraph, Turn

MODERATION = "moderation"
_WORD = re.compile(r"\w+")
_FORMAT_RANK = {"plain": 0, "delve": 1, "delve-pdf": 2}
MIN_MATCHED = 0.5  # a copy paragraph is aligned when half its words are found in order
MIN_SHARE = 0.3  # ...and lands on each canonical paragraph holding 30 % of them (or of its own)


def is_moderation_path(interview: Interview) -> bool:
    """Default test: the copy sits in a folder named ``moderation`` (as in the replication
    package's ``coded_transcripts/moderation/``)."""
    return any(part.lower() == MODERATION for part in Path(interview.source).parts[:-1])


@dataclass(frozen=True)
class CopyReport:
    """How well one copy's codes were carried onto the canonical text."""

    source: str
    format: str
    label: str
    coder: str
    coded_paragraphs: int
    aligned: int
    unaligned: tuple[str, ...]  # the first few unaligned coded paragraphs (shortened)

    @property
    def rate(self) -> float:
        """Coded paragraphs aligned / coded paragraphs (1.0 for a copy without codes)."""
        return self.aligned / self.coded_paragraphs if self.coded_paragraphs else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "label": self.label,
            "coder": self.coder,
            "coded_paragraphs": self.coded_paragraphs,
            "aligned": self.aligned,
            "rate": round(self.rate, 4),
            "unaligned": list(self.unaligned),
        }


@dataclass(frozen=True)
class MergeReport:
    interview_id: str
    canonical: str
    copies: tuple[CopyReport, ...]

    @property
    def rate(self) -> float:
        coded = sum(c.coded_paragraphs for c in self.copies)
        return sum(c.aligned for c in self.copies) / coded if coded else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "interview_id": self.interview_id,
            "canonical": self.canonical,
            "rate": round(self.rate, 4),
            "copies": [c.to_dict() for c in self.copies],
        }


def _paragraphs(interview: Interview) -> list[Paragraph]:
    return [p for t in interview.turns for p in t.paragraphs]


def _words(paras: Sequence[Paragraph]) -> tuple[list[str], list[int]]:
    words: list[str] = []
    owner: list[int] = []
    for i, p in enumerate(paras):
        for m in _WORD.finditer(p.text.lower()):
            words.append(m.group())
            owner.append(i)
    return words, owner


def align(copy: Sequence[Paragraph], canon: Sequence[Paragraph]) -> dict[int, tuple[int, ...]]:
    """Map each alignable copy paragraph index to the canonical paragraph indexes it covers.

    Word level, so re-wrapping, punctuation and whitespace changes cost nothing, and a reworded
    word only breaks one run. ``autojunk`` is off: "uh" and "the" are most of an interview.
    """
    a, a_owner = _words(copy)
    b, b_owner = _words(canon)
    hits: dict[int, Counter[int]] = defaultdict(Counter)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for i, j, n in matcher.get_matching_blocks():
        for k in range(n):
            hits[a_owner[i + k]][b_owner[j + k]] += 1
    size_a, size_b = Counter(a_owner), Counter(b_owner)
    out: dict[int, tuple[int, ...]] = {}
    for ci, found in hits.items():
        total = sum(found.values())
        if total < MIN_MATCHED * size_a[ci]:
            continue
        targets = tuple(
            sorted(
                q for q, n in found.items() if n >= MIN_SHARE * total or n >= MIN_SHARE * size_b[q]
            )
        )
        if targets:
            out[ci] = targets
    return out


def _coder(interview: Interview, moderation: bool) -> str:
    return MODERATION if moderation else (interview.label or Path(interview.source).stem)


def _own_coded(p: Paragraph, coder: str, moderation: bool) -> dict[str, list[str]]:
    """A paragraph's per-coder codes; a copy's bare ``codes`` belong to its own coder, and
    everything in a moderation copy to ``"moderation"``."""
    coded = {name: list(codes) for name, codes in p.coded}
    if p.codes and not coded:
        coded[coder] = list(p.codes)
    if moderation and coded:
        coded = {MODERATION: list(dict.fromkeys(c for cs in coded.values() for c in cs))}
    return coded


def merge_copies(
    copies: Sequence[tuple[Interview, str]],
    *,
    is_moderation: Callable[[Interview], bool] = is_moderation_path,
) -> tuple[Interview, MergeReport]:
    """Merge copies of one interview onto its canonical text (see the module docstring).

    Returns the merged interview, whose offsets index the canonical copy's text (its second
    element in ``copies``), and a report of how well each other copy aligned.
    """
    if not copies:
        raise ValueError("merge_copies needs at least one copy")
    ids = {iv.id for iv, _ in copies}
    if len(ids) > 1:
        raise ValueError(f"copies of different interviews: {sorted(ids)}")
    order = sorted(range(len(copies)), key=lambda i: _FORMAT_RANK.get(copies[i][0].format, 3))
    canon_iv = copies[order[0]][0]
    canon = _paragraphs(canon_iv)
    canon_mod = is_moderation(canon_iv)
    canon_coder = _coder(canon_iv, canon_mod)
    per_para = [_own_coded(p, canon_coder, canon_mod) for p in canon]
    coders = list(dict.fromkeys(name for d in per_para for name in d))
    reports: list[CopyReport] = []
    moderated = any(MODERATION in d for d in per_para)
    for idx in order[1:]:
        iv = copies[idx][0]
        mod = is_moderation(iv)
        coder = _coder(iv, mod)
        paras = _paragraphs(iv)
        coded_idx = [i for i, p in enumerate(paras) if p.codes or p.coded]
        mapping = align(paras, canon) if coded_idx else {}
        for i in coded_idx:
            for name, codes in _own_coded(paras[i], coder, mod).items():
                for q in mapping.get(i, ()):
                    have = per_para[q].setdefault(name, [])
                    have += [c for c in codes if c not in have]
                if name not in coders:
                    coders.append(name)
                moderated = moderated or (mod and bool(codes))
        unaligned = [paras[i].text for i in coded_idx if i not in mapping]
        reports.append(
            CopyReport(
                source=iv.source,
                format=iv.format,
                label=iv.label,
                coder=coder,
                coded_paragraphs=len(coded_idx),
                aligned=len(coded_idx) - len(unaligned),
                unaligned=tuple(t[:120] for t in unaligned[:5]),
            )
        )
    merged = _rebuild(canon_iv, per_para, moderated)
    merged = replace(
        merged,
        coders=tuple(coders),
        copies=tuple(copies[i][0].source for i in order[1:]),
    )
    return merged, MergeReport(canon_iv.id, canon_iv.source, tuple(reports))


def _rebuild(canon: Interview, per_para: list[dict[str, list[str]]], moderated: bool) -> Interview:
    turns: list[Turn] = []
    k = 0
    for t in canon.turns:
        paras: list[Paragraph] = []
        for p in t.paragraphs:
            coded = per_para[k]
            k += 1
            if moderated:
                codes = tuple(coded.get(MODERATION, ()))
            else:
                codes = tuple(dict.fromkeys(c for cs in coded.values() for c in cs))
            paras.append(
                Paragraph(
                    p.text,
                    p.start,
                    p.end,
                    codes,
                    tuple((name, tuple(cs)) for name, cs in coded.items() if cs),
                )
            )
        turns.append(replace(t, paragraphs=tuple(paras)))
    return replace(canon, turns=tuple(turns))


def group_by_interview(
    parsed: Iterable[tuple[Interview, str]],
    *,
    is_moderation: Callable[[Interview], bool] = is_moderation_path,
) -> list[tuple[Interview, str, MergeReport]]:
    """Merge every set of copies sharing an interview id; one triple per interview, first-seen
    order. The text returned is the canonical copy's: the one quotes are verified against."""
    groups: dict[str, list[tuple[Interview, str]]] = {}
    for iv, text in parsed:
        groups.setdefault(iv.id, []).append((iv, text))
    out: list[tuple[Interview, str, MergeReport]] = []
    for group in groups.values():
        merged, report = merge_copies(group, is_moderation=is_moderation)
        text = next(t for iv, t in group if iv.source == merged.source)
        out.append((merged, text, report))
    return out
