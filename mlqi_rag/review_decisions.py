"""The review decisions file: ``decisions.json`` in an index's review folder (``review_files``
decides which folder), one entry per decided suggestion.

The app and the CLI may decide at the same time, from two processes: the file is read back
whenever it changed on disk (its size and modification time), and every write holds an
exclusive lock on ``.decisions.lock`` while it reads, changes and replaces the file
(atomically: a temporary file, then a rename), so neither loses the other's decisions.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MlqiError, printable
from .review_files import FORMAT, ReviewFiles, atomic_write
from .review_items import Decision
from .types import interview_order

DECISIONS_FILE = "decisions.json"


@dataclass
class DecisionFile:
    """The decisions of one review folder, cached until the file changes. Not thread-safe on
    its own: ``ReviewStore`` holds its lock around every call."""

    files: ReviewFiles
    _decisions: dict[str, Decision] = field(default_factory=dict, repr=False)
    _stamp: tuple[str, int, int] | None = field(default=None, repr=False)

    def path(self) -> Path | None:
        """The decisions file to read: the write location's, else the other one's."""
        for d in self.files.read_dirs():
            if (d / DECISIONS_FILE).is_file():
                return d / DECISIONS_FILE
        return None

    def _load(self, path: Path) -> dict[str, Decision]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = [Decision.from_dict(d) for d in data["decisions"]]
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MlqiError(
                f"cannot read the review decisions in {printable(str(path))} ({exc}); "
                "move the file away to start over"
            ) from exc
        return {d.id: d for d in rows}

    def read(self, fresh: bool = False) -> dict[str, Decision]:
        """Every decision by suggestion id (a copy); from disk when the file changed, or
        ``fresh`` (inside ``locked``, where another process may just have written)."""
        path = self.path()
        if path is None:
            self._decisions, self._stamp = {}, None
            return {}
        try:
            st = path.stat()
            stamp: tuple[str, int, int] | None = (str(path), st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if fresh or stamp is None or stamp != self._stamp:
            self._decisions = self._load(path)
            self._stamp = stamp
        return dict(self._decisions)

    @contextlib.contextmanager
    def locked(self) -> Iterator[Path]:
        """Hold the folder's decisions lock; yields the folder to ``save`` into."""
        d = self.files.ensure_dir()
        try:
            fh = open(d / ".decisions.lock", "w")
        except OSError as exc:
            raise MlqiError(
                f"cannot save review decisions in {printable(str(d))} ({exc.strerror or exc})"
            ) from exc
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield d

    def save(self, d: Path, decisions: dict[str, Decision]) -> None:
        """Replace the decisions in folder ``d`` (under ``locked``), in transcript order."""
        doc = {
            "format": FORMAT,
            "note": "Review decisions on suggested codes (mlqi-rag review); never transcripts.",
            "decisions": [
                decisions[k].to_dict()
                for k in sorted(
                    decisions,
                    key=lambda k: (
                        interview_order(decisions[k].interview_id),
                        decisions[k].start,
                        decisions[k].code,
                    ),
                )
            ],
        }
        path = d / DECISIONS_FILE
        try:
            atomic_write(path, json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        except OSError as exc:
            raise MlqiError(
                f"cannot save review decisions in {printable(str(d))} ({exc.strerror or exc})"
            ) from exc
        self._stamp = None  # re-read (and re-stamp) on the next look
