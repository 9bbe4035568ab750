"""The corpus-wide evidence scan: span vectors at index time, calibrated verdicts per interview,
honest counts, absent names, the French interview, and answers grouped by practice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlqi_rag.calibration import FEATURES, ScanModel, bundled_model_path
from mlqi_rag.cli import cli
from mlqi_rag.evaluation import load_questions
from mlqi_rag.fitting import Pair, best_threshold, fit
from mlqi_rag.pipeline import Pipeline
from mlqi_rag.quotes import MAX_QUOTE_WORDS
from mlqi_rag.settings import Settings

MISSING = "How do practitioners handle missing values?"


# ---- the model file ----------------------------------------------------------------------------


def test_bundled_model_is_fitted_and_named_by_the_settings_hash(tmp_path: Path) -> None:
    model = ScanModel.load(bundled_model_path())
    assert model.features == FEATURES
    assert 0 < model.t_touches <= model.t_discusses < 1
    assert model.report["splits"], "the model ships with its held-out report"
    other = tmp_path / "m.json"
    ScanModel(**{**model.__dict__, "t_discusses": model.t_discusses / 2}).save(other)
    assert Settings(scan_model=other).settings_hash() != Settings().settings_hash()
    assert Settings(scan_model=other).index_fingerprint() == Settings().index_fingerprint()


def test_a_broken_model_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text('{"features": ["x"]}')
    with pytest.raises(Exception, match="not a usable scan model"):
        ScanModel.load(bad)


def test_fit_recovers_a_separable_rule() -> None:
    """Labels made by one feature: the fitted model must find it and put the bar between."""
    rng = np.random.default_rng(0)
    pairs = []
    for q in range(40):
        for iv in range(8):
            f = rng.normal(size=len(FEATURES))
            label = 2 if f[0] > 0.8 else 1 if f[0] > 0.3 else 0
            pairs.append(Pair(str(q), "c", "dev", str(iv), label, tuple(f), True))
    model = fit(pairs)
    assert np.argmax(np.abs(model.coef_discusses)) == 0
    x = np.array([p.features for p in pairs])
    p_d, _ = model.predict(x)
    predicted = p_d >= model.t_discusses
    truth = np.array([p.label == 2 for p in pairs])
    assert (predicted == truth).mean() > 0.95


def test_ablation_leaves_out_what_it_names() -> None:
    """``calibrate --ablate``: out of fold, the model without the one feature that made the
    labels lists far worse than the model with it; without a noise feature, about the same."""
    from mlqi_rag.validation import cross_validated

    rng = np.random.default_rng(0)
    pairs = []
    for q in range(40):
        for iv in range(8):
            f = rng.normal(size=len(FEATURES))
            pairs.append(Pair(str(q), "c", "dev", str(iv), 2 if f[0] > 0.8 else 0, tuple(f), True))
    every = {("c", str(q)) for q in range(40)}
    full = cross_validated(pairs, coverage=every, repeats=1)["c"]
    blind = cross_validated(pairs, coverage=every, without=[FEATURES[0]], repeats=1)["c"]
    noise = cross_validated(pairs, coverage=every, without=[FEATURES[5]], repeats=1)["c"]
    assert full["coverage_f1"] > 0.8 and full["questions"] == 40
    assert blind["coverage_f1"] < full["coverage_f1"] - 0.3
    assert abs(noise["coverage_f1"] - full["coverage_f1"]) < 0.05
    with pytest.raises(ValueError, match="unknown feature"):
        cross_validated(pairs, without=["no_such_feature"])


def test_calibrate_refuses_an_unknown_feature_to_ablate() -> None:
    result = CliRunner().invoke(cli, ["calibrate", "--ablate", "span_max,no_such_feature"])
    assert result.exit_code == 2
    assert "unknown feature no_such_feature" in result.output


def test_unanswerable_questions_do_not_set_the_bars() -> None:
    """Turning a question away is the question-level model's job, under its budget. A bar
    fitted on unanswerable questions (ruled out by name or not) counts their empty sets as
    successes: it rises, and turns answerable questions with one weak interview away."""
    rng = np.random.default_rng(2)
    pairs, ruled = [], set()
    for q in range(60):
        # half name a tool no transcript mentions; a quarter are answered by one interview
        # that matches weakly; a quarter by one strong and one weak interview
        kind = "ruled" if q % 2 == 0 else "weak" if q % 4 == 1 else "strong"
        for iv in range(8):
            f = rng.normal(size=len(FEATURES)) * 0.2
            boost = {("ruled", 0): 1.0, ("weak", 0): 1.0, ("strong", 0): 2.0, ("strong", 1): 1.0}
            f[0] += boost.get((kind, iv), 0.0)  # similar-sounding passages score like weak
            label = 2 if (kind, iv) in boost and kind != "ruled" else 0
            pairs.append(Pair(str(q), "c", "dev", str(iv), label, tuple(f), True))
        if kind == "ruled":
            ruled.add(("c", str(q)))
    fitted = fit(pairs, ruled=ruled)
    # ruled out by name or left to the question-level model, they do not move the bar
    assert fit(pairs).t_discusses == pytest.approx(fitted.t_discusses)
    x = np.array([p.features for p in pairs])
    p_d, _ = fitted.predict(x)
    every_question = best_threshold(pairs, p_d, 2)  # the bar fitted on all 60
    assert fitted.t_discusses < every_question

    def turned_away(bar: float) -> int:
        return sum(
            not any(p_d[i] >= bar for i in range(q * 8, q * 8 + 8)) for q in range(60) if q % 2
        )

    assert turned_away(fitted.t_discusses) < turned_away(every_question)
    assert fitted.report["dev_questions"] == 30  # the question-level model saw the open ones


def test_which_questions_list_the_expected_number_of_interviews() -> None:
    """ "Which interviewees…": calibrated probabilities sum to the expected count, and the list
    is that many of the strongest; a question naming its interviews, or a model with its own
    "which" bar, uses a bar."""
    model = ScanModel.load(bundled_model_path())
    assert model.t_which < 0  # the shipped model lists by expected count
    f = {name: i for i, name in enumerate(FEATURES)}
    p_d = np.array([0.9, 0.8, 0.55, 0.3, 0.2, 0.15, 0.1])  # sums to 3.0
    x = np.zeros((len(p_d), len(FEATURES)))
    x[:, f["asks_which"]] = 1.0
    assert model.discussing(x, p_d).tolist() == [True] * 3 + [False] * 4
    assert not model.discussing(x, p_d / 10).any()  # expected count 0.3: nobody
    named = x.copy()
    named[0, f["named_interview"]] = 1.0
    assert model.discussing(named, p_d).tolist() == (p_d >= model.t_discusses).tolist()
    how = x.copy()
    how[:, f["asks_which"]] = 0.0
    assert model.discussing(how, p_d).tolist() == (p_d >= model.t_discusses).tolist()
    own_bar = ScanModel(**{**model.__dict__, "t_which": 0.25})
    assert own_bar.discussing(x, p_d).sum() == 4


def test_count_range_widens_with_uncertainty_and_holds_what_is_listed() -> None:
    """The range of a "which" count: mean Σp, variance Σp(1−p) scaled by the fitted spread;
    certain interviews (name-sayers) are its floor and the count shown is always inside."""
    from mlqi_rag.calibration import count_range

    none = np.zeros(8, dtype=bool)
    sure = np.array([0.99] * 3 + [0.01] * 5)
    assert count_range(sure, none, 1.0, 3) == (2, 4)  # Σp = 3.02, sd 0.28 → floor/ceil
    unsure = np.array([0.5] * 6 + [0.0] * 2)  # Σp = 3, sd 1.22: 80% → 1.43…4.57
    assert count_range(unsure, none, 1.0, 3) == (1, 5)
    assert count_range(unsure, none, 4.0, 3) == (0, 7)  # a wider spread, a wider range
    named = none.copy()
    named[[6, 7]] = True  # said the name: counted whatever their probability
    lo, hi = count_range(unsure, named, 1.0, 5)
    assert lo >= 2 and hi <= 8 and lo <= 5 <= hi
    assert count_range(sure, none, 1.0, 7) == (2, 7)  # the shown count stays inside


def test_only_which_questions_get_a_count_range() -> None:
    model = ScanModel.load(bundled_model_path())
    assert model.count_spread > 0
    assert model.report["model"]["count_range"]["in_range"] >= 0.8  # dev, out of fold
    f = {name: i for i, name in enumerate(FEATURES)}
    p_d = np.array([0.9, 0.8, 0.55, 0.3, 0.2, 0.15, 0.1])
    x = np.zeros((len(p_d), len(FEATURES)))
    assert model.count_range(x, p_d) is None  # "how do…": the count is a bar's decision
    x[:, f["asks_which"]] = 1.0
    lo, hi = model.count_range(x, p_d) or (-1, -1)
    assert lo <= int(model.discussing(x, p_d).sum()) <= hi and hi - lo >= 2
    unfitted = ScanModel(**{**model.__dict__, "count_spread": 0.0})
    assert unfitted.count_range(x, p_d) is None


def test_which_questions_list_whoever_says_the_name() -> None:
    """ "Which participants mention LightGBM?": interviews that say the name are listed however
    weak their similarity, unless most searched interviews say it ("ML"); only for a "which"
    question over the corpus."""
    from mlqi_rag.calibration import NAME_SHARE

    model = ScanModel.load(bundled_model_path())
    f = {name: i for i, name in enumerate(FEATURES)}
    p_d = np.array([0.9, 0.8, 0.55, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02, 0.01])  # sums to 3.08
    x = np.zeros((len(p_d), len(FEATURES)))
    x[:, f["asks_which"]] = 1.0
    x[[7, 9], f["name_hit"]] = 1.0
    x[[7, 9], f["has_name"]] = 1.0
    assert model.discussing(x, p_d).tolist() == [True] * 3 + [False] * 4 + [True, False, True]
    assert model.name_listed(x).tolist() == [False] * 7 + [True, False, True]
    common = x.copy()
    common[: int(NAME_SHARE * len(p_d)) + 1, f["name_hit"]] = 1.0  # said by most: no one
    assert model.discussing(common, p_d).tolist() == [True] * 3 + [False] * 7
    how = x.copy()
    how[:, f["asks_which"]] = 0.0
    assert model.discussing(how, p_d).tolist() == (p_d >= model.t_discusses).tolist()
    assert not model.name_listed(how).any()
    # a search filtered to these rows: whether the name picks anyone out is the corpus's fact
    assert model.name_listed(common, said_in=(2, 36)).tolist() == common[:, f["name_hit"]].tolist()
    assert not model.name_listed(x, said_in=(30, 36)).any()
    # the scan says who says a telling name (not "ML", said by most): that, not ``name_hit``
    said = np.zeros(len(p_d))
    said[[8]] = 1.0
    assert model.name_listed(common, said=said).tolist() == [False] * 8 + [True, False]
    assert model.discussing(common, p_d, said=said).tolist() == [True] * 3 + [False] * 5 + [
        True,
        False,
    ]
    assert model.count_range(common, p_d, said=said) == model.count_range(
        common, p_d, model.discussing(common, p_d, said=said), said > 0
    )


def test_how_far_the_strongest_interview_stands_out() -> None:
    """``p_z``: a flat floor with one stray interview stands far out; a question that lifts
    several interviews spreads them and stands out less; one interview, or all equal, is 0."""
    from mlqi_rag.calibration import ABSTAIN_FEATURES, question_features

    def p_z(p_d: list[float]) -> float:
        x = np.zeros((len(p_d), len(FEATURES)))
        return float(question_features(x, np.array(p_d))[ABSTAIN_FEATURES.index("p_z")])

    stray = [0.3] + [0.02] * 35
    lifted = [0.9, 0.8, 0.8, 0.7, 0.6, 0.5] + [0.05] * 30
    assert p_z(stray) == pytest.approx((0.3 - np.mean(stray)) / np.std(stray))
    assert p_z(stray) > 5.0 > 3.0 > p_z(lifted) > 0.0
    # five interviews: the top is at most sqrt(n - 1) standard deviations out
    assert p_z([0.9, 0.0, 0.0, 0.0, 0.0]) == pytest.approx(2.0)
    assert p_z([0.4]) == 0.0 and p_z([0.1, 0.1, 0.1]) == 0.0


def test_a_which_question_about_a_name_interviewees_say_is_not_turned_away() -> None:
    """ "Which participants mention LightGBM?" is answered by the interviews that say it,
    whatever the question-level model makes of it; a "how" question, or a name most
    interviews say, gets no such pass; a named tool no transcript mentions is still out."""
    from mlqi_rag.calibration import answered_by_name
    from mlqi_rag.scan import Scan

    f = {name: i for i, name in enumerate(FEATURES)}
    x = np.zeros((10, len(FEATURES)))
    x[:, f["asks_which"]] = 1.0
    x[[7, 9], f["name_hit"]] = 1.0
    assert answered_by_name(x)
    how = x.copy()
    how[:, f["asks_which"]] = 0.0
    common = x.copy()
    common[:6, f["name_hit"]] = 1.0
    assert not answered_by_name(how) and not answered_by_name(common)
    said = np.zeros(10)
    said[3] = 0.5  # one of the telling names, however often the common one is said
    assert answered_by_name(common, said) and not answered_by_name(x, np.zeros(10))
    sure = Scan("q", (), p_out_of_scope=0.99, t_out_of_scope=0.7)
    assert sure.out_of_scope
    assert not Scan(
        "q", (), p_out_of_scope=0.99, t_out_of_scope=0.7, answered_by_name=True
    ).out_of_scope
    ruled = Scan("q", (), ("Snorkel",), ruled_out_by_name=True, answered_by_name=True)
    assert ruled.out_of_scope
    # a name some interview does not say, beside others they do, keeps the question open
    assert not Scan("q", (), ("Keras",), p_out_of_scope=0.1, t_out_of_scope=0.7).out_of_scope


def test_abstention_bar_keeps_false_abstention_within_the_budget() -> None:
    """The fitted bar: the most abstention with at most 5% of answerable questions turned away,
    strictly between probabilities (never on a training point)."""
    from mlqi_rag.calibration import MAX_FALSE_ABSTENTION
    from mlqi_rag.fitting import _abstain_threshold

    rng = np.random.default_rng(1)
    answerable = rng.beta(2, 5, size=60)  # mostly low P(out of scope), a few high
    unanswerable = rng.beta(5, 2, size=20)
    p = np.concatenate([answerable, unanswerable])
    out = np.array([False] * 60 + [True] * 20)
    t, rates = _abstain_threshold(p, out)
    assert np.mean(answerable >= t) <= MAX_FALSE_ABSTENTION
    assert rates["false_abstention"] == pytest.approx(np.mean(answerable >= t), abs=1e-4)
    assert t not in set(p.tolist())
    # any lower bar that still abstains on more unanswerable questions breaks the budget
    lower = sorted(x for x in unanswerable if x < t)
    if lower:
        assert np.mean(answerable >= lower[-1]) > MAX_FALSE_ABSTENTION
    # separable: every unanswerable question is turned away, no answerable one
    t2, r2 = _abstain_threshold(
        np.array([0.1, 0.2, 0.3, 0.7, 0.9]), np.array([0, 0, 0, 1, 1], bool)
    )
    assert 0.3 < t2 < 0.7 and r2 == {"abstention": 1.0, "false_abstention": 0.0}


def test_fit_is_the_same_in_every_process() -> None:
    """Folds are grouped by question with stable ids: str hashes differ between processes (and
    so did the folds, the chosen C and the shipped model, before)."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from mlqi_rag.calibration import FEATURES\n"
        "from mlqi_rag.fitting import Pair, fit\n"
        "rng = np.random.default_rng(0)\n"
        "pairs = [Pair(f'q{q}', 'c', 'dev', str(i), int(2 * (f[0] > 0.8)), tuple(f), q % 5 > 0)\n"
        "         for q in range(30) for i in range(6)\n"
        "         for f in [rng.normal(size=len(FEATURES)) + (q % 5 == 0) * -2]]\n"
        "print(fit(pairs).digest)\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1, digests


