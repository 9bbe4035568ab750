"""Starting the app: ``python app.py`` parses its flags into ``Settings``, brings the index up to
date, builds the UI and serves it.

Kept apart from ``ui`` because none of it decides what the app shows: it decides where and how
the app is reachable. Every choice here fails closed: loopback unless told otherwise, a login
when ``MLQI_AUTH`` is set, no share link, analytics, MCP server or uploads, and ``AppGuard`` in
front of Gradio's routes. Slow work (loading the model, indexing) comes after every check that
can fail in a second (settings, login format, a taken port).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, MlqiError
from .guard import AppGuard, LoginThrottle, export_registry
from .settings import Settings, offline_environment
from .ui import CHAT_CONCURRENCY, CSS, build_ui, resolve_export_dir

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr

    from .pipeline import Pipeline


def _theme() -> Any:
    import gradio as gr

    # Local fonts only (the default theme's), so the browser fetches nothing from elsewhere.
    return gr.themes.Default(primary_hue="blue", neutral_hue="slate")


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
    from .build import build_index
    from .embedding import Embedder
    from .index import current_generation
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
