"""What a question names, and which interviews say it: tools, methods, products.

Dense similarity cannot tell "LightGBM" from "XGBoost": both sit close to passages about
something else. Whether an interview *says* the thing the question names is a lexical fact.
A name is a run of capitalised or mixed-case words (``Great Expectations``, ``MLflow``,
``COVID-19``). An interview *mentions* it as written or as a transcriber split it ("light GBM",
"ML flow"); it *nearly* mentions it through a one-letter slip ("Kendro" for Kedro) or a rare
part of it ("this like GBM model"), weighted by how few interviews use that part; and it is
*heard* saying it when the transcriber misheard it before a word that follows it ("sharp
values" for SHAP values). The scan weighs these as features (``calibration`` fits them), the
retriever ranks the passages that say them, and a name no transcript mentions rules a question
out (``scan``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .calibration import NAME_SHARE
from .index import Index
from .question import FRAMING_WORDS
from .stores import keyword_tokens

QUESTION_WORDS = frozenset(
    "how what which why who whom whose when where do does did is are was were can could should "
    "would will have has had in on for according among across any tell give list name".split()
)
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with about from its our your we you".split()
)
_TOKEN = re.compile(r"[A-Za-z][\w&+.'-]*[\w+]|[A-Za-z]")
_VOCAB_WORD = re.compile(r"[a-z0-9][a-z0-9+#.-]*[a-z0-9+#]|[a-z0-9]")


@dataclass(frozen=True)
class _Text:
    """One body of text prepared for name look-ups: its words, its spaced text, its letters."""

    vocabulary: frozenset[str]
    spaced: str  # " word word … " in lower case
    squashed: str  # letters and digits only

    @classmethod
    def of(cls, texts: Sequence[str]) -> _Text:
        low = " ".join(" ".join(t.lower().split()) for t in texts)
        words = frozenset(_VOCAB_WORD.findall(low))
        return cls(words, f" {low} ", re.sub(r"[^a-z0-9]", "", low))

    def mentions(self, name: str) -> bool:
        """The name as written or as a transcriber would split it ("LightGBM" / "light GBM",
        "OpenStreetMap" / "open street map", "W & B" / "W and B"). Exact words, not stems:
        "Evidently" is not "evidence"."""
        camel = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
        low = " ".join(name.lower().split())
        variants = {
            low,
            low.replace(" & ", " and "),
            low.replace("-", " "),
            " ".join(camel.lower().split()),
            re.sub(r"-\d+$", "", low),  # "COVID-19" is said "COVID"
        }
        if re.fullmatch(r"[A-Z]{2,}s", name):  # "GPUs": the acronym itself
            variants.add(low[:-1])
        if any(
            v in self.vocabulary or f"{v}s" in self.vocabulary for v in variants if " " not in v
        ):
            return True
        if any(f" {v} " in self.spaced or f" {v}s " in self.spaced for v in variants if " " in v):
            return True
        squashed = re.sub(r"[^a-z0-9]", "", low)
        return len(squashed) >= 6 and squashed in self.squashed


def says(text: str, names: Sequence[str]) -> bool:
    """Whether ``text`` mentions any of ``names``, matched as ``CorpusTerms`` matches them
    against whole interviews (the spellings a transcriber would use)."""
    prepared = _Text.of([text])
    return any(prepared.mentions(name) for name in names)


def _one_slip(word: str, vocabulary: frozenset[str]) -> bool:
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    return (
        process.extractOne(word, vocabulary, scorer=Levenshtein.distance, score_cutoff=1)
        is not None
    )


def _followers(word: str, texts: Sequence[str]) -> set[str]:
    """The content words right after ``word`` in lower-case ``texts`` ("shap values" →
    "value"), singular: the collocates a misheard form of it must keep."""
    out = set()
    for text in texts:
        for m in re.finditer(rf"\b{re.escape(word)} ([a-z][a-z0-9-]+)", text):
            follower = m.group(1)
            if follower not in STOP_WORDS and follower not in QUESTION_WORDS and len(follower) > 2:
                out.add(follower[:-1] if follower.endswith("s") else follower)
    return out


def _name_parts(name: str) -> list[str]:
    camel = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return [w for w in re.split(r"[^a-z0-9]+", camel.lower()) if len(w) >= 3]


@dataclass
class CorpusNames:
    """The corpus's words per interview, for the names a question asks about; built lazily
    once per loaded index (``terms.CorpusTerms`` adds phrases and coverage)."""

    index: Index
    _mentioning: dict[tuple[str, str], frozenset[Any]] = field(default_factory=dict, repr=False)
    _heard: dict[str, dict[str, dict[str, tuple[str, ...]]]] = field(
        default_factory=dict, repr=False
    )

    @cached_property
    def corpus(self) -> _Text:
        """Every speaker: a name the interviewer said is still "mentioned" in the corpus."""
        return _Text.of([c.text for c in self.index.chunks])

    @cached_property
    def _participant_chunks(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {iv: [] for iv in self.index.interviews}
        for c in self.index.chunks:
            if c.role == "participant":
                out[c.interview_id].append(c.text)
        return out

    @cached_property
    def interviews(self) -> dict[str, _Text]:
        """Participant speech per interview: what an interviewee said, not what was asked."""
        return {iv: _Text.of(texts) for iv, texts in self._participant_chunks.items()}

    def sayers(self, name: str) -> frozenset[str]:
        """The interviews whose participants mention ``name`` (``_Text.mentions``); kept per
        name, since every question that names it asks again."""
        return self._kept(("sayers", name), lambda: self._sayers(name))

    def chunks_mentioning(self, name: str) -> frozenset[int]:
        """Positions of the participant chunks that mention ``name`` as ``_Text.mentions``
        matches it ("ML flow" for MLflow), looked for only in the interviews whose participant
        speech does; kept per name (the app asks about the same tools again)."""
        return self._kept(("chunks", name), lambda: self._chunks_mentioning(name))

    def _sayers(self, name: str) -> frozenset[str]:
        return frozenset(iv for iv, text in self.interviews.items() if text.mentions(name))

    def _chunks_mentioning(self, name: str) -> frozenset[int]:
        chunks = self.index.chunks
        return frozenset(
            pos
            for iv in self.sayers(name)
            for pos in self._positions[iv]
            if says(chunks[pos].text, [name])
        )

    def _kept(self, key: tuple[str, str], compute: Callable[[], frozenset[Any]]) -> frozenset[Any]:
        got = self._mentioning.get(key)
        if got is None:
            if len(self._mentioning) > 2048:
                self._mentioning.clear()
            got = self._mentioning[key] = compute()
        return got

    @cached_property
    def _positions(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {iv: [] for iv in self.index.interviews}
        for pos, c in enumerate(self.index.chunks):
            if c.role == "participant":
                out[c.interview_id].append(pos)
        return out

    @cached_property
    def _word_df(self) -> Counter[str]:
        return Counter(w for t in self.interviews.values() for w in t.vocabulary)

    # ---- names -------------------------------------------------------------------------------

    @staticmethod
    def names(question: str) -> tuple[str, ...]:
        """Runs of capitalised or mixed-case words, not the question's first word."""
        tokens = [(m.group(), m.start()) for m in _TOKEN.finditer(question)]
        names: list[str] = []
        run: list[tuple[int, int]] = []  # (start, end) of each word of the current name

        def flush() -> None:
            if run:
                names.append(question[run[0][0] : run[-1][1]].strip(".'"))
                run.clear()

        end = -1
        for i, (tok, pos) in enumerate(tokens):
            low = tok.lower().strip(".'")
            named = (tok[0].isupper() or any(ch.isupper() for ch in tok[1:])) and not (
                i == 0 or low in QUESTION_WORDS or low in FRAMING_WORDS or low == "i"
            )
            # A name runs over spaces and "&" only: "SHAP / Shapley" is two names.
            if run and question[end:pos].strip() not in ("", "&"):
                flush()
            if named:
                run.append((pos, pos + len(tok)))
            else:
                flush()
            end = pos + len(tok)
        flush()
        return tuple(dict.fromkeys(names))

    def absent_names(self, question: str) -> tuple[str, ...]:
        """Tools, methods or products the question names that occur in no transcript. A
        multi-word name counts as absent when the phrase is, even if its words occur apart
        ("great", "expectations")."""
        return tuple(n for n in self.names(question) if not self.corpus.mentions(n))

    def distinctive_names(self, question: str) -> tuple[str, ...]:
        """The question's names that some interviewees say and most do not (see
        ``ruled_out_by_name``: "ML" picks nothing out)."""
        return tuple(
            name
            for name in self.names(question)
            if self.sayers(name) and not self._said_by_most(name)
        )

    def telling_names(self, question: str) -> tuple[str, ...]:
        """The question's names that could tell interviews apart: all but those most
        interviewees say. "ML" in "Which interviewees use AWS … in their ML work?" is said in 25
        of the study's 36 interviews; counted with AWS, every interview that says ML "says a
        name", and the list of those who say one is 29 long, too many to pick anyone out. An
        absent name stays: that nobody says it is the point."""
        return tuple(n for n in self.names(question) if not self._said_by_most(n))

    def _said_by_most(self, name: str) -> bool:
        """Said by more than ``NAME_SHARE`` of the interviews: it picks nobody out."""
        return len(self.sayers(name)) > NAME_SHARE * max(1, len(self.interviews))

    def said_in(
        self, question: str, heard: dict[str, dict[str, tuple[str, ...]]] | None = None
    ) -> tuple[int, int]:
        """How many interviews of the corpus say one of the question's telling names (as
        written, or misheard as ``heard`` found them: ``name_said``), of how many. Whether a
        name picks anyone out is a fact of the corpus, not of a filtered search
        (``calibration.name_sayers``)."""
        shares = self.name_said(question, list(self.interviews), heard)
        return sum(share > 0 for share in shares.values()), len(self.interviews)

    def name_said(
        self,
        question: str,
        searched: Sequence[str],
        heard: dict[str, dict[str, tuple[str, ...]]] | None = None,
    ) -> dict[str, float]:
        """Per interview, the share of the question's telling names (``telling_names``) its
        participants say, as written or misheard (``heard``): who the listing rules list for
        saying a name (``calibration.name_sayers``). Unlike the fitted ``name_hit`` it leaves
        out what most interviewees say: with "ML" counted, 29 of the 36 interviews "say" one of
        the names of "Which interviewees use AWS … in their ML work?", and nobody is listed."""
        names = self.telling_names(question)
        heard = heard or {}
        out = {}
        for iv in searched:
            got = sum(iv in self.sayers(n) or iv in heard.get(n, {}) for n in names)
            out[iv] = got / len(names) if names else 0.0
        return out

    def ruled_out_by_name(self, question: str, absent: Sequence[str] | None = None) -> bool:
        """Whether the question is about named things no transcript mentions: some name is
        absent and every other distinctive name is too. A name most interviewees say ("ML")
        picks nothing out, so it does not keep the question open; one that some say does:
        "TensorFlow, Keras or PyTorch" asks about any of them, and "Microsoft Azure" is
        answered by whoever says "Azure Machine Learning". On the dev questions this answers
        three coverage questions the any-absent rule turned away (Azure, Spark, deep-learning
        frameworks) and leaves one unanswerable question to the question-level model
        (Pachyderm or lakeFS "rather than with DVC"). ``absent``: ``absent_names(question)``,
        when the caller has it already."""
        gone = set(self.absent_names(question) if absent is None else absent)
        if not gone:
            return False
        return all(name in gone or self._said_by_most(name) for name in self.names(question))

    def absent_words(self, question: str) -> tuple[str, ...]:
        """Ordinary lower-case question words no transcript uses (not one-letter typos).

        Not a verdict on their own (in a small corpus many plain words are absent): the model
        weighs them through ``absent_share``, and the answer says they were not found.
        """
        out = []
        for word in re.findall(r"\b[a-z][a-z-]{4,}\b", question):
            if word in FRAMING_WORDS or word in QUESTION_WORDS or self.corpus.mentions(word):
                continue
            if not _one_slip(word, self.corpus.vocabulary) and keyword_tokens([word])[0]:
                out.append(word)
        return tuple(dict.fromkeys(out))

    def heard(self, question: str) -> dict[str, dict[str, tuple[str, ...]]]:
        """Per name of the question, the interviews whose participants said it only as the
        transcriber misheard it, with the forms as written: "sharp values", "shop values" and
        "sharply values" for "SHAP / Shapley values" (four of the study's interviews).

        A misheard name is a word of the same first letter within one letter of a name of
        four or five (two of a longer one), followed by a word that follows the name where it
        is spelled right, in the question or in any interview ("SHAP values", "shap values"):
        "sharp" alone is a word, "sharp values" in an interview about ML is SHAP. Names of
        one word only, and only interviews that do not say the name as written."""
        got = self._heard.get(question)
        if got is not None:
            return got
        from rapidfuzz.distance import Levenshtein

        out: dict[str, dict[str, tuple[str, ...]]] = {}
        for name in self.names(question):
            target = name.lower()
            if not re.fullmatch(r"[a-z][a-z0-9]{3,}", target):
                continue
            after = _followers(target, [question.lower()]) | _followers(
                target, [self.interviews[iv].spaced for iv in self.sayers(name)]
            )
            if not after:
                continue
            limit = 1 if len(target) <= 5 else 2
            pattern = re.compile(
                rf"\b({target[0]}[a-z0-9]{{2,}}) ({'|'.join(map(re.escape, sorted(after)))})s?\b"
            )
            said = self.sayers(name)
            for iv, text in self.interviews.items():
                if iv in said:
                    continue
                forms = tuple(
                    dict.fromkeys(
                        m.group(0)
                        for m in pattern.finditer(text.spaced)
                        if 0 < Levenshtein.distance(m.group(1), target) <= limit
                    )
                )
                if forms:
                    out.setdefault(name, {})[iv] = forms
        if len(self._heard) > 256:
            self._heard.clear()
        self._heard[question] = out
        return out

    def name_features(self, question: str, searched: Sequence[str]) -> dict[str, dict[str, float]]:
        """Per interview: ``has_name`` (the question names something), ``name_hit`` (share of
        the names it mentions) and ``name_near`` (share it mentions or nearly mentions)."""
        names = self.names(question)
        if not names:
            return {iv: {"has_name": 0.0, "name_hit": 0.0, "name_near": 0.0} for iv in searched}
        n_iv = max(2, len(self.interviews))
        out = {}
        for iv in searched:
            text = self.interviews[iv]
            hit = near = 0.0
            for name in names:
                if iv in self.sayers(name):
                    hit += 1.0
                    near += 1.0
                    continue
                squashed = re.sub(r"[^a-z0-9]", "", name.lower())
                if len(squashed) >= 5 and _one_slip(squashed, text.vocabulary):
                    near += 1.0
                    continue
                # A rare part of the name ("GBM") said on its own, as rare as it is informative.
                near += max(
                    (
                        math.log(n_iv / self._word_df[p]) / math.log(n_iv)
                        for p in _name_parts(name)
                        if p in text.vocabulary and self._word_df[p]
                    ),
                    default=0.0,
                )
            out[iv] = {
                "has_name": 1.0,
                "name_hit": hit / len(names),
                "name_near": near / len(names),
            }
        return out