def test_saved_model_keeps_its_abstention_bar(tmp_path: Path) -> None:
    model = ScanModel.load(bundled_model_path())
    assert 0 < model.t_abstain < 1
    assert model.report["model"]["abstain_oof"]["false_abstention"] <= 0.05
    moved = ScanModel(**{**model.__dict__, "t_abstain": model.t_abstain / 2})
    moved.save(tmp_path / "m.json")
    back = ScanModel.load(tmp_path / "m.json")
    assert back.t_abstain == pytest.approx(model.t_abstain / 2, abs=1e-6)
    assert back.digest != model.digest  # the bar is part of what names the model


# ---- index time --------------------------------------------------------------------------------


def test_every_quotable_span_is_embedded_at_index_time(seed_pipeline: Pipeline) -> None:
    index = seed_pipeline.index
    spans = index.spans
    assert len(spans) > 1000
    norms = np.linalg.norm(spans.vectors, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3)
    for row in range(0, len(spans), 37):
        chunk = index.chunks[int(spans.chunk[row])]
        assert chunk.role == "participant"
        s, e = int(spans.start[row]), int(spans.end[row])
        assert any(a <= s and e <= b for a, b in _joined(chunk.segments, index, chunk))
        text = index.source_text(chunk.interview_id)[s:e]
        assert 0 < len(text.split()) <= MAX_QUOTE_WORDS


