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
        super().__init__(f"{self.path}: {reason}")


class IndexMissingError(MlqiError):
    """No usable index where one was expected."""

    def __init__(self, index_dir: str | Path, reason: str = "no index found") -> None:
        self.index_dir = str(index_dir)
        super().__init__(f"{reason} at {index_dir} — run `mlqi-rag index` to build it")


class QuestionError(MlqiError):
    """An unusable question or question file."""


class ConfigError(MlqiError):
    """A setting that names something that does not exist (an engine, a model file)."""
