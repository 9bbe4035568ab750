"""Where review files live, and the suggestions cache among them (see ``review``).

Review files go in ``<index dir>/review/``, or, when the index directory is read-only, in a
per-user state directory; every file is replaced in one step (``atomic_write``). Suggestions are
cached per index generation, settings hash, suggestion model and minimum confidence.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MlqiError, printable
from .index import Index
from .review_items import suggestion_from_dict
from .suggest import Suggestion

log = logging.getLogger(__name__)

REVIEW_DIR = "review"
CACHE_PREFIX = "suggestions-"
FORMAT = 1


def state_dir(index_dir: Path, state_home: Path | None = None) -> Path:
    """Where a read-only index's review files go: one folder per index location, per user."""
    home = state_home or Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    digest = hashlib.sha256(str(Path(index_dir).resolve()).encode("utf-8")).hexdigest()[:12]
    return Path(home) / "mlqi-rag" / digest


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: readers see the old file or the new one,
    never half of it, and a crash leaves no partial file (only a stray ``.tmp`` at worst)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def writable_dir(path: Path) -> bool:
    """Whether files can be created in ``path`` (or, when it does not exist yet, its parent).
    Tried for real: permission bits do not tell about a read-only mount, nor about root."""
    target = path if path.is_dir() else path.parent
    probe = target / f".probe-{secrets.token_hex(4)}"
    try:
        probe.touch()
        probe.unlink()
    except OSError:
        return False
    return not path.exists() or path.is_dir()


@functools.cache
def model_digest() -> str:
    """The suggestion model is the code of ``suggest*.py`` as this process loaded it: another
    model (a new version) computes its suggestions anew instead of reading an old cache."""
    from . import suggest as sg

    digest = hashlib.sha256()
    for path in sorted(Path(sg.__file__).parent.glob("suggest*.py")):
        with contextlib.suppress(OSError):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class ReviewFiles:
    """The folder a store writes to (decided once: the index's, else the state dir), and the
    folders it reads from."""

    index_dir: Path
    state_home: Path | None = None
    _dir: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.index_dir = Path(self.index_dir).resolve()

    @property
    def primary_dir(self) -> Path:
        return self.index_dir / REVIEW_DIR

    @property
    def fallback_dir(self) -> Path:
        return state_dir(self.index_dir, self.state_home)

    @property
    def dir(self) -> Path:
        """Where review files are written: in the index directory, else (read-only) the state
        dir."""
        if self._dir is None:
            primary = self.primary_dir
            if writable_dir(primary):
                self._dir = primary
            else:
                self._dir = self.fallback_dir
                log.info("index at %s is read-only: review files go to %s", primary, self._dir)
        return self._dir

    def read_dirs(self) -> list[Path]:
        """The write location first, then the other one (decisions made while the index was
        read-only, or before it became so, are still found)."""
        return list(dict.fromkeys([self.dir, self.primary_dir, self.fallback_dir]))

    def ensure_dir(self) -> Path:
        d = self.dir
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MlqiError(
                f"cannot save review files in {printable(str(d))} ({exc.strerror or exc}); "
                "set XDG_STATE_HOME to a writable folder"
            ) from exc
        return d


@dataclass
class SuggestionCache:
    """Suggestions computed once per index generation and key, read back after; caches of
    other generations are removed when a new one is written."""

    files: ReviewFiles
    index: Index
    min_confidence: float

    def key(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "generation": self.index.generation,
            "settings_hash": self.index.manifest.get("settings_hash")
            or self.index.settings.settings_hash(),
            "model": model_digest(),
            "min_confidence": round(float(self.min_confidence), 6),
        }

    def name(self, key: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        return f"{CACHE_PREFIX}{key['generation']}-{digest}.json"

    def read(self) -> tuple[list[Suggestion], dict[str, int]] | None:
        key = self.key()
        name = self.name(key)
        for d in self.files.read_dirs():
            try:
                data = json.loads((d / name).read_text(encoding="utf-8"))
                if data.get("key") != key:
                    continue
                rows = [suggestion_from_dict(s) for s in data["suggestions"]]
                rare = {str(k): int(v) for k, v in data.get("rare", {}).items()}
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable suggestions cache %s: %s", d / name, exc)
                continue
            return rows, rare
        return None

    def write(self, rows: Sequence[Suggestion], rare: dict[str, int]) -> None:
        key = self.key()
        doc = {
            "key": key,
            "computed_at": utc_now(),
            "rare": rare,
            "suggestions": [s.to_dict() for s in rows],
        }
        try:
            d = self.files.ensure_dir()
            atomic_write(d / self.name(key), json.dumps(doc, ensure_ascii=False))
        except (OSError, MlqiError) as exc:  # the suggestions still hold, in memory
            log.warning("could not cache suggestions: %s", exc)
            return
        for old in d.glob(f"{CACHE_PREFIX}*.json"):
            if not old.name.startswith(f"{CACHE_PREFIX}{key['generation']}-"):
                with contextlib.suppress(OSError):
                    old.unlink()