def test_passages_are_three_sentences_of_one_turn(seed_pipeline: Pipeline) -> None:
    """A passage's similarity, computed from its spans' similarities and the stored norm, is
    the cosine of its spans' summed vector; it never reaches into the next turn."""
    from mlqi_rag.spans import PASSAGE_SPANS, Passages, SpanTable

    spans = seed_pipeline.index.spans
    passages = Passages.of(spans)
    q = seed_pipeline.embedder.embed_one(MISSING)
    got = passages.similarity(spans.vectors @ q)
    for row in range(0, len(spans), 11):
        members = [
            r
            for r in range(row, min(row + PASSAGE_SPANS, len(spans)))
            if spans.chunk[r] == spans.chunk[row]
        ]
        summed = spans.vectors[members].astype(np.float64).sum(axis=0)
        assert got[row] == pytest.approx(summed @ q / np.linalg.norm(summed), abs=1e-5)
    last = np.r_[spans.chunk[1:] != spans.chunk[:-1], True]
    assert not passages.follows[last].any()  # a turn's last span is a passage of one
    assert (passages.follows.sum(axis=1) == 2).mean() > 0.5
    # a corpus of one or two spans (one turn) has passages too
    for n in (0, 1, 2):
        tiny = SpanTable(
            np.zeros(n, np.int32),
            spans.start[:n],
            spans.end[:n],
            spans.hashes[:n],
            spans.vectors[:n],
        )
        summed = spans.vectors[:n].astype(np.float64).sum(axis=0)
        sim = Passages.of(tiny).similarity(spans.vectors[:n] @ q)
        if n:
            assert sim[0] == pytest.approx(summed @ q / np.linalg.norm(summed), abs=1e-5)


