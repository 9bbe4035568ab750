"""One chat turn and its exports, as plain functions of the loaded ``Pipeline`` and the user's
inputs: ``respond`` streams an answer into the chat (evidence cards and coverage strip beside it),
``export_quotes`` writes the session's verified quotes. ``ui`` wires them to Gradio components;
keeping them here means they are tested without a server, and without importing Gradio."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, MlqiError
from .export import escape_markdown, normalise_format, unique_citations, write_export
from .render import (
    coverage_html,
    error_evidence_html,
    esc,
    evidence_html,
    pending_evidence_html,
)
from .retrieval import Filters
from .types import Answer, Citation

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Pipeline

log = logging.getLogger(__name__)


# ---- chat ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionQuotes:
    """What one browser session can export: the last answer's quotes and all quotes so far."""

    question: str = ""
    last: tuple[Citation, ...] = ()
    all: tuple[Citation, ...] = ()

    def add(self, answer: Answer) -> SessionQuotes:
        cites = answer.citations if not answer.abstained else ()
        return SessionQuotes(
            question=answer.question,
            last=tuple(cites),
            all=tuple(unique_citations([*self.all, *cites])),
        )


@dataclass
class ChatUpdate:
    """One streamed state of the chat tab."""

    history: list[dict[str, Any]]
    evidence: str
    coverage: str = ""
    answer: Answer | None = None
    error: str | None = None
    filters: Filters | None = field(default=None, repr=False)


def make_filters(
    interviews: Sequence[str] | None = None,
    codes: Sequence[str] | None = None,
    participant_only: bool = True,
    codes_mode: str = "any",
    coder: str | None = "",
) -> Filters:
    return Filters(
        interviews=tuple(str(i) for i in interviews or ()),
        codes=tuple(codes or ()),
        codes_mode="all" if codes_mode == "all" else "any",
        roles=("participant",) if participant_only else (),
        coder=coder or "",
    )


def _msg(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content}


def chat_text(text: str) -> str:
    """Text for the Chatbot, which renders Markdown and HTML: quotes are data, so every character
    that could make a link, an image or a tag is escaped (the reader sees the text as written,
    and nothing in a transcript can make the browser fetch a URL)."""
    return escape_markdown(text, keep_lists=True)


def error_text(exc: BaseException) -> str:
    """One line for the chat; never a traceback."""
    if isinstance(exc, MlqiError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"Something went wrong ({type(exc).__name__}); the details are in the server log."


def respond(
    pipe: Pipeline,
    question: str | None,
    history: Sequence[dict[str, Any]] | None = None,
    interviews: Sequence[str] | None = None,
    codes: Sequence[str] | None = None,
    participant_only: bool = True,
    engine: str | None = None,
    k: int | float | None = None,
    codes_mode: str = "any",
    coder: str | None = "",
) -> Iterator[ChatUpdate]:
    """Answer ``question``: yields the chat as the answer streams in, then the final state.

    Extractive engines yield the answer line by line (accumulated here); LLM engines yield the
    whole text so far, quotes masked until verified. The last update always carries the final
    ``Answer`` (or ``error``), whose text replaces whatever was streamed.
    """
    base = list(history or [])
    q = " ".join((question or "").split())
    filters = make_filters(interviews, codes, participant_only, codes_mode, coder)
    chat = base + [_msg("user", chat_text(q))] if q else base
    try:
        name = engine or pipe.settings.engine
        eng = pipe.engine(name)
        n = int(k) if k else None
        if n is not None and n < 1:
            raise ConfigError("number of passages must be at least 1")
        yield ChatUpdate(
            chat + [_msg("assistant", "*Searching the interviews…*")],
            pending_evidence_html(),
            filters=filters,
        )
        text = ""
        final: Answer | None = None
        for item in eng.stream(q, filters, n):
            if isinstance(item, Answer):
                final = item
                break
            text = text + item if name == "extractive" else item
            yield ChatUpdate(
                chat + [_msg("assistant", chat_text(text))],
                pending_evidence_html(),
                filters=filters,
            )
        if final is None:  # pragma: no cover - engines always end with an Answer
            raise ConfigError(f"engine {name!r} returned no answer")
        yield ChatUpdate(
            chat + [_msg("assistant", chat_text(final.text))],
            evidence_html(pipe, final),
            coverage_html(pipe, final, filters),
            answer=final,
            filters=filters,
        )
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line in the chat
        if not isinstance(exc, MlqiError):
            log.exception("answering %r failed", q)
        message = error_text(exc)
        yield ChatUpdate(
            chat + [_msg("assistant", f"⚠️ **Error:** {chat_text(message)}")],
            error_evidence_html(message),
            f'<div class="coverage coverage-error">{esc(message)}</div>',
            error=message,
            filters=filters,
        )


# ---- export --------------------------------------------------------------------------------------

SCOPES = ("last answer", "whole session")


def export_quotes(
    session: SessionQuotes | None, fmt: str, scope: str, directory: str | Path
) -> tuple[str | None, str]:
    """Write the session's quotes; returns (path or None, status message for the user)."""
    session = session or SessionQuotes()
    try:
        key = normalise_format(fmt)
    except ValueError as exc:
        return None, str(exc)
    whole = scope == SCOPES[1]
    cites = session.all if whole else session.last
    if not cites:
        what = "this session" if whole else "the last answer"
        return None, f"Nothing to export: {what} has no verified quotes yet."
    try:
        path = write_export(cites, key, directory, question=None if whole else session.question)
    except OSError as exc:
        return None, f"Could not write the export: {exc.strerror or exc}"
    n = len(unique_citations(cites))
    return str(path), f"{n} quote{'s' if n != 1 else ''} → {path.name}"


def resolve_export_dir(path: str | Path | None = None) -> Path:
    """``path`` (``--export-dir`` / ``MLQI_EXPORT_DIR``), else a fresh temporary directory."""
    chosen = path
    if chosen:
        d = Path(chosen).expanduser().resolve()
        d.mkdir(parents=True, exist_ok=True)
        return d
    return Path(tempfile.mkdtemp(prefix="mlqi-exports-")).resolve()
