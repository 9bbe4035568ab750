"""Shared fixtures: the real seed corpus, the real study transcripts, and isolated write paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlqi_rag.settings import bundled_corpus, offline_environment

offline_environment()

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("MLQI_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    return bundled_corpus()


def shared_corpus(name: str) -> Path:
    """A folder of ``shared/corpus`` (never committed): required on CI, else the test skips."""
    d = shared_dir() / "corpus" / name
    if not d.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{d} is missing: CI must run with shared/ beside the checkout")
        pytest.skip(f"{d} not available")
    return d


@pytest.fixture(scope="session")
def mlsss_dir() -> Path:
    """The 36 study transcripts."""
    return shared_corpus("mlsss-transcripts")


@pytest.fixture(scope="session")
def delve_pdf_dir() -> Path:
    """The Delve prints: ``codings/`` (two coders per interview) and ``moderation/``."""
    return shared_corpus("delve-pdf")


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a test does may write into the checkout's index/ or exports."""
    monkeypatch.setenv("MLQI_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("MLQI_EXPORT_DIR", str(tmp_path / "exports"))


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real bundled model, loaded once per test session."""
    from mlqi_rag.embedding import Embedder
    from mlqi_rag.settings import Settings

    return Embedder.from_settings(Settings())


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory, embedder):  # type: ignore[no-untyped-def]
    """A real index (Chroma + BM25) of the bundled seed corpus, built once per session."""
    from mlqi_rag.build import build_index
    from mlqi_rag.settings import Settings

    s = Settings(index_dir=tmp_path_factory.mktemp("seed-index"))
    build_index(s, embedder, progress=False)
    return s


@pytest.fixture(scope="session")
def seed_pipeline(seed_index, embedder):  # type: ignore[no-untyped-def]
    from mlqi_rag.pipeline import Pipeline

    return Pipeline.load(seed_index, embedder)


@pytest.fixture(scope="session")
def mlsss_index(tmp_path_factory: pytest.TempPathFactory, mlsss_dir: Path, embedder):  # type: ignore[no-untyped-def]
    """A real index of the study's 36 transcripts (minutes to build: once per session)."""
    from mlqi_rag.build import build_index
    from mlqi_rag.settings import Settings

    s = Settings(corpus=mlsss_dir, index_dir=tmp_path_factory.mktemp("mlsss-index"))
    build_index(s, embedder, progress=False)
    return s


@pytest.fixture(scope="session")
def mlsss_pipeline(mlsss_index, embedder):  # type: ignore[no-untyped-def]
    from mlqi_rag.pipeline import Pipeline

    return Pipeline.load(mlsss_index, embedder)


CODED_TRANSCRIPTS = (
    "Interview 2.txt",
    "Interview 7.txt",
    "Interview 12.txt",
    "Interview 32 - PO.txt",
    "Interview 35.txt",
)


@pytest.fixture(scope="session")
def coded_corpus(
    tmp_path_factory: pytest.TempPathFactory, mlsss_dir: Path, delve_pdf_dir: Path
) -> Path:
    """Five interviews with several coded copies each: two coders' Delve print PDFs, the
    moderation PDFs of 12 and 32 (in a ``moderation`` folder) and the plain transcripts."""
    pdfs = delve_pdf_dir
    root = tmp_path_factory.mktemp("coded-corpus")
    (root / "moderation").mkdir()
    for pdf in sorted((pdfs / "codings").glob("*.pdf")):
        (root / pdf.name).symlink_to(pdf)
    for pdf in sorted((pdfs / "moderation").glob("*.pdf")):
        (root / "moderation" / pdf.name).symlink_to(pdf)
    for name in CODED_TRANSCRIPTS:
        (root / name).symlink_to(mlsss_dir / name)
    return root


@pytest.fixture(scope="session")
def coded_index(tmp_path_factory: pytest.TempPathFactory, coded_corpus: Path, embedder):  # type: ignore[no-untyped-def]
    """A real index of the coded corpus (a minute to build: once per session)."""
    from mlqi_rag.build import build_index
    from mlqi_rag.settings import Settings

    s = Settings(corpus=coded_corpus, index_dir=tmp_path_factory.mktemp("coded-index"))
    report = build_index(s, embedder, progress=False)
    assert not report.errors, report.errors
    return s


# ---- review of suggested codes: writable copies of the coded index --------------------------


@pytest.fixture(scope="session")
def coded_review_index(tmp_path_factory: pytest.TempPathFactory, coded_index):  # type: ignore[no-untyped-def]
    """A copy of the coded index whose suggested codes are computed once per session (cached
    in its ``review/`` folder); returns (settings, the minimum confidence they were computed
    at). The default confidence is used unless it leaves fewer than 4 suggestions in 2 codes,
    then lower ones: the review machinery needs some to review, whatever the model's
    calibration."""
    import shutil

    from mlqi_rag.index import Index
    from mlqi_rag.review import ReviewStore
    from mlqi_rag.settings import Settings
    from mlqi_rag.suggest import DEFAULT_MIN_CONFIDENCE

    dest = tmp_path_factory.mktemp("coded-review") / "index"
    shutil.copytree(coded_index.index_dir, dest, ignore=shutil.ignore_patterns("review"))
    s = Settings(corpus=coded_index.corpus, index_dir=dest)
    index = Index.load(s)
    for mc in (DEFAULT_MIN_CONFIDENCE, 0.05, 0.02, 0.01):
        rows = ReviewStore(index, mc).suggestions() or []
        if len(rows) >= 4 and len({r.code for r in rows}) >= 2:
            return s, mc
    pytest.fail(f"the suggestion model makes {len(rows)} suggestion(s) even at {mc}")


@pytest.fixture
def review_index(tmp_path: Path, coded_review_index):  # type: ignore[no-untyped-def]
    """A fresh copy of ``coded_review_index`` (suggestions cached, no decisions) for one test;
    returns (settings, minimum confidence)."""
    import shutil

    from mlqi_rag.settings import Settings

    s, mc = coded_review_index
    dest = tmp_path / "review-index"
    shutil.copytree(s.index_dir, dest, ignore=shutil.ignore_patterns("decisions.json"))
    return Settings(corpus=s.corpus, index_dir=dest), mc
