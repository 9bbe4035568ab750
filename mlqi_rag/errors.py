"""The few error types the CLI and the app turn into one-line messages.

Each message names the file or the next command to run, so a researcher never has to read a
traceback to know what to do.
"""

from __future__ import annotations

from pathlib import Path


class MlqiError(Exception):
    """Base class: anything that should be shown to the user as a single line."""


class TranscriptError(MlqiError):
    """A transcript that cannot be parsed: empty, binary, not UTF-8, or without speaker turns."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{printable(self.path)}: {reason}")


def printable(text: str) -> str:
    """A file name on one line: control characters (a newline in a name) are shown escaped, so
    one bad file is always one error line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class IndexMissingError(MlqiError):
    """No usable index where one was expected."""

    def __init__(self, index_dir: str | Path, reason: str = "no index found") -> None:
        self.index_dir = str(index_dir)
        super().__init__(f"{reason} at {index_dir} — run `mlqi-rag index` to build it")


class QuestionError(MlqiError):
    """An unusable question or question file."""


class SourceChangedError(MlqiError):
    """A transcript changed, moved or vanished after indexing: its offsets no longer hold."""

    def __init__(self, interview_id: str, path: str | Path, reason: str) -> None:
        self.interview_id = interview_id
        self.path = str(path)
        super().__init__(
            f"interview {interview_id}: {printable(self.path)} {reason} since it was indexed; "
            "its quotes are not shown as verified — run `mlqi-rag index` to re-index"
        )


class ConfigError(MlqiError):
    """A setting that names something that does not exist (an engine, a model file)."""