def _joined(segments, index, chunk):  # type: ignore[no-untyped-def]
    from mlqi_rag.spans import touching

    return touching(segments, index.source_text(chunk.interview_id))


def test_a_question_embeds_only_itself(seed_pipeline: Pipeline) -> None:
    engine = seed_pipeline.engine("extractive")
    engine.answer("warm-up question about data quality")
    seed_pipeline.embedder.forget_questions()  # earlier tests asked it: a first asking here
    before = seed_pipeline.embedder.calls
    engine.answer(MISSING)
    assert seed_pipeline.embedder.calls - before == 1
    # "Which interviewees…" also embeds its topic without the framing, once
    before = seed_pipeline.embedder.calls
    engine.answer("Which participants talk about missing values?")
    assert seed_pipeline.embedder.calls - before == 2


def test_which_questions_are_retrieved_by_their_topic(seed_pipeline: Pipeline) -> None:
    from mlqi_rag.question import topic_of
    from mlqi_rag.retrieval import Filters

    q = "Which participants talk about missing values in their data?"
    result = seed_pipeline.retriever.retrieve(q, filters=Filters())
    topic = seed_pipeline.embedder.embed_one(topic_of(q))
    vectors = seed_pipeline.index.vectors
    by_pos = {c.id: i for i, c in enumerate(seed_pipeline.index.chunks)}
    for hit in result.hits:
        assert hit.dense == pytest.approx(float(vectors[by_pos[hit.chunk.id]] @ topic), abs=1e-5)
    # the scan still gets the question's own vector
    assert result.query_vector is not None
    assert np.allclose(result.query_vector, seed_pipeline.embedder.embed_one(q))


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("Which participants talk about outliers in their data?", "outliers in their data"),
        ("Which interviewees mention using LightGBM?", "using LightGBM"),
        ("How many teams describe data drift?", "data drift"),
        ("which respondents use Docker, and why?", "Docker, and why"),
        (MISSING, MISSING),  # not a which-question: its own topic
        ("Which participants?", "Which participants?"),  # nothing left: the question
    ],
)
def test_topic_drops_the_which_framing(question: str, topic: str) -> None:
    from mlqi_rag.question import topic_of

    assert topic_of(question) == topic


