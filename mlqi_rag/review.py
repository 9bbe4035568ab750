"""Researchers review suggested codes: accept or reject each, export the accepted ones as CSV.

``suggest`` proposes codes for passages no researcher coded; this module keeps what a researcher
decided about them. Two kinds of file, both JSON, both written atomically (a temporary file in
the same folder, then a rename), and neither ever written into a transcript:

* **suggestions cache** — ``suggestions-<generation>-<key>.json``: computing suggestions over a
  large corpus takes a while, so they are computed once per index generation, index settings
  hash, suggestion model and minimum confidence (the key) and read back after. Caches of other
  generations are removed when a new one is written.
* **decisions** — ``decisions.json``: one entry per decided suggestion, keyed by its id (a short
  hash of ``interview_id:start:end:code``), with the status (accepted / rejected), when, and the
  sha256 of the transcript it was made on. A decision outlives index rebuilds; when the
  transcript changed since (edited on disk, or re-indexed with other text) it is *stale*: shown
  as such, never exported as accepted, until a researcher decides again on the new text.

Both live in ``<index dir>/review/``; when the index directory is read-only (an archived study on
a shared disk), in a per-user state directory instead:
``$XDG_STATE_HOME/mlqi-rag/<hash of the index path>`` (``~/.local/state/...`` by default).
``review_files`` decides which, and keeps the suggestions cache; ``review_decisions`` reads and
writes the decisions file; this module keeps the store that joins them.
"""

from __future__ import annotations

import inspect
import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import MlqiError, SourceChangedError, printable
from .index import Index
from .review_decisions import DECISIONS_FILE as DECISIONS_FILE
from .review_decisions import DecisionFile
from .review_files import ReviewFiles, SuggestionCache, atomic_write, utc_now
from .review_items import (
    ACCEPTED,
    PENDING,
    STATUSES,
    Decision,
    Item,
    csv_rows,
    suggestion_id,
    to_csv,
)
from .suggest import DEFAULT_MIN_CONFIDENCE, Suggestion
from .types import interview_order

log = logging.getLogger(__name__)

# ---- the store ----------------------------------------------------------------------------------


