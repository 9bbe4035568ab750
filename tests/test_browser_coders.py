"""The coder views and the coverage strip in a real browser: ``python app.py`` on the coded
corpus (five interviews, two coders each, moderation for two), driven by headless Chromium.

Ask a question and see every interview's verdict in the coverage strip; open the Corpus tab and
read interview 12's kappa in the agreement panel, switch the heatmap to one coder, download the
disagreements CSV. Screenshots land in ``test-output/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_browser import (
    MISSING,
    OUTPUT,
    ask,
    browser,
    download_export,
    running_app,
    wait_then_shoot,
)
from test_browser import chromium as chromium  # noqa: F401 - the fixture, shared

from mlqi_rag import agreement
from mlqi_rag.index import Index
from mlqi_rag.render_coders import fmt
from mlqi_rag.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def coded_app(
    chromium: str, coded_index: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path]]:
    """``python app.py`` on the session's coded index; yields (url, export dir, server log)."""
    work = tmp_path_factory.mktemp("browser-coders")
    args = ["--index-dir", str(coded_index.index_dir), "--corpus", str(coded_index.corpus)]
    with running_app(work, *args) as app:
        yield app


def test_coverage_strip_agreement_panel_and_disagreements_csv(
    coded_app: tuple[str, Path, Path], coded_index: Settings, chromium: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    url, exports, log_path = coded_app
    interviews = Index.load(coded_index).interviews
    k12 = agreement.passage_agreement(interviews["12"]).overall
    OUTPUT.mkdir(exist_ok=True)
    with browser(chromium, tmp_path / "chromium-profile") as (context, page):
        ask(page, url, MISSING)

        cells = page.locator("#coverage .cov-cell")
        wait_then_shoot(page, cells.first, OUTPUT / "browser-coders-chat.png")
        expect(cells).to_have_count(len(interviews))  # every interview searched, one cell
        expect(page.locator("#coverage .cov-head")).to_contain_text(
            f"of {len(interviews)} interviews discuss"
        )
        verdicts = {
            c.get_attribute("data-interview"): c.get_attribute("data-verdict") for c in cells.all()
        }
        assert set(verdicts) == set(interviews)
        assert set(verdicts.values()) <= {"discusses", "touches", "silent"}
        assert "discusses" in verdicts.values(), verdicts
        # the strip is one or two lines under the chat, not a column of cells
        box_strip = page.locator("#coverage .cov-strip").bounding_box()
        assert box_strip is not None and box_strip["height"] < 80, box_strip
        page.locator("#coverage").screenshot(path=str(OUTPUT / "browser-coverage-strip.png"))

        page.get_by_role("tab", name="Corpus").click()
        row = page.locator('#agreement-table tr[data-interview="12"]')
        expect(row).to_be_visible()
        expect(row.locator('[data-stat="kappa"]')).to_have_text(fmt(k12.kappa))
        expect(row.locator('[data-stat="alpha"]')).to_have_text(fmt(k12.alpha))
        expect(row).to_contain_text("PO, Rached")
        expect(page.locator('#agreement-table tr[data-interview="*"]')).to_have_count(2)
        expect(page.locator("#corpus-table")).to_contain_text("moderation")
        page.screenshot(path=str(OUTPUT / "browser-coders-corpus.png"), full_page=True)

        download = download_export(
            page,
            "#export-disagreements",
            "#disagreements-file",
            "#disagreements-status",
            "mlqi-disagreements-",
        )
        text = Path(download.path()).read_bytes().decode("utf-8")
        assert text.startswith("interview,turn,speaker,start,end,code,applied_by")
        assert "\r\n12," in text

        # the heatmap, as one coder coded it
        heat = page.locator("#heatmap-coder input").first
        heat.click()
        page.get_by_role("option", name="Rached", exact=True).click()
        expect(page.locator('#heatmap .heatmap-wrap[data-coder="Rached"]')).to_be_visible()
        expect(page.locator("#heatmap")).to_contain_text("not coded by Rached")
        page.locator("#heatmap").screenshot(path=str(OUTPUT / "browser-heatmap-rached.png"))

    files = [p.name for p in exports.iterdir() if p.name != ".gradio-cache"]
    assert len(files) == 1 and files[0].startswith("mlqi-disagreements-"), files
    assert "Traceback" not in log_path.read_text()