def test_feedback_takes_few_spans_per_interview_and_expands_the_words(
    seed_pipeline: Pipeline,
) -> None:
    """Pseudo-relevance feedback: PRF_SPANS spans, at most PRF_PER_INTERVIEW from one
    interview; the lexical side reaches turns that use none of the question's own words."""
    from mlqi_rag.feedback import PRF_PER_INTERVIEW, PRF_SPANS
    from mlqi_rag.retrieval import Filters
    from mlqi_rag.stores import keyword_tokens

    scanner, index = seed_pipeline.scanner, seed_pipeline.index
    result = seed_pipeline.retriever.retrieve(MISSING, filters=Filters())
    assert result.query_vector is not None and result.allowed is not None
    allowed = result.allowed & np.array([c.role == "participant" for c in index.chunks])
    span_ok = allowed[index.spans.chunk]
    span_sim = np.where(span_ok, index.spans.vectors @ result.query_vector, -1.0)
    sims, rows = scanner._feedback.dense(span_sim, span_ok, result.query_vector)
    assert len(rows) == PRF_SPANS
    per = np.bincount([int(scanner.terms.chunk_interview[index.spans.chunk[r]]) for r in rows])
    assert per.max() <= PRF_PER_INTERVIEW
    assert (sims[~span_ok] == -1).all() and (sims[span_ok] > -1).all()
    scores = scanner._feedback.lexical(MISSING, rows, allowed)
    asked = set(keyword_tokens([MISSING])[0])
    own = index.keyword_scores(MISSING)
    reached = np.flatnonzero((scores > 0) & (own == 0))
    assert len(reached), "the added words reach turns the question's words do not"
    assert (scores[~allowed] == 0).all()
    assert not asked & set(keyword_tokens([index.chunks[int(reached[0])].embed_text])[0])
    scan = scanner.scan(result, result.query_vector)
    rel = [e.features["prf_bm25_rel"] for e in scan.interviews]
    assert len(rel) == 5 and max(rel) == pytest.approx(1.0) and min(rel) >= 0


# ---- answers on the seeds ----------------------------------------------------------------------


def test_missing_values_coverage_counts_every_searched_interview(seed_pipeline: Pipeline) -> None:
    answer = seed_pipeline.engine("extractive").answer(MISSING)
    cov = answer.coverage
    assert cov["of"] == 5 and cov["count"] == len(cov["interviews"])
    assert {"32", "35"} <= set(cov["interviews"])
    assert answer.text.startswith(f"{cov['count']} of 5 interviews discuss")
    assert {c.interview_id for c in answer.citations} == set(cov["interviews"])
    assert len(answer.evidence) == 5
    assert all(e["verdict"] in ("discusses", "touches", "silent") for e in answer.evidence)


def test_absent_named_tool_says_so_with_closest_passages(seed_pipeline: Pipeline) -> None:
    for question, name in (
        ("How do the interviewees use Snorkel to label their data?", "Snorkel"),
        ("What do participants say about Weights & Biases for tracking?", "Weights & Biases"),
        ("Did anyone use Label Studio to annotate images?", "Label Studio"),
    ):
        answer = seed_pipeline.engine("extractive").answer(question)
        assert answer.abstained and not answer.citations, question
        assert answer.text.startswith(f"No interview mentions {name}."), answer.text
        assert "closest, not an answer" in answer.text
        assert answer.closest


def test_names_the_corpus_does_use_are_not_absent(seed_pipeline: Pipeline) -> None:
    scanner = seed_pipeline.scanner
    assert scanner.absent_names("How is GitHub used by the teams?") == ()
    assert scanner.absent_names("Which interviewees talk about missing values?") == ()
    assert scanner.absent_names("In interview 17, what did the team deploy?") == ()


def test_answer_lists_the_passages_it_read(seed_pipeline: Pipeline) -> None:
    """The turns of its quotes first, strongest interview first and each interview's best
    quote before any second one, then the other retrieved passages; an abstention read the
    retrieved ones."""
    engine = seed_pipeline.engine("extractive")
    answer = engine.answer(MISSING)
    assert not answer.abstained
    ids = [h.chunk.id for h in answer.passages]
    assert len(ids) == len(set(ids))
    quoted = {
        h.chunk.id
        for h in answer.passages
        for c in answer.citations
        if h.chunk.interview_id == c.interview_id and h.chunk.start <= c.start < h.chunk.end
    }
    assert set(ids[: len(quoted)]) == quoted  # quote turns lead
    # every interview's best quote before any interview's second, strongest interview first
    wide = engine.answer("What do practitioners say about data quality?")
    quoting = [
        h.chunk.interview_id
        for h in wide.passages
        if any(
            h.chunk.interview_id == c.interview_id and h.chunk.start <= c.start < h.chunk.end
            for c in wide.citations
        )
    ]
    n = len(set(quoting))
    assert len(quoting) > n, quoting  # some interview is quoted from two turns
    assert quoting[:n] == [iv for iv in wide.coverage["interviews"] if iv in quoting], quoting
    first = answer.passages[0].chunk.interview_id
    assert first == answer.coverage["interviews"][0]
    retrieved = seed_pipeline.retriever.retrieve(MISSING)
    assert {h.chunk.id for h in retrieved.hits} <= set(ids)
    d = answer.to_dict()["passages"]
    assert [p["chunk_id"] for p in d] == ids
    gone = engine.answer("How do the interviewees use Snorkel for weak supervision?")
    assert gone.abstained
    assert [h.chunk.id for h in gone.passages] == [
        h.chunk.id
        for h in seed_pipeline.retriever.retrieve(
            "How do the interviewees use Snorkel for weak supervision?"
        ).hits
    ]


