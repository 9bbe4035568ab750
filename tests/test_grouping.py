"""Grouping an answer's quotes into practices: the clustering fitted on the researchers' codes,
and the names the clusters get."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from cliutil import one_line_error, run
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from mlqi_rag import grouping
from mlqi_rag.answer import groups_of
from mlqi_rag.evidence import Group, Quote, group_heading
from mlqi_rag.grouping import BASELINE, SHIPPED, Setting, cluster, label_clusters
from mlqi_rag.settings import Settings
from mlqi_rag.types import Citation


def test_one_spelling_per_code() -> None:
    """Two coders' "Data-missing-values" and "Data-missing-value" are one code; a category
    suffix ("ML-pipeline-issues [MLP]") is not part of the name; a fix stays its own code."""
    assert grouping._normal("Data-missing-values") == grouping._normal("Data-missing-value")
    assert grouping._normal("ML-pipeline-issues [MLP]") == "ml-pipeline-issue"
    assert grouping._normal("QM-robustness-fix") != grouping._normal("QM-robustness")
    assert grouping._prefix("data-collection-manual", 2) == "data-collection"
    assert grouping._prefix("data-collection", 2) is None  # a family needs a member below it


def test_cluster_cuts_at_the_setting_distance() -> None:
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    near = (a + 0.2 * b) / np.linalg.norm(a + 0.2 * b)
    labels = cluster(np.stack([a, near, b]), SHIPPED)
    assert labels[0] == labels[1] != labels[2]
    assert list(cluster(np.stack([a]), SHIPPED)) == [0]
    assert len(set(cluster(np.stack([a, near, b]), Setting(1.0, "average", 1.5)))) == 1


def test_labels_say_how_a_group_differs() -> None:
    texts = {
        0: [
            "Um, we just dropped the record, you know.",
            "Most of the time we dropped the rows with missing values.",
            "We drop it, we don't keep it.",
        ],
        1: [
            "We imputed the median for the construction era.",
            "Uh, imputation with the mean, basically.",
        ],
        2: ["It's like, okay, thats the classic problem."],
    }
    passages_using = {"classic": 2, "problem": 40}
    names = label_clusters(
        texts, "How do practitioners handle missing values?", lambda s: passages_using.get(s, 0)
    )
    first = names[0].split(" · ")
    assert first[0] == "dropped"  # said by all three quotes, in its commonest form
    assert "imputed" in names[1].split(" · ")
    assert names[2] == "classic · problem"  # a tie goes to the word rarer in the corpus
    words = {w for name in names.values() for w in name.split(" · ")}
    assert not words & set(ENGLISH_STOP_WORDS)
    assert not words & {"missing", "values", "handle", "um", "uh", "okay", "don", "thats"}


def test_a_group_of_fillers_is_named_other() -> None:
    assert label_clusters({0: ["Uh, yeah, okay."], 1: ["We retrain weekly."]})[0] == "other"


@pytest.mark.slow
def test_the_shipped_grouping_is_what_the_codes_fit(coded_index: Settings) -> None:
    """On the Delve prints' codes, every family scored with the setting fitted on the other
    roots' families: the quote's turn vector cut at 0.5 recovers sibling codes (ARI 0.33)
    where the sentence vectors cut at 0.55, which grouped quotes before, are at chance (0.01).
    The setting fitted on all families is the one the answers use."""
    from mlqi_rag.index import Index

    index = Index.load(coded_index)
    fams = grouping.families(index)
    assert {"data-collection", "data-missing", "mlp", "qm"} <= {f.name for f in fams}
    missing = next(f for f in fams if f.name == "data-missing")
    assert {"data-missing-value", "data-missing-feature"} <= set(missing.codes())
    report = grouping.fit(index, fams)
    assert report["fitted"] == SHIPPED.to_dict()
    held = report["held_out"]
    assert held["ari_fitted"] > 0.25
    assert held["ari_fitted"] > held["ari_baseline"] + 0.2
    assert BASELINE.to_dict() == report["baseline"]


@pytest.mark.slow
def test_fit_grouping_refuses_a_corpus_without_code_families(
    tmp_path: Path, mlsss_dir: Path
) -> None:
    corpus = tmp_path / "plain"
    corpus.mkdir()
    (corpus / "Interview 7.txt").symlink_to(mlsss_dir / "Interview 7.txt")
    result = run("fit-grouping", "--corpus", str(corpus), "--index-dir", str(tmp_path / "index"))
    one_line_error(result, str(corpus), "nothing to fit on")


@pytest.mark.slow
def test_answer_groups_are_named_without_filler_or_the_question(mlsss_pipeline) -> None:  # type: ignore[no-untyped-def]
    question = "How do practitioners deal with data drift?"
    answer = mlsss_pipeline.engine("extractive").answer(question)
    themes = [ln for ln in answer.text.splitlines() if ln.startswith("theme ")]
    assert len(themes) >= 2, answer.text
    for line in themes:
        words = re.match(r"theme (.+) \(\d+ interviews?\):", line).group(1).split(" · ")  # type: ignore[union-attr]
        assert not set(words) & (set(ENGLISH_STOP_WORDS) | {"data", "drift", "uh", "um"}), line


def _cite(iv: str, start: int) -> Citation:
    return Citation(iv, "", "Interviewee", "participant", 3, "a quote", "x.txt", start, start + 7)


def test_groups_keep_only_the_quotes_an_answer_shows() -> None:
    """An LLM engine cites some of the quotes, and a quote that stopped verifying is dropped:
    the answer's groups point at the citations it shows, and a group left empty goes."""
    a, b, c = _cite("4", 0), _cite("9", 10), _cite("12", 20)
    groups = [
        Group("imputed · median", "cluster", (Quote(a, 0, 0.9), Quote(b, 1, 0.8))),
        Group("dropped · record", "cluster", (Quote(c, 2, 0.7),)),
    ]
    shown = groups_of(groups, [c, b])
    assert shown == (
        {"label": "imputed · median", "source": "cluster", "interviews": ["9"], "quotes": [1]},
        {"label": "dropped · record", "source": "cluster", "interviews": ["12"], "quotes": [0]},
    )
    assert groups_of(groups, [c]) == (shown[1],)


