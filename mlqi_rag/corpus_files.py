"""Which files make a corpus: the transcript files under the given paths, and why an entry that
looks like a transcript cannot be read.

Kept apart from parsing (``transcripts``): finding files is about the file system (links,
loops, hidden folders, the ``codings/`` and ``moderation/`` sub-folders of a Delve study), parsing
about a file's text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import TranscriptError

TRANSCRIPT_SUFFIXES = (".txt", ".md", ".markdown", ".pdf")


def _candidate(f: Path) -> bool:
    return (
        f.suffix.lower() in TRANSCRIPT_SUFFIXES
        and not f.name.startswith(".")
        and not f.stem.upper().startswith("README")
    )


def _check_entry(f: Path) -> TranscriptError | None:
    """Why a directory entry that looks like a transcript cannot be read, if it cannot.

    A transcript silently skipped is a finding silently lost, so a symlink loop, a dangling link
    or a directory named like a transcript is reported, not passed over.
    """
    try:
        f.stat()
    except OSError as exc:
        if f.is_symlink():
            return TranscriptError(f, "broken or looping symbolic link")
        return TranscriptError(f, f"cannot read file ({exc.strerror or exc})")
    if f.is_dir():
        return TranscriptError(f, "is a directory, not a transcript file")
    if not f.is_file():
        return TranscriptError(f, "not a regular file")
    return None


def transcript_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[TranscriptError]]:
    """Expand directories (and their sub-directories: ``codings/``, ``moderation/``) into their
    transcript files, sorted and absolute; report what can't be read. Paths are absolute so an
    index built from a relative ``--corpus`` still finds its files from any working directory."""
    files: list[Path] = []
    errors: list[TranscriptError] = []
    for raw in paths:
        p = Path(raw).absolute()
        if p.is_dir():
            found: list[Path] = []
            problems: list[TranscriptError] = []
            for f in _walk(p):
                if (problem := _check_entry(f)) is not None:
                    problems.append(problem)
                else:
                    found.append(f)
            if not found and not problems:
                problems.append(
                    TranscriptError(p, "directory contains no .txt/.md/.pdf transcripts")
                )
            files.extend(found)
            errors.extend(problems)
        elif p.is_file():
            files.append(p)
        elif p.is_symlink():
            errors.append(TranscriptError(p, "broken or looping symbolic link"))
        else:
            errors.append(TranscriptError(p, "no such file or directory"))
    return files, errors


def _walk(root: Path, depth: int = 0) -> Iterator[Path]:
    """Transcript candidates under ``root``; hidden and non-transcript-named folders are
    walked (not symlinked ones: a link loop must not recurse forever)."""
    for f in sorted(root.iterdir()):
        if f.name.startswith("."):
            continue
        if _candidate(f):
            yield f
        elif f.is_dir() and not f.is_symlink() and depth < 4:
            yield from _walk(f, depth + 1)
