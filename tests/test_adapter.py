"""The question/passage adapter: a fitted linear map both sides pass through before they are
compared, applied to the stored vectors (``adapter``, ``adapter_fit``, ``mlqi-rag fit-adapter``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlqi_rag import adapter, adapter_fit
from mlqi_rag.build import build_index
from mlqi_rag.errors import MlqiError
from mlqi_rag.evaluation import Question, load_questions
from mlqi_rag.grouping import quote_vectors
from mlqi_rag.pipeline import Pipeline
from mlqi_rag.settings import Settings

EVAL = Path(__file__).resolve().parents[1] / "eval"


def test_the_shipped_adapter_is_a_real_map_and_none_is_the_identity() -> None:
    shipped = adapter.load(adapter.BUNDLED)
    assert shipped.matrix is not None and shipped.matrix.shape == (384, 384)
    assert not np.allclose(shipped.matrix, np.eye(384), atol=1e-3)  # it moved
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 384)).astype(np.float32)
    y = shipped.apply(x)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-5)
    assert shipped.apply(x[0]).shape == (384,)
    assert adapter.load(None).apply(x) is x
    assert Settings(embed_adapter="none").adapter_path() is None
    assert Settings(embed_adapter="").adapter_path() == adapter.BUNDLED


def test_the_adapter_names_the_index_and_picks_its_own_scan_model() -> None:
    raw, adapted = Settings(embed_adapter="none"), Settings(embed_adapter="")
    assert raw.index_fingerprint() != adapted.index_fingerprint()
    # without an adapter the fingerprint is the one before adapters existed (0056f10): an
    # index built then is not rebuilt
    assert raw.index_fingerprint() == "9cc0f545058d"
    assert raw.scan_model_path().name == "scan_model.json"
    assert adapted.scan_model_path().name == "scan_model_adapted.json"
    assert adapted.scan_model_path().is_file()
    # another adapter's scan model lives beside it, never the shipped adapter's
    own = Settings(embed_adapter="/data/fold3.npz").scan_model_path()
    assert own == Path("/data/fold3.scan_model.json")
    assert Settings(
        embed_adapter="/data/fold3.npz", scan_model=Path("m.json")
    ).scan_model_path() == Path("m.json")


@pytest.mark.parametrize("content", [b"", b"not a numpy file", None])
def test_a_broken_adapter_file_is_one_line(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "adapter.npz"
    if content is None:
        np.savez(path, matrix=np.ones((3, 4)))
    else:
        path.write_bytes(content)
    with pytest.raises(MlqiError, match="adapter.npz: not an adapter file"):
        Settings(embed_adapter=str(path)).index_fingerprint()
    with pytest.raises(MlqiError, match="adapter file missing"):
        adapter.load(tmp_path / "absent.npz")


@pytest.fixture(scope="module")
def adapted_seeds(seed_index: Settings, embedder: Any, tmp_path_factory: Any) -> Any:
    """The seeds indexed with the shipped adapter, reusing the raw index's vectors."""
    s = Settings(embed_adapter="", index_dir=tmp_path_factory.mktemp("adapted"))
    # the raw index's generation, copied in, is the cache the adapted build reuses
    shutil.copytree(seed_index.index_dir, s.index_dir, dirs_exist_ok=True)
    before = embedder.calls
    report = build_index(s, embedder, progress=False)
    return s, report, embedder.calls - before


def test_a_new_adapter_rewrites_chroma_and_embeds_nothing(adapted_seeds: Any) -> None:
    _, report, embedded = adapted_seeds
    assert report.changed and report.rebuilt_reason
    assert embedded == 0 and report.embedded == 0 and report.spans_embedded == 0


def test_questions_and_passages_meet_through_the_adapter(
    adapted_seeds: Any, seed_pipeline: Pipeline, embedder: Any
) -> None:
    s, _, _ = adapted_seeds
    pipe = Pipeline.load(s, embedder)  # a raw embedder is given the index's adapter
    shipped = adapter.load(adapter.BUNDLED)
    assert pipe.embedder.adapter.digest == shipped.digest and embedder.adapter.identity
    index, raw = pipe.index, seed_pipeline.index
    np.testing.assert_array_equal(index.raw_vectors, raw.vectors)  # stored: the model's own
    np.testing.assert_allclose(index.vectors, shipped.apply(raw.vectors), atol=1e-6)
    np.testing.assert_allclose(index.spans.vectors, shipped.apply(raw.spans.vectors), atol=1e-6)
    question = "How do practitioners handle missing values?"
    qv = pipe.embedder.embed_one(question)
    np.testing.assert_allclose(qv, shipped.apply(embedder.embed([question])[0]), atol=1e-6)
    # Chroma's cosines are the adapted vectors' (it holds them, not the raw ones)
    hits = index.dense(qv, 5, None)
    exact = index.vectors @ qv
    assert [p for p, _ in hits] == list(np.argsort(-exact)[:5])
    np.testing.assert_allclose([c for _, c in hits], np.sort(exact)[::-1][:5], atol=1e-4)
    answer = pipe.engine().answer(question)
    assert answer.citations and all(c.verified for c in answer.citations)


def test_passages_are_grouped_on_the_models_own_vectors(
    adapted_seeds: Any, seed_pipeline: Pipeline, embedder: Any
) -> None:
    pipe = Pipeline.load(adapted_seeds[0], embedder)
    rows = list(range(0, len(pipe.index.spans), 7))[:20]
    np.testing.assert_allclose(
        quote_vectors(pipe.index, rows, 0.5), quote_vectors(seed_pipeline.index, rows, 0.5)
    )


