"""What the server lets through: no uploads, no file but this process's exports, and a growing
wait after failed logins.

Gradio serves more than this app needs. The app never takes a file from a browser, so the upload
routes are refused outright rather than trusted to ``max_file_size``. Its file routes would hand
out anything under an allowed path; the only files this app has a reason to serve are the quote
exports it wrote itself, so every other request there is refused (a file planted in the export
directory, an older run's export, a transcript), and what is served comes as a download, never
rendered in the browser. Gradio's login does not limit guesses, so failed logins slow the next
attempt down per client. ``AppGuard`` is the ASGI middleware ``serve`` puts in front of Gradio;
it is kept apart from the UI so it can be read, and tested, as one piece.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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


# Kept beside each app, so ``serve`` hands the middleware the registry the export button fills.
_REGISTRIES: weakref.WeakKeyDictionary[Any, ExportRegistry] = weakref.WeakKeyDictionary()


def attach_exports(demo: Any, registry: ExportRegistry) -> None:
    _REGISTRIES[demo] = registry


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