def test_ask_json_has_coverage(seed_index: Settings) -> None:
    result = CliRunner().invoke(
        cli, ["ask", MISSING, "--json"], env={"MLQI_INDEX_DIR": str(seed_index.index_dir)}
    )
    assert result.exit_code == 0, result.output
    cov = json.loads(result.stdout)["coverage"]
    assert set(cov) >= {"interviews", "touching", "count", "of"}
    assert cov["of"] == 5 and cov["count"] == len(cov["interviews"])


# ---- the 36 transcripts ------------------------------------------------------------------------


@pytest.mark.slow
def test_which_interviews_gets_the_complete_list(mlsss_pipeline: Pipeline) -> None:
    answer = mlsss_pipeline.engine("extractive").answer(
        "Which participants describe monitoring for data drift in production?"
    )
    cov = answer.coverage
    assert cov["of"] == 36
    # m010's gold: read twice, blind, and reconciled (eval/checks/adjudication.md)
    (m010,) = [
        q
        for q in load_questions(Path(__file__).parents[1] / "eval" / "questions_mlsss.jsonl")
        if q.id == "m010"
    ]
    gold, touching = set(m010.gold_interviews), set(m010.gold_touching)
    got = set(cov["interviews"])
    # most of the list, and not a flood: the interview-set F1 the issue scores (10 of 16 gold in
    # a list of 14 here: 0.67), and no interview listed that says nothing about it
    assert 2 * len(gold & got) / (len(gold) + len(got)) >= 0.6, got
    assert got <= gold | touching, got - gold - touching
    assert cov["count"] == len(got)
    lo, hi = cov["range"]  # how sure that count is: it holds the count shown
    assert lo <= len(got) <= hi < 36 and hi > lo
    assert answer.text.startswith(f"{len(got)} of 36 interviews discuss this (80% range {lo}–{hi})")
    assert {c.interview_id for c in answer.citations} == got  # each one quoted
    assert not set(cov["touching"]) & got


@pytest.mark.slow
def test_topic_features_rank_the_gold_interviews_higher(mlsss_pipeline: Pipeline) -> None:
    """On the dev coverage questions (gold lists read and grepped), the topic without its
    "which participants talk about" framing, embedded and matched with its words in one turn,
    ranks the interviews that discuss it higher than the question's own vector does (mean
    average precision over the 36 interviews, 40 questions: 0.71 against 0.54 for the turn
    similarity, on the gold as reconciled for ten of them; 0.69 against 0.52 before)."""
    from sklearn.metrics import average_precision_score

    from mlqi_rag.retrieval import Filters

    questions = [
        q
        for q in load_questions(Path(__file__).parents[1] / "eval" / "questions_mlsss.jsonl")
        if q.kind == "coverage" and q.split == "dev"
    ]
    assert len(questions) >= 12
    ap: dict[str, list[float]] = {}
    recall = []
    for q in questions:
        result = mlsss_pipeline.retriever.retrieve(q.question, filters=Filters())
        found = {h.chunk.interview_id for h in result.hits[:10]}
        # capped at the 10 retrieved: most of a list 17 interviews long cannot be in the top 10
        recall.append(len(found & set(q.gold_interviews)) / min(10, len(q.gold_interviews)))
        scan = mlsss_pipeline.scanner.scan(result, result.query_vector)
        assert len(scan.interviews) == 36
        assert max(e.features["topic_hyb_gap"] for e in scan.interviews) == 0.0
        gold = [e.interview_id in q.gold_interviews for e in scan.interviews]
        for name in ("topic_hyb", "chunk_max", "topic_span", "span_max"):
            scores = [e.features[name] for e in scan.interviews]
            ap.setdefault(name, []).append(float(average_precision_score(gold, scores)))
    mean = {name: float(np.mean(v)) for name, v in ap.items()}
    assert mean["topic_hyb"] >= mean["chunk_max"] + 0.1, mean
    assert mean["topic_span"] > mean["span_max"], mean
    # the retriever ranks by the topic too, in meaning and in words: interview recall@10 capped
    # at 10 is 0.743 on the 40 (0.706 when its keywords were the whole question's, whose
    # "which interviewees say" matched the interviewer's turns)
    assert float(np.mean(recall)) >= 0.73, recall


@pytest.mark.slow
def test_which_mention_lists_and_quotes_the_interviews_that_say_it(
    mlsss_pipeline: Pipeline,
) -> None:
    """Interviews 8 and 13 each say "light GBM" once, in passing (grepped: the only
    participants who say LightGBM or light GBM); both are listed, each quoted saying it."""
    answer = mlsss_pipeline.engine("extractive").answer("Which participants mention LightGBM?")
    assert not answer.abstained
    assert {"8", "13"} <= set(answer.coverage["interviews"])
    for iv in ("8", "13"):
        quotes = [c.quote for c in answer.citations if c.interview_id == iv]
        assert quotes and all("gbm" in q.lower() for q in quotes), quotes


