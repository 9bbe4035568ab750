"""Reviewing suggested codes in a real browser: ``python app.py`` on a copy of the coded index
(five interviews, two coders each), driven by headless Chromium.

Open the Corpus tab, compute the suggestions, accept one and reject another, download the
accepted ones as CSV and read its row and coder; the heatmap shows a hatched cell where only a
suggestion falls. Screenshots land in ``test-output/``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from test_browser import OUTPUT, browser, download_export, running_app
from test_browser import chromium as chromium  # noqa: F401 - the fixture, shared

from mlqi_rag.index import Index
from mlqi_rag.review import ReviewStore
from mlqi_rag.settings import Settings
from mlqi_rag.suggest import DEFAULT_MIN_CONFIDENCE

pytestmark = [pytest.mark.slow, pytest.mark.browser]

COMPUTE_MS = 300_000


def test_compute_accept_reject_export_and_hatched_heatmap(
    review_index: tuple[Settings, float], chromium: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    s, mc = review_index
    for cached in (Path(s.index_dir) / "review").glob("suggestions-*.json"):
        cached.unlink()  # the app computes them itself, on demand
    OUTPUT.mkdir(exist_ok=True)
    args = ["--index-dir", str(s.index_dir), "--corpus", str(s.corpus)]
    work = tmp_path / "app"
    work.mkdir()
    with running_app(work, *args) as (url, exports, log_path):
        with browser(chromium, tmp_path / "chromium-profile") as (context, page):
            page.goto(url)
            page.get_by_role("tab", name="Corpus").click()
            summary = page.locator("#review-summary")
            expect(summary.locator('[data-state="not-computed"]')).to_be_visible()
            expect(page.locator("#heatmap td.heat-suggested")).to_have_count(0)
            if mc != DEFAULT_MIN_CONFIDENCE:
                page.locator("#review-min-confidence input").fill(str(mc))
            page.locator("#review-compute").click()
            done = summary.locator('[data-state="computed"]')
            try:
                done.wait_for(timeout=COMPUTE_MS)
            finally:
                page.locator("#review").screenshot(path=str(OUTPUT / "browser-review.png"))
            store = ReviewStore(Index.load(s), mc)
            assert store.cached()  # the app cached what it computed, beside the index
            expected = store.items()
            expect(done).to_have_attribute("data-total", str(len(expected)))
            rows = page.locator("#review-table tr.rv-row")
            expect(rows).to_have_count(min(len(expected), 200))
            first, second = expected[0], expected[1]
            assert rows.nth(0).get_attribute("data-id") == first.id
            expect(rows.nth(0).locator(".rv-examples li").first).to_be_visible()

            # accept the first row, reject the second (picked in the selection box)
            pick = page.locator("#review-select input").first
            for n, (button, word) in enumerate(
                (("#review-accept", "Accepted"), ("#review-reject", "Rejected"))
            ):
                pick.click()
                page.get_by_role("option").nth(n).click()
                page.keyboard.press("Escape")
                page.locator(button).click()
                expect(page.locator("#review-message")).to_contain_text(f"{word} 1 suggestion")
            expect(page.locator(f'#review-table tr[data-id="{first.id}"]')).to_have_attribute(
                "data-status", "accepted"
            )
            expect(page.locator(f'#review-table tr[data-id="{second.id}"]')).to_have_attribute(
                "data-status", "rejected"
            )
            expect(done).to_have_attribute("data-accepted", "1")
            expect(done).to_have_attribute("data-rejected", "1")

            # the status filter narrows the table to the accepted one
            page.locator("#review-status input").first.click()
            page.get_by_role("option", name="accepted", exact=True).click()
            expect(rows).to_have_count(1)
            expect(rows.first).to_have_attribute("data-id", first.id)

            # hatched cells: codes only suggestions put in an interview, with the legend
            hatched = page.locator("#heatmap td.heat-suggested")
            assert hatched.count() >= 1
            expect(page.locator("#heatmap .heat-legend")).to_contain_text("hatched")
            hatched.first.scroll_into_view_if_needed()
            page.locator("#heatmap").screenshot(path=str(OUTPUT / "browser-review-heatmap.png"))

            download = download_export(
                page,
                "#review-export",
                "#review-file",
                "#review-export-status",
                "1 accepted suggestion → mlqi-suggestions-accepted-",
            )
            text = Path(download.path()).read_bytes().decode("utf-8")
            page.locator("#review").screenshot(path=str(OUTPUT / "browser-review-decided.png"))
            page.screenshot(path=str(OUTPUT / "browser-review-corpus.png"), full_page=True)
        log = log_path.read_text()

    assert text.startswith(
        "interview_id,turn_index,start,end,passage,code,coder,confidence,decided_at\r\n"
    )
    [row] = list(csv.DictReader(io.StringIO(text, newline="")))
    assert row["coder"] == "suggested-accepted"
    assert (row["interview_id"], row["code"], row["passage"]) == (
        first.interview_id,
        first.code,
        first.text,
    )
    assert (int(row["start"]), int(row["end"])) == (first.start, first.end)
    files = [p.name for p in exports.iterdir() if p.name != ".gradio-cache"]
    assert len(files) == 1 and files[0].startswith("mlqi-suggestions-accepted-"), files
    # the decisions were kept beside the index, and the app's view is what the store says
    after = {it.id: it.status for it in ReviewStore(Index.load(s), mc).items()}
    assert after[first.id] == "accepted" and after[second.id] == "rejected"
    assert "Traceback" not in log