@pytest.mark.slow
def test_answer_json_and_panel_show_the_groups(mlsss_pipeline) -> None:  # type: ignore[no-untyped-def]
    """``ask --json`` gives the groups the text shows, each quote in exactly one, and the app's
    evidence panel puts each group's cards under its name."""
    from mlqi_rag import render

    answer = mlsss_pipeline.engine("extractive").answer(
        "How do practitioners deal with data drift?"
    )
    groups = answer.to_dict()["groups"]
    assert len(groups) >= 2
    positions = [i for g in groups for i in g["quotes"]]
    assert sorted(positions) == list(range(len(answer.citations)))
    for g in groups:
        assert g["interviews"] == list(
            dict.fromkeys(answer.citations[i].interview_id for i in g["quotes"])
        )
        kind, count = group_heading(g["source"], len(g["interviews"]))
        assert f"{kind} {g['label']} ({count}):" in answer.text.splitlines()
    html = render.evidence_html(mlsss_pipeline, answer)
    sections = re.findall(r'<section class="ev-group".*?</section>', html, re.S)
    assert len(sections) == len(groups)
    for g, section in zip(groups, sections, strict=True):
        assert f'data-label="{render.esc(g["label"])}"' in section
        shown = re.findall(r'data-interview="(\d+)"', section)
        assert shown == [answer.citations[i].interview_id for i in g["quotes"]]


@pytest.mark.slow
def test_a_theme_is_what_several_interviewees_say(mlsss_pipeline) -> None:  # type: ignore[no-untyped-def]
    """Clusters of one interviewee's quotes (two thirds of the clusters on the 36 transcripts'
    dev questions) were each named as a theme ("took · version · second"); they are listed
    together after the themes, as other passages, unnamed."""
    answer = mlsss_pipeline.engine("extractive").answer(
        "How do practitioners label their data, and who does the labelling?"
    )
    groups = answer.to_dict()["groups"]
    themes = [g for g in groups if g["source"] == "cluster"]
    assert len(themes) >= 2 and all(len(g["interviews"]) >= 2 for g in themes), groups
    others = [g for g in groups if g["source"] == "others"]
    assert len(others) == 1 and groups[-1] is others[0], groups
    assert f"other passages ({len(others[0]['interviews'])} interviews):" in answer.text
    # every quote is in one group still
    assert sorted(i for g in groups for i in g["quotes"]) == list(range(len(answer.citations)))


def test_a_group_is_named_by_what_its_interviewees_say_not_one_of_them() -> None:
    """Interview 40 says "funny" in three quotes on Docker; two interviewees say "Kubernetes".
    Counted per quote, "funny" would name the group; counted per interviewee, it does not."""
    from mlqi_rag.evidence import Quote, interview_texts
    from mlqi_rag.types import Citation

    def quote(iv: str, text: str) -> Quote:
        return Quote(Citation(iv, "", "P", "participant", 1, text, "x.txt", 0, len(text)), 0, 1.0)

    docker = [
        quote("40", "It was funny, the infrastructure team did not know it."),
        quote("40", "Funny, they said we don't use it."),
        quote("40", "A funny meeting."),
        quote("32", "It deploys on a Kubernetes cluster."),
        quote("43", "Part of a Kubernetes setup on the server."),
    ]
    other = [quote("16", "Before that we had version dependency issues.")]
    per_quote = label_clusters(
        {0: [q.citation.quote for q in docker], 1: [q.citation.quote for q in other]}
    )
    assert per_quote[0].startswith("funny")  # what the old naming gave
    names = label_clusters({0: interview_texts(docker), 1: interview_texts(other)})
    assert names[0].startswith("kubernetes"), names
    assert interview_texts(docker)[0].count("unny") == 3  # one text per interview, all quotes
    assert len(interview_texts(docker)) == 3


def test_names_of_french_quotes_are_whole_words_not_function_words(mlsss_dir: Path) -> None:
    """Interview 2 of the study is in French. Its quotes' names are whole words ("plutôt" was
    once cut to "plut", "prédictive" to "dictive"), elided articles are dropped ("l'imputation"
    names "imputation"), and French function words and fillers ("euh", "les") are left out
    once the quotes' language is given."""
    text = (mlsss_dir / "Interview 2.txt").read_text(encoding="utf-8")
    turns = [t for t in re.findall(r"(?m)^Interviewee\d* ?:(.*)$", text) if len(t.split()) > 40]
    assert len(turns) >= 5
    french = {0: turns[:5], 1: ["We retrain weekly."]}
    plain = label_clusters(french, n=8)
    named = label_clusters(french, n=8, languages={"en", "fr"})
    whole = set(re.findall(r"[^\W\d_][\w-]*", " ".join(french[0]).lower()))
    words = named[0].split(" · ")
    assert set(words) <= whole, words  # no fragment of an accented word
    elided = label_clusters(
        {0: ["C'est l’imputation des valeurs."], 1: ["We retrain."]}, languages={"fr"}
    )
    assert elided[0] == "imputation · valeurs"  # not "l'imputation", nor "c'est"
    from stop_words import get_stop_words

    function_words = set(get_stop_words("fr")) | {"euh"}
    assert not set(words) & function_words, words
    assert set(plain[0].split(" · ")) & function_words  # what the language's list is for