@pytest.mark.slow
def test_a_name_most_interviewees_say_does_not_hide_those_who_say_the_rare_ones(
    mlsss_pipeline: Pipeline,
) -> None:
    """ "… in their ML work": ML is said in 25 of the 36 interviews. Counted among the names,
    29 interviews "said a name", too many to pick anyone out, and only the three strongest by
    similarity were listed. It tells nobody apart, so the interviews that say AWS, SageMaker or
    Lambda are listed, each quoted saying it (grepped: 15 interviews)."""
    terms = mlsss_pipeline.scanner.terms
    question = "Which participants mention AWS, SageMaker or Lambda in their ML work?"
    assert terms.names(question) == ("AWS", "SageMaker", "Lambda", "ML")
    assert terms.telling_names(question) == ("AWS", "SageMaker", "Lambda")
    sayers = terms.sayers("AWS") | terms.sayers("SageMaker") | terms.sayers("Lambda")
    assert len(sayers) == 15 and len(terms.sayers("ML")) == 25
    assert terms.said_in(question) == (15, 36)
    answer = mlsss_pipeline.engine("extractive").answer(question)
    assert not answer.abstained
    assert sayers <= set(answer.coverage["interviews"])
    for iv in sayers:
        quotes = [c.quote.lower() for c in answer.citations if c.interview_id == iv]
        assert quotes and all(
            any(n in q for n in ("aws", "sagemaker", "sage maker", "lambda")) for q in quotes
        ), (iv, quotes)


@pytest.mark.slow
def test_a_filtered_which_question_lists_whoever_says_the_name(mlsss_pipeline: Pipeline) -> None:
    """Searched within interviews 8, 13 and 30, both of the study's LightGBM interviews are
    listed: two of three searched interviews say it, but 2 of 36 do, so the name still picks
    them out (judged on the searched three, 8 was only "touching" it). A search that leaves
    out those who say it says where else it is said."""
    from mlqi_rag.retrieval import Filters

    answer = mlsss_pipeline.engine("extractive").answer(
        "Which participants mention using LightGBM?", Filters(interviews=("8", "13", "30"))
    )
    assert answer.coverage["interviews"] == ["13", "8"] and answer.coverage["of"] == 3
    assert answer.text.startswith("2 of 3 interviews discuss this")
    assert "Outside this search" not in answer.text and not answer.settings["said_outside"]
    # searched where nobody says it: the answer says where it is said
    elsewhere = mlsss_pipeline.engine("extractive").answer(
        "Which participants mention using LightGBM?", Filters(interviews=("8", "9", "30"))
    )
    assert elsewhere.coverage["interviews"] == ["8"]
    assert "Outside this search, LightGBM is mentioned in interview 13." in elsewhere.text
    none = mlsss_pipeline.engine("extractive").answer(
        "Which participants mention using LightGBM?", Filters(interviews=("9", "23"))
    )
    assert none.settings["said_outside"] == {"LightGBM": ["8", "13"]}
    assert "Outside this search, LightGBM is mentioned in interviews 8, 13." in none.text
    assert none.abstained and none.text.startswith(
        "Not in the interviews: the 2 interviews searched (9, 23) don't discuss this."
    )


@pytest.mark.slow
def test_which_mention_lists_the_interviews_whose_transcript_misheard_the_name(
    mlsss_pipeline: Pipeline,
) -> None:
    """The transcripts say SHAP as "sharp values" (interview 4), "shop values" (32) and
    "sharply values" (13): all three talk about explaining models with SHAP (grepped), and are
    listed, each quoted saying it, with a line that shows how the name was heard. The fitted
    probabilities are not touched: only the rule that lists those who say the name."""
    q = "Which interviewees talk about using SHAP / Shapley values to explain model predictions?"
    answer = mlsss_pipeline.engine("extractive").answer(q)
    assert {"4", "13", "32"} <= set(answer.coverage["interviews"])
    for iv, form in (("4", "sharp values"), ("13", "sharply values"), ("32", "shop values")):
        quotes = [c.quote for c in answer.citations if c.interview_id == iv]
        assert quotes and any(form in " ".join(q.lower().split()) for q in quotes), quotes
        assert [n for n, i, f in answer.settings["heard_as"] if i == iv and f == form]
    assert "SHAP as “shop values” (interview 32), “sharp values” (interview 4)" in answer.text
    # without the misheard forms, the rule lists only those who spell it (the answer before)
    plain = mlsss_pipeline.scanner.terms.heard
    try:
        mlsss_pipeline.scanner.terms.heard = lambda question: {}  # type: ignore[method-assign]
        before = mlsss_pipeline.engine("extractive").answer(q)
    finally:
        mlsss_pipeline.scanner.terms.heard = plain  # type: ignore[method-assign]
    assert not {"4", "13", "32"} <= set(before.coverage["interviews"])
    assert "misheard" not in before.text


@pytest.mark.slow
def test_a_name_most_interviews_say_does_not_choose_the_quotes(mlsss_pipeline: Pipeline) -> None:
    """Most interviews say "ML": it lists nobody, so it must not pick anyone's quote either
    (quoting every interview where it says "ML" gave 8 of 9 quotes about "an ML system")."""
    import re

    answer = mlsss_pipeline.engine("extractive").answer(
        "Which participants have seen their ML systems break or misbehave because of changing "
        "or mismatched library and runtime versions across environments?"
    )
    quotes = [c.quote for c in answer.citations]
    assert len(quotes) >= 4
    assert sum(bool(re.search(r"\bML\b", q)) for q in quotes) < len(quotes) / 2, quotes