@dataclass
class ReviewStore:
    """Suggestions of one loaded index (computed once, cached) and the decisions about them.

    Safe to share between the app's threads; decisions are re-read when another process (the
    CLI beside the app) changed the file, and every write holds a file lock while it reads,
    changes and replaces the decisions, so neither loses the other's.
    """

    index: Index
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    state_home: Path | None = None
    embedder: Any = field(default=None, repr=False)  # the app's, so the model loads once
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _compute_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _suggestions: list[Suggestion] | None = field(default=None, repr=False)
    _rare: dict[str, int] = field(default_factory=dict, repr=False)

    @cached_property
    def files(self) -> ReviewFiles:
        return ReviewFiles(Path(self.index.settings.index_dir), self.state_home)

    @property
    def dir(self) -> Path:
        """Where this store writes: in the index directory, else (read-only) the state dir."""
        return self.files.dir

    @cached_property
    def _cache(self) -> SuggestionCache:
        return SuggestionCache(self.files, self.index, self.min_confidence)

    # -- suggestions ------------------------------------------------------------------------------

    def _compute(self) -> tuple[list[Suggestion], dict[str, int]]:
        from . import suggest as sg

        kwargs: dict[str, Any] = {}
        if self.embedder is not None and "embedder" in inspect.signature(sg.suggest).parameters:
            kwargs["embedder"] = self.embedder
        try:
            rows = sg.suggest(self.index, None, self.min_confidence, **kwargs)
        except SourceChangedError:
            # a transcript changed since indexing: suggest for the others, one at a time
            rows = []
            for iv_id in sorted(self.index.interviews, key=interview_order):
                if self.index.source_problem(iv_id) is None:
                    rows += sg.suggest(self.index, iv_id, self.min_confidence, **kwargs)
        return rows, sg.rare_codes(self.index)

    def cached(self) -> bool:
        """Whether suggestions are at hand without computing them."""
        return self.suggestions(compute=False) is not None

    def suggestions(self, compute: bool = True) -> list[Suggestion] | None:
        """The index's suggestions: from memory, else the cache, else (``compute``) computed
        now and cached. None when not computed yet and ``compute`` is False."""
        with self._lock:
            if self._suggestions is not None:
                return self._suggestions
            cached = self._cache.read()
            if cached is not None:
                self._suggestions, self._rare = cached
                return self._suggestions
        if not compute:
            return None
        with self._compute_lock:  # one computation at a time; the others wait and reuse it
            with self._lock:
                if self._suggestions is not None:
                    return self._suggestions
            rows, rare = self._compute()
            self._cache.write(rows, rare)
            with self._lock:
                self._suggestions, self._rare = rows, rare
                return rows

    def rare_codes(self) -> dict[str, int]:
        """Codes too rare to learn (known once suggestions are computed or read)."""
        with self._lock:
            return dict(self._rare)

    # -- decisions --------------------------------------------------------------------------------

    @cached_property
    def _file(self) -> DecisionFile:
        return DecisionFile(self.files)

    def decisions(self) -> dict[str, Decision]:
        """Every decision by suggestion id; re-read when the file changed on disk."""
        with self._lock:
            return self._file.read()

    # -- items ------------------------------------------------------------------------------------

    def _stale(self, interview_id: str, sha256: str | None, problems: dict[str, str]) -> str:
        """Why an item of ``interview_id`` decided on ``sha256`` (None: undecided) no longer
        holds; "" when it does."""
        iv = self.index.interviews.get(interview_id)
        if iv is None:
            return f"interview {interview_id} is no longer in the index"
        if interview_id not in problems:
            problems[interview_id] = self.index.source_problem(interview_id) or ""
        if problems[interview_id]:
            return problems[interview_id]
        if sha256 is not None and sha256 != iv.sha256:
            return (
                f"interview {interview_id}'s transcript changed since this decision; "
                "decide again on the current text"
            )
        return ""

    def items(self, compute: bool = False) -> list[Item]:
        """Every suggestion with its status, then decisions the model no longer suggests;
        ordered by interview, position, confidence. Only decisions until suggestions exist
        (``compute`` computes them when needed)."""
        rows = self.suggestions(compute=compute) or []
        decided = self.decisions()
        problems: dict[str, str] = {}
        out: list[Item] = []
        seen: set[str] = set()
        for s in rows:
            sid = suggestion_id(s.interview_id, s.start, s.end, s.code)
            if sid in seen:
                continue
            seen.add(sid)
            d = decided.get(sid)
            out.append(
                Item(
                    sid,
                    s.interview_id,
                    s.turn_index,
                    s.start,
                    s.end,
                    s.text,
                    s.code,
                    s.confidence,
                    s.examples,
                    d.status if d else PENDING,
                    d.decided_at if d else "",
                    self._stale(s.interview_id, d.source_sha256 if d else None, problems),
                )
            )
        for sid, d in decided.items():
            if sid in seen:
                continue
            out.append(
                Item(
                    sid,
                    d.interview_id,
                    d.turn_index,
                    d.start,
                    d.end,
                    d.text,
                    d.code,
                    d.confidence,
                    (),
                    d.status,
                    d.decided_at,
                    self._stale(d.interview_id, d.source_sha256, problems),
                    suggested=False,
                )
            )
        out.sort(
            key=lambda it: (interview_order(it.interview_id), it.start, -it.confidence, it.code)
        )
        return out

    def decide(self, ids: Sequence[str], status: str, now: str | None = None) -> list[Item]:
        """Accept, reject or (``pending``) undo the decision on each of ``ids``; all or none.

        Refused for an unknown id and for a suggestion whose transcript changed since
        indexing (its offsets no longer point at the text that was suggested)."""
        if status not in STATUSES:
            raise MlqiError(f"unknown status {status!r} (choose {', '.join(STATUSES)})")
        wanted = list(dict.fromkeys(i.strip() for i in ids if i and i.strip()))
        if not wanted:
            raise MlqiError("no suggestion id given")
        by_id = {it.id: it for it in self.items()}
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            hint = "" if self.cached() else "; suggestions are not computed yet"
            raise MlqiError(
                f"unknown suggestion id {', '.join(unknown)} (see `mlqi-rag review list`{hint})"
            )
        problems: dict[str, str] = {}
        for i in wanted:
            it = by_id[i]
            if status == PENDING:
                continue  # undoing is always allowed
            why = self._stale(it.interview_id, None, problems)
            if why or (not it.suggested and it.stale):
                raise MlqiError(f"suggestion {i} cannot be decided: {why or it.stale}")
        stamp = now or utc_now()
        with self._lock, self._file.locked() as d:
            current = self._file.read(fresh=True)
            for i in wanted:
                it = by_id[i]
                if status == PENDING:
                    current.pop(i, None)
                    continue
                current[i] = Decision(
                    it.interview_id,
                    it.turn_index,
                    it.start,
                    it.end,
                    it.code,
                    it.text,
                    it.confidence,
                    status,
                    stamp,
                    self.index.interviews[it.interview_id].sha256,
                )
            self._file.save(d, current)
        after = {it.id: it for it in self.items()}
        return [after[i] for i in wanted if i in after]

    def accepted(self) -> list[Item]:
        """Accepted suggestions whose transcript is unchanged: what the CSV holds."""
        return [it for it in self.items() if it.status == ACCEPTED and not it.stale]

    def export_csv(self) -> tuple[str, int]:
        """The CSV of the accepted suggestions, and how many rows it has."""
        rows = csv_rows(self.index, self.items())
        return to_csv(rows), len(rows)

    def write_csv(self, path: str | Path) -> int:
        """Write the accepted suggestions to ``path`` (replaced atomically); returns the rows."""
        target = Path(path)
        text, n = self.export_csv()
        try:
            atomic_write(target, text)
        except OSError as exc:
            raise MlqiError(
                f"cannot write {printable(str(target))} ({exc.strerror or exc})"
            ) from exc
        return n

    # -- what the app shows beside answers --------------------------------------------------------

    def shown_for(self, interview_id: str, start: int, end: int) -> list[Item]:
        """Pending or accepted suggestions (not stale) on passages overlapping ``[start, end)``
        of ``interview_id``; nothing before suggestions are computed."""
        if self.suggestions(compute=False) is None:
            return []
        return [
            it
            for it in self.items()
            if it.interview_id == interview_id and it.start < end and start < it.end and it.shown
        ]


