"""The Gradio app: chat with evidence cards, filters, exports, and a corpus overview.

Everything that computes what the app shows is a plain function of the loaded ``Pipeline`` and
the user's inputs (``respond``, ``export_quotes`` here; the HTML in ``render``), so it is tested
without a server. ``build_ui`` only wires those functions to components, and ``serve``/``main``
start the server on loopback. Gradio itself is imported lazily, by ``build_ui`` and ``serve``.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .answer import available_engines
from .errors import ConfigError, MlqiError
from .export import escape_markdown, normalise_format, unique_citations, write_export
from .render import (
    CORPUS_HEADERS,
    code_heatmap_html,
    code_passage_choices,
    code_passages_html,
    corpus_rows,
    corpus_summary,
    coverage_html,
    empty_evidence_html,
    error_evidence_html,
    esc,
    evidence_html,
    interview_name,
    most_used_code,
    pending_evidence_html,
    sorted_interviews,
)
from .retrieval import Filters
from .settings import Settings, offline_environment
from .types import Answer, Citation

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr

    from .pipeline import Pipeline

log = logging.getLogger(__name__)

APP_TITLE = "ML quality interviews — grounded answers"
EXAMPLE_QUESTIONS = (
    "How do practitioners handle missing values?",
    "What makes model explainability hard for stakeholders?",
    "How do teams deal with noisy labels?",
)
CHAT_CONCURRENCY = 2  # questions answered at once (the work is CPU-bound)


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
) -> Filters:
    return Filters(
        interviews=tuple(str(i) for i in interviews or ()),
        codes=tuple(codes or ()),
        codes_mode="all" if codes_mode == "all" else "any",
        roles=("participant",) if participant_only else (),
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
) -> Iterator[ChatUpdate]:
    """Answer ``question``: yields the chat as the answer streams in, then the final state.

    Extractive engines yield the answer line by line (accumulated here); LLM engines yield the
    whole text so far, quotes masked until verified. The last update always carries the final
    ``Answer`` (or ``error``), whose text replaces whatever was streamed.
    """
    base = list(history or [])
    q = " ".join((question or "").split())
    filters = make_filters(interviews, codes, participant_only, codes_mode)
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


# ---- filters' choices ----------------------------------------------------------------------------


def interview_choices(pipe: Pipeline) -> list[tuple[str, str]]:
    return [(interview_name(iv), iv.id) for iv in sorted_interviews(pipe)]


def code_choices(pipe: Pipeline) -> list[tuple[str, str]]:
    """``("Data-missing-values (4)", "Data-missing-values")``: counts are indexed passages."""
    return [(f"{code} ({n})", code) for code, n in pipe.index.code_counts().items()]


def engine_choices(settings: Settings) -> list[str]:
    names = list(available_engines(settings))
    if settings.engine not in names:
        names.append(settings.engine)  # shown so a misconfiguration surfaces as an error message
    return names


# ---- the Gradio app ------------------------------------------------------------------------------

CSS = """
.gradio-container { max-width: 1500px !important; }
#app-header h1 { margin-bottom: 0; font-size: 1.45rem; }
#app-header p { margin-top: 2px; color: var(--body-text-color-subdued); }
#evidence-panel { padding-right: 4px; }
#ask-row { align-items: stretch; }
.evidence .ev-summary, .passages .ev-summary {
  font-size: 0.9rem; color: var(--body-text-color-subdued); margin: 2px 0 10px;
}
.ev-summary-closest { color: #9a3412 !important; font-weight: 600; }
.ev-empty { color: var(--body-text-color-subdued); padding: 24px 8px; font-style: italic; }
.ev-error { color: #b91c1c; padding: 12px; border: 1px solid #fecaca; border-radius: 8px; }
.evidence-card, .passage {
  border: 1px solid var(--border-color-primary); border-left: 4px solid #2563eb;
  border-radius: 8px; padding: 10px 12px; margin-bottom: 10px;
  background: var(--block-background-fill);
}
.evidence-card.closest { border-left-color: #f97316; border-style: dashed; }
.ev-head { display: flex; flex-wrap: wrap; gap: 8px; align-items: baseline; }
.ev-num {
  font-size: 0.75rem; font-weight: 700; border-radius: 999px; padding: 0 7px;
  background: #2563eb; color: #fff;
}
.ev-iv { font-weight: 700; }
.ev-label { color: var(--body-text-color-subdued); }
.ev-badges { margin-left: auto; display: flex; gap: 6px; }
.ev-verified {
  color: #15803d; font-size: 0.8rem; font-weight: 600; border: 1px solid #86efac;
  border-radius: 999px; padding: 0 8px;
}
.ev-unverified { color: #b91c1c; font-size: 0.8rem; }
.ev-closest-badge {
  color: #9a3412; font-size: 0.8rem; font-weight: 600; border: 1px solid #fdba74;
  border-radius: 999px; padding: 0 8px; background: #fff7ed;
}
.ev-meta { font-size: 0.82rem; color: var(--body-text-color-subdued); margin-top: 2px; }
.ev-tags { margin-top: 5px; display: flex; flex-wrap: wrap; gap: 4px; font-size: 0.78rem; }
.ev-tag {
  background: #eef2ff; color: #3730a3; border-radius: 4px; padding: 1px 6px;
  font-size: 0.75rem;
}
.ev-quote {
  margin: 8px 0 6px; padding: 2px 0 2px 10px; border-left: 3px solid var(--border-color-primary);
  font-style: italic; line-height: 1.45;
}
.ev-context summary { cursor: pointer; font-size: 0.82rem; color: #2563eb; }
.ev-turn { font-size: 0.85rem; margin: 6px 0; padding: 6px 8px; border-radius: 6px; }
.ev-turn p { margin: 0 0 4px; }
.ev-turn-prev, .ev-turn-next { color: var(--body-text-color-subdued); }
.ev-turn-cited { background: var(--background-fill-secondary); }
.ev-speaker { font-weight: 600; font-size: 0.78rem; margin-bottom: 2px; }
.ev-context mark { background: #fde68a; color: #111827; padding: 0 1px; }
.coverage { font-size: 0.88rem; padding: 6px 10px; border-radius: 6px;
  background: var(--background-fill-secondary); }
.coverage-error { color: #b91c1c; }
.cov-support { font-weight: 600; color: #15803d; }
.cov-none { font-weight: 600; color: #9a3412; }
.heatmap-wrap { overflow-x: auto; }
.heatmap { border-collapse: collapse; font-size: 0.82rem; }
.heatmap th, .heatmap td {
  border: 1px solid var(--border-color-primary); padding: 3px 8px; text-align: center;
}
.heatmap th.heat-code { text-align: left; font-weight: 500; white-space: nowrap; }
.heat-total { font-weight: 600; }
.heat-note { font-size: 0.78rem; color: var(--body-text-color-subdued); margin-top: 4px; }
.passage-text { font-size: 0.88rem; margin-top: 6px; }
.passage-text p { margin: 0 0 4px; }
#export-status { font-size: 0.85rem; }
"""


def _theme() -> Any:
    import gradio as gr

    # Local fonts only (the default theme's), so the browser fetches nothing from elsewhere.
    return gr.themes.Default(primary_hue="blue", neutral_hue="slate")


def build_ui(pipe: Pipeline, export_dir: str | Path | None = None) -> gr.Blocks:
    """The app's Blocks; every callback delegates to the pure functions above."""
    import gradio as gr

    settings = pipe.settings
    export_path = resolve_export_dir(export_dir or pipe.settings.export_dir)
    engines = engine_choices(settings)
    default_engine = settings.engine if settings.engine in engines else "extractive"
    exports = ExportRegistry()

    def on_submit(
        question: str,
        history: list[dict[str, Any]],
        session: SessionQuotes | None,
        interviews: list[str],
        codes: list[str],
        codes_mode: str,
        participant_only: bool,
        engine: str,
        k: float,
    ) -> Iterator[tuple[Any, ...]]:
        session = session or SessionQuotes()
        for up in respond(
            pipe, question, history, interviews, codes, participant_only, engine, k, codes_mode
        ):
            if up.answer is not None:
                session = session.add(up.answer)
            yield "", up.history, up.evidence, up.coverage, session

    def on_export(session: SessionQuotes | None, scope: str, fmt: str) -> tuple[Any, str]:
        path, message = export_quotes(session, fmt, scope, export_path)
        if path:
            exports.add(path)  # the one kind of file the server will hand out
        # the download appears only once there is a generated file to offer
        return gr.File(value=path, visible=bool(path)), message

    def on_clear() -> tuple[Any, ...]:
        return (
            [],
            empty_evidence_html(),
            "",
            SessionQuotes(),
            gr.File(value=None, visible=False),
            "",
        )

    with gr.Blocks(title="mlqi — interview answers", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {APP_TITLE}\nAnswers from ML practitioners' interviews about quality issues, "
            "every quote verified verbatim against the transcripts — or *not in the interviews*.",
            elem_id="app-header",
        )
        session_state = gr.State(SessionQuotes())
        with gr.Tab("Chat", id="chat"):
            with gr.Accordion("Filters — apply to the next question", open=True):
                with gr.Row(equal_height=True):
                    f_interviews = gr.Dropdown(
                        choices=interview_choices(pipe),
                        value=[],
                        multiselect=True,
                        label="Interviews",
                        info="Empty = all interviews",
                        scale=3,
                        elem_id="filter-interviews",
                    )
                    f_codes = gr.Dropdown(
                        choices=code_choices(pipe),
                        value=[],
                        multiselect=True,
                        label="Codes",
                        info="Only passages carrying these codes",
                        scale=4,
                        elem_id="filter-codes",
                    )
                    f_codes_mode = gr.Radio(
                        choices=[("any", "any"), ("all", "all")],
                        value="any",
                        label="Match codes",
                        scale=1,
                        min_width=150,
                    )
                    with gr.Column(scale=2, min_width=200):
                        f_participant = gr.Checkbox(
                            value=True, label="Participants' speech only", elem_id="filter-role"
                        )
                        f_engine = gr.Dropdown(
                            choices=engines,
                            value=default_engine,
                            label="Engine",
                            elem_id="filter-engine",
                        )
                    f_k = gr.Slider(
                        minimum=1,
                        maximum=30,
                        step=1,
                        value=settings.top_k,
                        label="Passages retrieved",
                        scale=2,
                        elem_id="filter-k",
                    )
            with gr.Row(equal_height=False):
                with gr.Column(scale=6, min_width=420):
                    chatbot = gr.Chatbot(
                        value=[],
                        label="Conversation",
                        height=560,
                        elem_id="chat",
                        latex_delimiters=[],
                        feedback_options=None,
                        buttons=["copy", "copy_all"],
                        placeholder=(
                            "**Ask about the interviews.** Each question is answered from the "
                            "transcripts on its own, with verified quotes on the right."
                        ),
                    )
                    with gr.Row(equal_height=True, elem_id="ask-row"):
                        question = gr.Textbox(
                            label="Question",
                            placeholder="e.g. How do practitioners handle missing values?",
                            show_label=False,
                            lines=1,
                            max_lines=4,
                            scale=6,
                            container=False,
                            elem_id="question",
                            autofocus=True,
                        )
                        send = gr.Button(
                            "Ask", variant="primary", scale=1, min_width=80, elem_id="ask"
                        )
                        clear = gr.Button(
                            "New chat",
                            variant="secondary",
                            scale=1,
                            min_width=110,
                            elem_id="clear",
                        )
                    coverage = gr.HTML("", label="Coverage", elem_id="coverage", js_on_load=None)
                    gr.Examples(list(EXAMPLE_QUESTIONS), inputs=question, label="Try")
                with gr.Column(scale=5, min_width=360):
                    gr.Markdown("### Evidence")
                    evidence = gr.HTML(
                        empty_evidence_html(),
                        label="Evidence",
                        max_height=640,
                        elem_id="evidence-panel",
                        js_on_load=None,
                    )
                    with gr.Accordion("Export quotes", open=True, elem_id="export"):
                        scope = gr.Radio(
                            choices=list(SCOPES),
                            value=SCOPES[0],
                            show_label=False,
                            elem_id="export-scope",
                        )
                        with gr.Row():
                            b_md = gr.Button("Markdown", size="sm", elem_id="export-markdown")
                            b_csv = gr.Button("CSV", size="sm", elem_id="export-csv")
                            b_tex = gr.Button("LaTeX", size="sm", elem_id="export-latex")
                        export_file = gr.File(
                            label="Download",
                            interactive=False,
                            visible=False,
                            elem_id="export-file",
                        )
                        export_status = gr.Markdown("", elem_id="export-status")

        with gr.Tab("Corpus", id="corpus"):
            gr.Markdown(corpus_summary(pipe))
            gr.Dataframe(
                value=corpus_rows(pipe),
                headers=CORPUS_HEADERS,
                interactive=False,
                label="Interviews",
                elem_id="corpus-table",
            )
            gr.Markdown("### Codes × interviews")
            gr.HTML(code_heatmap_html(pipe), elem_id="heatmap", js_on_load=None)
            gr.Markdown("### Passages by code")
            passage_codes = code_passage_choices(pipe)
            first_code = most_used_code(pipe)
            code_pick = gr.Dropdown(
                choices=passage_codes,
                value=first_code,
                label="Code",
                elem_id="code-pick",
            )
            passages = gr.HTML(
                code_passages_html(pipe, first_code), elem_id="code-passages", js_on_load=None
            )
            code_pick.change(
                lambda c: code_passages_html(pipe, c),
                inputs=code_pick,
                outputs=passages,
                api_visibility="private",
            )

        chat_inputs = [
            question,
            chatbot,
            session_state,
            f_interviews,
            f_codes,
            f_codes_mode,
            f_participant,
            f_engine,
            f_k,
        ]
        chat_outputs = [question, chatbot, evidence, coverage, session_state]
        question.submit(
            on_submit,
            chat_inputs,
            chat_outputs,
            api_name="chat",
            concurrency_limit=CHAT_CONCURRENCY,
            concurrency_id="chat",
        )
        send.click(
            on_submit,
            chat_inputs,
            chat_outputs,
            api_visibility="private",
            concurrency_limit=CHAT_CONCURRENCY,
            concurrency_id="chat",
        )
        chatbot.clear(
            on_clear,
            None,
            [chatbot, evidence, coverage, session_state, export_file, export_status],
            api_visibility="private",
        )
        clear.click(
            on_clear,
            None,
            [chatbot, evidence, coverage, session_state, export_file, export_status],
            api_visibility="private",
        )
        for button, fmt in ((b_md, "markdown"), (b_csv, "csv"), (b_tex, "latex")):
            button.click(
                lambda s, sc, _fmt=fmt: on_export(s, sc, _fmt),
                [session_state, scope],
                [export_file, export_status],
                api_visibility="private",
            )
    _REGISTRIES[demo] = exports
    return demo


# ---- what the server lets through ---------------------------------------------------------------

API = "/gradio_api"
FILE_ROUTES = (f"{API}/file=", f"{API}/file/", f"{API}/proxy=")
UPLOAD_ROUTES = (f"{API}/upload", f"{API}/process_recording")
LOGIN_ROUTES = ("/login", "/login/")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ExportRegistry:
    """The exports this process wrote: the only files the server hands out.

    Gradio serves a ``gr.File`` from its own cache copy, so a request is allowed when the file
    has the name of one we wrote, the same content, and lies where we wrote it or in that cache.
    Anything else in the export directory (a planted file, an older run's export) is refused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, tuple[Path, str]] = {}

    def add(self, path: str | Path) -> None:
        p = Path(path).resolve()
        digest = _sha256(p)
        with self._lock:
            self._files[p.name] = (p, digest)

    def allows(self, requested: str | Path, cache_dirs: Sequence[Path] = ()) -> bool:
        try:
            p = Path(requested).resolve(strict=True)
            with self._lock:
                entry = self._files.get(p.name)
            if entry is None or not p.is_file():
                return False
            where, digest = entry
            if p != where and not any(p.is_relative_to(d) for d in cache_dirs):
                return False
            return _sha256(p) == digest
        except (OSError, RuntimeError, ValueError):
            return False


_REGISTRIES: weakref.WeakKeyDictionary[Any, ExportRegistry] = weakref.WeakKeyDictionary()


def export_registry(demo: Any) -> ExportRegistry:
    """The registry of the exports ``demo`` wrote (empty for an app built elsewhere)."""
    registry = _REGISTRIES.get(demo)
    if registry is None:
        registry = _REGISTRIES[demo] = ExportRegistry()
    return registry


class LoginThrottle:
    """Failed logins per client: after ``FREE`` failures each attempt waits 2^(n-FREE) s, up to
    ``MAX_WAIT``; a success resets. An attempt counts as failed until it succeeds, so a burst
    sent in parallel is throttled as much as one sent in sequence."""

    FREE = 3
    MAX_WAIT = 30.0
    FORGET_AFTER = 3600.0
    MAX_CLIENTS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, float, float]] = {}  # failures, locked until, last seen

    def wait(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        with self._lock:
            _, until, _ = self._state.get(client, (0, 0.0, 0.0))
        return max(0.0, until - self.clock())

    def attempt(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._state) >= self.MAX_CLIENTS:
                self._forget(now)
            n, until, _ = self._state.get(client, (0, 0.0, now))
            n += 1
            if n >= self.FREE:
                until = now + min(self.MAX_WAIT, 2.0 ** (n - self.FREE))
            self._state[client] = (n, until, now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._state.pop(client, None)

    def not_counted(self, client: str) -> None:
        """A malformed request: not a password guess."""
        with self._lock:
            n, until, seen = self._state.get(client, (1, 0.0, 0.0))
            if n <= 1:
                self._state.pop(client, None)
            else:
                self._state[client] = (n - 1, until, seen)

    def _forget(self, now: float) -> None:
        for key, (_, until, seen) in list(self._state.items()):
            if until <= now and now - seen > self.FORGET_AFTER:
                del self._state[key]
        while len(self._state) >= self.MAX_CLIENTS:  # still full: drop the oldest
            del self._state[min(self._state, key=lambda k: self._state[k][2])]


def _route(scope: dict[str, Any]) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "") or "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return re.sub(r"/{2,}", "/", path)


async def _refuse(send: Callable[..., Any], status: int, message: str, **headers: str) -> None:
    body = json.dumps({"detail": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class AppGuard:
    """ASGI middleware in front of Gradio's routes: no uploads, no file but this process's
    exports (always as a download), and a growing wait after failed logins."""

    def __init__(
        self,
        app: Callable[..., Any],
        exports: ExportRegistry,
        cache_dirs: Sequence[Path] = (),
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.app = app
        self.exports = exports
        self.cache_dirs = [Path(d).resolve() for d in cache_dirs]
        self.throttle = throttle

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route(scope)
        if path.startswith(UPLOAD_ROUTES):
            await _refuse(send, 403, "Uploads are disabled.")
            return
        for prefix in FILE_ROUTES:
            if path.startswith(prefix):
                await self._file(path[len(prefix) :], scope, receive, send)
                return
        if path in LOGIN_ROUTES and scope.get("method") == "POST" and self.throttle:
            await self._login(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _file(
        self,
        target: str,
        scope: dict[str, Any],
        receive: Callable[..., Any],
        send: Callable[..., Any],
    ) -> None:
        if "://" in target or not self.exports.allows(target, self.cache_dirs):
            await _refuse(send, 403, "File not allowed.")
            return
        name = Path(target).name

        async def as_download(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"content-disposition", b"x-content-type-options")
                ]
                headers += [
                    (b"content-disposition", f'attachment; filename="{name}"'.encode()),
                    (b"x-content-type-options", b"nosniff"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, as_download)

    async def _login(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        assert self.throttle is not None
        client = (scope.get("client") or ("unknown",))[0]
        wait = self.throttle.wait(client)
        if wait > 0:
            seconds = math.ceil(wait)
            await _refuse(
                send,
                429,
                f"Too many failed logins; try again in {seconds} s.",
                retry_after=str(seconds),
            )
            return
        self.throttle.attempt(client)
        status: list[int] = []

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            code = status[0] if status else 0
            if code == 200:
                self.throttle.succeeded(client)
            elif code in (422, 302):  # a malformed form, or no login configured
                self.throttle.not_counted(client)


# ---- serving -------------------------------------------------------------------------------------


def parse_auth(value: str) -> tuple[str, str] | None:
    """``user:password`` → (user, password); empty → no login."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError("MLQI_AUTH must look like user:password")
    return user, password


def serve(
    demo: gr.Blocks,
    settings: Settings,
    export_dir: str | Path,
    block: bool = True,
    quiet: bool = False,
) -> str:
    """Start the server on ``settings.host:port`` (loopback by default); returns its URL.

    No share link, no analytics, no MCP server, no monitoring page, no run history, no
    uploads; the only files the server hands out are the exports this process wrote, as
    downloads (``AppGuard``), and failed logins slow further attempts down.
    """
    from gradio.utils import get_upload_folder
    from starlette.middleware import Middleware

    auth = parse_auth(settings.auth)
    blocked = [str(Path(p).resolve()) for p in (settings.corpus, settings.index_dir)]
    cache = Path(getattr(demo, "GRADIO_CACHE", None) or get_upload_folder())
    guard = Middleware(
        AppGuard,  # type: ignore[arg-type]
        exports=export_registry(demo),
        cache_dirs=[cache, Path(get_upload_folder())],
        throttle=LoginThrottle() if auth else None,
    )
    demo.queue(default_concurrency_limit=CHAT_CONCURRENCY)
    _, local_url, _ = demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        auth=auth,
        auth_message="Log in to the interview assistant." if auth else None,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        allowed_paths=[str(Path(export_dir).resolve())],
        blocked_paths=blocked,
        max_file_size=0,  # the app takes no uploads (AppGuard refuses the route as well)
        app_kwargs={"middleware": [guard]},
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        run_history=False,
        footer_links=["api"],
        theme=_theme(),
        css=CSS,
    )
    url = str(local_url)
    if not quiet:
        login = " (login required)" if auth else ""
        print(f"Open {url} in your browser{login}. Ctrl+C stops the app.", flush=True)
    if block:
        demo.block_thread()
    return url


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="app.py",
        description="Open the interview assistant in a browser (http://127.0.0.1:7860 by default).",
    )
    p.add_argument("--host", help="address to bind (MLQI_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (MLQI_PORT; default 7860)")
    p.add_argument("--corpus", type=Path, help="transcript directory (MLQI_CORPUS)")
    p.add_argument("--index-dir", type=Path, help="index location (MLQI_INDEX_DIR)")
    p.add_argument("--export-dir", type=Path, help="where exports are written (MLQI_EXPORT_DIR)")
    return p.parse_args(list(argv) if argv is not None else None)


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        "host": args.host,
        "port": args.port,
        "corpus": args.corpus,
        "index_dir": args.index_dir,
        "export_dir": args.export_dir,
    }
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def prepare_pipeline(settings: Settings, progress: bool = True) -> Pipeline:
    """Build (or bring up to date) the index, then load the pipeline; prints progress."""
    from .embedding import Embedder
    from .index import build_index, current_generation
    from .pipeline import Pipeline
    from .transcripts import parse_paths

    embedder = Embedder.from_settings(settings)
    first = current_generation(Path(settings.index_dir)) is None
    if first:
        interviews, _ = parse_paths([settings.corpus])
    if first and interviews:
        print(
            f"Building the index of {len(interviews)} transcripts in {settings.index_dir} "
            "(first run; this takes a minute)…",
            flush=True,
        )
    else:
        print(f"Checking the index in {settings.index_dir} against {settings.corpus}…", flush=True)
    report = build_index(settings, embedder=embedder, progress=progress)
    for err in report.errors:
        print(f"skipped: {err}", file=sys.stderr)
    if report.changed:
        print(
            f"Index ready: {report.chunks} passages ({report.embedded} embedded) "
            f"in {report.seconds:.0f} s.",
            flush=True,
        )
    else:
        print(f"Index up to date: {report.chunks} passages.", flush=True)
    return Pipeline.load(settings, embedder=embedder)


def check_port_free(host: str, port: int) -> None:
    """Fail in a second, not after the index is loaded, when the port is taken."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "pick another with --port or MLQI_PORT"
            ) from None


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    offline_environment()
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
        auth = parse_auth(settings.auth)  # fail before the slow part
        if settings.host not in ("127.0.0.1", "localhost", "::1") and not auth:
            print(
                f"warning: binding to {settings.host} makes the app reachable from other "
                "machines without a login; set MLQI_AUTH=user:password",
                file=sys.stderr,
            )
        check_port_free(settings.host, settings.port)
        export_dir = resolve_export_dir(settings.export_dir)
        if settings.export_dir is None:
            # A directory we made holds confidential quotes: it goes when the app does.
            atexit.register(shutil.rmtree, export_dir, ignore_errors=True)
        # Gradio copies every file it serves into its cache; keep those copies with the exports.
        os.environ.setdefault("GRADIO_TEMP_DIR", str(export_dir / ".gradio-cache"))
        t0 = time.perf_counter()
        pipe = prepare_pipeline(settings)
        pipe.embedder.embed_one("warm up")  # the first question should not pay for model loading
        demo = build_ui(pipe, export_dir)
        print(f"Exports go to {export_dir}", flush=True)
        print(f"Ready in {time.perf_counter() - t0:.0f} s.", flush=True)
        serve(demo, settings, export_dir, block=True)
    except MlqiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:  # a malformed MLQI_* setting
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "settings"
        print(f"error: invalid setting {where}: {first.get('msg', exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