@pytest.mark.slow
def test_evidence_groups_into_practices(mlsss_pipeline: Pipeline) -> None:
    answer = mlsss_pipeline.engine("extractive").answer(
        "Which interviewees talk about problems with weather data?"
    )
    assert answer.coverage["count"] >= 4
    themes = [ln for ln in answer.text.splitlines() if ln.startswith("theme ")]
    assert len(themes) >= 2, answer.text  # clusters of the evidence, each labelled
    # ... by how they differ: every group is about weather, so no label says it
    assert not any("weather" in t for t in themes), themes


@pytest.mark.slow
def test_an_english_question_reaches_the_french_interview(mlsss_pipeline: Pipeline) -> None:
    answer = mlsss_pipeline.engine("extractive").answer(
        "Which participants mention the Kedro pipeline framework?"
    )
    assert "2" in answer.coverage["interviews"] + answer.coverage["touching"] or (
        "interview 2 is not in English" in answer.text
    )
    fr = mlsss_pipeline.engine("extractive").answer("What do interviewees say about the weather?")
    if "2" not in fr.coverage["interviews"]:
        assert "interview 2 is not in English" in fr.text


@pytest.mark.slow
def test_unknown_interview_in_the_question_is_refused(mlsss_pipeline: Pipeline) -> None:
    from mlqi_rag.errors import QuestionError

    with pytest.raises(QuestionError, match="interview 999"):
        mlsss_pipeline.engine("extractive").answer("In interview 999, how was data labelled?")


@pytest.mark.slow
def test_the_shipped_model_is_what_calibration_fits(
    seed_index: Settings, mlsss_index: Settings, embedder: object
) -> None:
    """``scan_model.json`` must be the fit of today's features on today's questions, as
    ``mlqi-rag calibrate`` makes it: a feature change shipped without a refit would weigh
    inputs the weights were not fitted on. The refit also reports the question-level model out
    of fold, within the 5% false-abstention budget: it abstains on 0.85 of the 34 unanswerable
    dev questions the two name rules leave to it (0.88 before the coverage gold was reconciled),
    with how far the strongest interview stands out (``p_z``) and the unsaid phrases; 0.54 of 35
    without them and the name-said rule."""
    from mlqi_rag.fitting import pairs_for

    root = Path(__file__).resolve().parents[1]
    pairs: list[Pair] = []
    absent: dict[tuple[str, str], bool] = {}
    for settings, qfile in (
        (seed_index, "questions.jsonl"),
        (mlsss_index, "questions_mlsss.jsonl"),
    ):
        pipe = Pipeline.load(settings, embedder, model=ScanModel.neutral())  # type: ignore[arg-type]
        got, miss = pairs_for(
            pipe, load_questions(root / "eval" / qfile), Path(settings.corpus).name
        )
        pairs += got
        absent.update(miss)
    model = fit(pairs, ruled={key for key, gone in absent.items() if gone})
    shipped = ScanModel.load(bundled_model_path())
    assert model.features == shipped.features
    np.testing.assert_allclose(model.coef_discusses, shipped.coef_discusses, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(model.abstain_coef, shipped.abstain_coef, rtol=1e-3, atol=1e-4)
    assert model.count_spread == shipped.count_spread
    assert model.t_discusses == pytest.approx(shipped.t_discusses, abs=1e-3)
    assert model.t_abstain == pytest.approx(shipped.t_abstain, abs=1e-3)
    oof = model.report["abstain_oof"]
    assert oof["false_abstention"] <= 0.05 and oof["abstention"] >= 0.8, oof
    # Each feature added earns its place out of fold on the dev questions (``calibrate
    # --ablate``): three sentences of a turn together (``passage_max``) lift coverage F1 on the
    # 36 transcripts from 0.598 to 0.616, and precision and recall with it.
    from mlqi_rag.validation import cross_validated

    ruled = {key for key, gone in absent.items() if gone}
    coverage = {
        ("mlsss-transcripts", q.id)
        for q in load_questions(root / "eval" / "questions_mlsss.jsonl")
        if q.kind == "coverage"
    }
    full = cross_validated(pairs, ruled, coverage)["mlsss-transcripts"]
    without = cross_validated(pairs, ruled, coverage, ["passage_max"])["mlsss-transcripts"]
    assert full["coverage_f1"] > without["coverage_f1"] + 0.01, (full, without)
    assert full["precision"] > without["precision"] and full["recall"] > without["recall"]


def test_a_pair_made_without_a_scan_is_listed_by_its_fitted_name_hit() -> None:
    """The listing rules read what the scan says each interview says (``Pair.said``); a pair
    made without one (older pickles, hand-made pairs) reads ``name_hit``, as ``name_said`` does,
    rather than a default that would silently list nobody."""
    from mlqi_rag.fitting import said_of

    f = np.zeros(len(FEATURES))
    f[FEATURES.index("name_hit")] = 0.5
    bare = Pair("q", "c", "dev", "1", 2, tuple(f), True)
    scanned = Pair("q", "c", "dev", "2", 2, tuple(f), True, said=0.0)
    assert said_of([bare, scanned]).tolist() == [0.5, 0.0]
