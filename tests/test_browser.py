"""End to end in a real browser: ``python app.py`` on loopback, driven by headless Chromium.

A researcher's path: ask a question, see the verified quote of interview 32 in the evidence
panel, open it in context, export the quotes as Markdown and get a file with the attribution.
Screenshots land in ``test-output/`` (gitignored) and in the test's tmp_path.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from netutil import free_port

from mlqi_rag.export import is_safe_export_name
from mlqi_rag.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output"
CHROMIUM = os.environ.get("MLQI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING = "How do practitioners handle missing values?"
STARTUP_SECONDS = 240
ANSWER_MS = 180_000


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must run the browser test (make browser)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    return CHROMIUM


@contextlib.contextmanager
def browser(chromium: str, profile: Path) -> Iterator[tuple[Any, Any]]:
    """Headless Chromium on a fresh profile (no cache, no cookies from an earlier run), with
    downloads accepted; yields (context, page) and closes the browser however the test ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 1000},
            accept_downloads=True,
        )
        try:
            yield context, context.new_page()
        finally:
            context.close()


def ask(page: Any, url: str, question: str) -> None:
    """Open the app and send ``question`` from its question box."""
    page.goto(url)
    box = page.locator("#question textarea, #question input").first
    box.wait_for(timeout=60_000)
    box.fill(question)
    box.press("Enter")


def wait_then_shoot(page: Any, locator: Any, shot: Path) -> None:
    """Wait for the answer to show ``locator``; the screenshot is taken either way, so a wait
    that times out still leaves a picture of what the page showed."""
    try:
        locator.wait_for(timeout=ANSWER_MS)
    finally:
        page.screenshot(path=str(shot), full_page=True)


def download_export(page: Any, button: str, file: str, status: str, says: str) -> Any:
    """Click an export button, wait for its file link and status line (which must contain
    ``says``), download the file as a user would; returns the Playwright download."""
    from playwright.sync_api import expect

    page.locator(button).click()
    link = page.locator(f"{file} a[download]").first
    link.wait_for(timeout=60_000)
    expect(page.locator(status)).to_contain_text(says)
    with page.expect_download() as info:
        link.click()
    return info.value


@contextlib.contextmanager
def running_app(work: Path, *args: str) -> Iterator[tuple[str, Path, Path]]:
    """``python app.py --port P ARGS`` on loopback until it answers; yields (url, export
    directory, server log) and stops it afterwards. Shared by every browser test."""
    exports = work / "exports"
    log_path = work / "app.log"
    port = free_port()
    env = {**os.environ, "MLQI_EXPORT_DIR": str(exports), "PYTHONUNBUFFERED": "1"}
    env.pop("MLQI_AUTH", None)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), *args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer in {STARTUP_SECONDS} s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url, exports, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def app_server(
    chromium: str, seed_index: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path]]:
    """``python app.py --port P --index-dir D`` on the session's prebuilt seed index (conftest);
    yields (url, export directory, server log)."""
    work = tmp_path_factory.mktemp("browser-app")
    with running_app(work, "--index-dir", str(seed_index.index_dir)) as app:
        yield app


def test_ask_see_evidence_in_context_and_export(
    app_server: tuple[str, Path, Path], chromium: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    url, exports, log_path = app_server
    OUTPUT.mkdir(exist_ok=True)
    requested: list[str] = []
    with browser(chromium, tmp_path / "chromium-profile") as (context, page):
        page.on("request", lambda r: requested.append(r.url))
        ask(page, url, MISSING)

        card = page.locator(
            '#evidence-panel .evidence-card[data-interview="32"][data-verified="true"]'
        ).first
        wait_then_shoot(page, card, tmp_path / "browser-chat.png")
        expect(card.locator(".ev-verified")).to_contain_text("✓ verified")
        expect(card.locator(".ev-quote")).not_to_be_empty()
        expect(page.locator("#chat")).to_contain_text(MISSING)
        expect(page.locator("#coverage")).to_contain_text("Searched")

        card.locator("summary", has_text="show in context").click()
        expect(card.locator(".ev-turn-cited mark").first).to_be_visible()
        card.scroll_into_view_if_needed()

        download = download_export(
            page, "#export-markdown", "#export-file", "#export-status", "mlqi-quotes-"
        )
        assert is_safe_export_name(download.suggested_filename)
        text = Path(download.path()).read_text(encoding="utf-8")
        assert "— Interview 32" in text
        assert f"**Question:** {MISSING}" in text
        for shot in (tmp_path / "browser-chat.png", OUTPUT / "browser-chat.png"):
            page.screenshot(path=str(shot), full_page=True)

        page.get_by_role("tab", name="Corpus").click()
        expect(page.locator("#heatmap table.heatmap")).to_be_visible()
        expect(page.locator("#code-passages .passage").first).to_be_visible()
        page.screenshot(path=str(OUTPUT / "browser-corpus.png"), full_page=True)

    # the file was generated into the app's export directory, under a safe name, and only there
    # the export itself; Gradio's copies of served files live in the hidden .gradio-cache/
    files = [p for p in exports.iterdir() if p.name != ".gradio-cache"]
    assert (exports / ".gradio-cache").is_dir()
    assert len(files) == 1 and is_safe_export_name(files[0].name)
    assert "— Interview 32" in files[0].read_text(encoding="utf-8")
    # nothing the page loaded came from anywhere but the app itself
    hosts = {urlsplit(u).netloc for u in requested if urlsplit(u).scheme in ("http", "https")}
    assert hosts == {urlsplit(url).netloc}, hosts
    log = log_path.read_text()
    assert "Traceback" not in log
    assert "Index up to date" in log or "Building the index of 5 transcripts" in log


GROUPED = "What experiences do practitioners report with public or third-party datasets?"


def test_evidence_panel_groups_quotes_by_practice(
    app_server: tuple[str, Path, Path], chromium: str, tmp_path: Path
) -> None:
    """An answer whose quotes fall into practices shows each group's cards under its name."""
    from playwright.sync_api import expect

    url, _, _ = app_server
    with browser(chromium, tmp_path / "chromium-profile") as (_, page):
        ask(page, url, GROUPED)
        groups = page.locator("#evidence-panel section.ev-group")
        wait_then_shoot(page, groups.first, tmp_path / "browser-groups.png")
        assert groups.count() >= 2
        for i in range(groups.count()):
            group = groups.nth(i)
            # clusters are themes; the passages of one interviewee each come last, as "other"
            last = i == groups.count() - 1 and group.get_attribute("data-source") == "others"
            expect(group.locator(".ev-group-head")).to_contain_text("other" if last else "theme")
            expect(group.locator(".evidence-card").first).to_be_visible()
            label = group.get_attribute("data-label") or ""
            assert label and label in page.locator("#chat").inner_text()
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "browser-groups.png"), full_page=True)