def _toy(n_spans: int = 60, dim: int = 8) -> adapter_fit.Labelled:
    """Questions whose gold spans sit along one direction that the raw cosine underweights."""
    rng = np.random.default_rng(1)
    spans = rng.normal(size=(n_spans, dim))
    topics = rng.normal(size=(12, dim))
    positives = []
    for i in range(12):
        j = (i * 5) % n_spans
        spans[j] = 0.3 * topics[i] + rng.normal(size=dim)  # the gold span shares a little
        positives.append((j,))
    norm = lambda m: (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    questions = tuple(
        Question(id=f"t{i}", question=f"q{i}", kind="thematic", split="dev" if i < 8 else "heldout")
        for i in range(12)
    )
    return adapter_fit.Labelled(
        "toy", questions, norm(topics), tuple(positives), norm(spans), np.array(["1"] * n_spans)
    )


def test_the_fit_learns_from_dev_only_and_is_the_same_every_time() -> None:
    data = _toy()
    first = adapter_fit.fit([data], ridge=0.0, steps=100, learning_rate=0.01)
    assert first.digest == adapter_fit.fit([data], ridge=0.0, steps=100, learning_rate=0.01).digest
    raw = adapter_fit.figures(data, adapter.load(None), "dev")
    fitted = adapter_fit.figures(data, first, "dev")
    assert fitted["span_hit@10"] > raw["span_hit@10"]
    # a heavy ridge keeps it near the identity
    stiff = adapter_fit.fit([data], ridge=100.0, steps=100, learning_rate=0.01)
    assert stiff.matrix is not None and first.matrix is not None
    moved = np.abs(first.matrix - np.eye(8)).max()
    assert np.abs(stiff.matrix - np.eye(8)).max() < moved / 5


@pytest.mark.slow
def test_the_shipped_adapter_is_what_the_fit_gives_and_helps_held_out(
    seed_pipeline: Pipeline, mlsss_pipeline: Pipeline
) -> None:
    """``adapter.npz`` is the refit on the real dev questions (``mlqi-rag fit-adapter`` exits
    1 otherwise), and on the 36 transcripts' held-out questions, never trained on, ranking by
    cosine through it puts the gold interviews higher (interview AP 0.636 → 0.660, 18
    questions) and a gold span in the top ten more often (0.543 → 0.629, 35 questions)."""
    sets = [
        adapter_fit.labelled("seeds", seed_pipeline, load_questions(EVAL / "questions.jsonl")),
        adapter_fit.labelled(
            "mlsss", mlsss_pipeline, load_questions(EVAL / "questions_mlsss.jsonl")
        ),
    ]
    fitted = adapter_fit.fit(sets)
    shipped = adapter.load(adapter.BUNDLED)
    assert fitted.matrix is not None and shipped.matrix is not None
    np.testing.assert_allclose(fitted.matrix, shipped.matrix, atol=1e-4)
    held = adapter_fit.report(sets, fitted)["corpora"]["mlsss"]["heldout"]
    assert held["adapted"]["interview_ap"] >= held["raw"]["interview_ap"] + 0.02, held
    assert held["adapted"]["span_hit@10"] >= held["raw"]["span_hit@10"] + 0.05, held


@pytest.mark.slow
def test_cross_fitting_gives_each_dev_question_an_adapter_that_never_saw_it(
    seed_index: Settings, embedder: Any
) -> None:
    """``mlqi-rag fit-adapter --cross-fit``: every dev question is scanned once, through the
    adapter fitted without its fold (not the one fitted on all of them, which saw it), and no
    held-out question is scanned at all."""
    from mlqi_rag import adapter_crossfit
    from mlqi_rag.fitting import pairs_for

    pipe = Pipeline.load(seed_index, embedder)
    questions = load_questions(EVAL / "questions.jsonl")
    data = adapter_fit.labelled("corpus", pipe, questions)
    sets = [("corpus", pipe, questions, data)]
    keys = [("corpus", q.id) for q in questions if q.split == "dev"]
    folds = adapter_crossfit.folds_of(keys)
    assert folds == adapter_crossfit.folds_of(keys)  # seeded
    sizes = np.bincount(list(folds.values()))
    assert len(sizes) == adapter_crossfit.FOLDS and sizes.max() - sizes.min() <= 1

    pairs, _ = adapter_crossfit.cross_fitted_pairs(sets, ridge=adapter_fit.RIDGE)
    dev = [q for q in questions if q.split == "dev"]
    raw, _ = pairs_for(pipe, dev, "corpus")  # as many interviews per question, raw or adapted
    assert sorted(p.question_id for p in pairs) == sorted(p.question_id for p in raw)
    assert {p.question_id for p in pairs} == {q.id for q in dev}

    # One question's features are those of the adapter fitted without its fold ...
    q = next(q for q in questions if q.split == "dev" and q.answerable and q.gold_quotes)
    left_out = {key for key, f in folds.items() if f == folds[("corpus", q.id)]}
    own = adapter_fit.fit([adapter_crossfit._without(data, left_out)], ridge=adapter_fit.RIDGE)
    expected, _ = pairs_for(adapter_crossfit.through(pipe, own), [q], "corpus")
    got = [p for p in pairs if p.question_id == q.id]
    assert [p.features for p in got] == [p.features for p in expected]
    # ... not those of the adapter that trained on it
    full = adapter_fit.fit([data], ridge=adapter_fit.RIDGE)
    insample, _ = pairs_for(adapter_crossfit.through(pipe, full), [q], "corpus")
    assert [p.features for p in got] != [p.features for p in insample]