# ---- one store per loaded index, for the app -------------------------------------------------

_ATTACHED: dict[int, tuple[weakref.ref[Index], ReviewStore]] = {}
_ATTACH_LOCK = threading.Lock()


def attach(index: Index, min_confidence: float | None = None, embedder: Any = None) -> ReviewStore:
    """The review store of ``index``, kept beside the loaded index so the answer cards and the
    heatmap show what the Corpus tab computed. A ``min_confidence`` other than the current
    store's replaces it (the decisions are the same file either way)."""
    with _ATTACH_LOCK:
        for key in [k for k, (ref, _) in _ATTACHED.items() if ref() is None]:
            del _ATTACHED[key]
        entry = _ATTACHED.get(id(index))
        current = entry[1] if entry is not None and entry[0]() is index else None
        if current is not None and min_confidence in (None, current.min_confidence):
            if embedder is not None and current.embedder is None:
                current.embedder = embedder
            return current
        store = ReviewStore(
            index,
            DEFAULT_MIN_CONFIDENCE if min_confidence is None else float(min_confidence),
            embedder=embedder if embedder is not None else getattr(current, "embedder", None),
        )
        _ATTACHED[id(index)] = (weakref.ref(index), store)
        return store


def attached(index: Any) -> ReviewStore | None:
    """The store ``attach`` made for ``index``, if any (never creates one)."""
    with _ATTACH_LOCK:
        entry = _ATTACHED.get(id(index))
    if entry is None or entry[0]() is not index:
        return None
    return entry[1]
