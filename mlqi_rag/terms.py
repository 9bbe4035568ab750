"""What a question names, and which interviews use its words: names, phrases, coverage.

Dense similarity cannot tell "LightGBM" from "XGBoost", nor "differential privacy" from
"privacy": both sit close to passages about something else. Whether an interview *says* the
thing the question names is a lexical fact, so the scan gets it as features from here:

* **names** — runs of capitalised or mixed-case words (``Great Expectations``, ``MLflow``,
  ``COVID-19``). An interview *mentions* a name as written or as a transcriber split it ("light
  GBM", "ML flow"); it *nearly* mentions it through a one-letter slip ("Kendro" for Kedro) or a
  rare part of it ("this like GBM model"), weighted by how few interviews use that part.
* **phrases** — adjacent content words of the question ("class imbalance", "differential
  privacy"), stemmed, looked up as adjacent words of each interview's participant speech.
  A phrase no interview uses is strong evidence the question is about something else.
* **coverage** — the IDF-weighted share of the question's distinctive terms that each passage
  and each interview uses, and of its two rarest terms (its topic).

The weights of these features are fitted with the rest (``calibration``), never set here.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np

from .calibration import NAME_SHARE
from .index import Index
from .question import FRAMING_WORDS
from .stores import keyword_tokens, stemmer

QUESTION_WORDS = frozenset(
    "how what which why who whom whose when where do does did is are was were can could should "
    "would will have has had in on for according among across any tell give list name".split()
)
# Verbs that frame a question ("which interviewees *discuss* …") rather than name its topic.
FRAMING_VERBS = frozenset(
    "discuss discusses discussed mention mentions mentioned talk talks talked say says said "
    "describe describes described report reports reported use uses using used raise raises "
    "raised experience experiences apply applies applied deal deals handle handles".split()
)
_STOP = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with about from its our your we you".split()
)
_TOKEN = re.compile(r"[A-Za-z][\w&+.'-]*[\w+]|[A-Za-z]")
_VOCAB_WORD = re.compile(r"[a-z0-9][a-z0-9+#.-]*[a-z0-9+#]|[a-z0-9]")
_WORD = re.compile(r"\w\w+")


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


@cache
def _framing_tokens() -> frozenset[str]:
    """The framing words ("interviewees", "describe") as the keyword index spells them, worked
    out once: every question's term coverage leaves them out."""
    return frozenset(t for toks in keyword_tokens(sorted(FRAMING_WORDS)) for t in toks)


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
            if follower not in _STOP and follower not in QUESTION_WORDS and len(follower) > 2:
                out.add(follower[:-1] if follower.endswith("s") else follower)
    return out


def _name_parts(name: str) -> list[str]:
    camel = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return [w for w in re.split(r"[^a-z0-9]+", camel.lower()) if len(w) >= 3]


@dataclass
class CorpusTerms:
    """The corpus's words, per interview and overall; built lazily once per loaded index."""

    index: Index
    _mentioning: dict[str, frozenset[int]] = field(default_factory=dict, repr=False)
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

    def chunks_mentioning(self, name: str) -> frozenset[int]:
        """Positions of the participant chunks that mention ``name`` as ``_Text.mentions``
        matches it ("ML flow" for MLflow), looked for only in the interviews whose participant
        speech does; kept per name (the app asks about the same tools again)."""
        got = self._mentioning.get(name)
        if got is None:
            chunks = self.index.chunks
            got = frozenset(
                pos
                for iv, text in self.interviews.items()
                if text.mentions(name)
                for pos in self._positions[iv]
                if says(chunks[pos].text, [name])
            )
            if len(self._mentioning) > 1024:
                self._mentioning.clear()
            self._mentioning[name] = got
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

    @cached_property
    def _tokens(self) -> dict[str, list[list[str]]]:
        """Stemmed content words of each participant chunk, per interview."""
        return {
            iv: keyword_tokens(texts) if texts else []
            for iv, texts in self._participant_chunks.items()
        }

    @cached_property
    def bigrams(self) -> dict[str, frozenset[tuple[str, str]]]:
        """Adjacent stemmed content words of each interview's participant speech."""
        return {
            iv: frozenset(p for toks in chunks for p in zip(toks, toks[1:], strict=False))
            for iv, chunks in self._tokens.items()
        }

    @cached_property
    def _postings(self) -> dict[str, dict[str, frozenset[int]]]:
        """Per interview, stem -> the participant chunks (local numbers) that use it."""
        out: dict[str, dict[str, frozenset[int]]] = {}
        for iv, chunks in self._tokens.items():
            acc: dict[str, set[int]] = {}
            for i, toks in enumerate(chunks):
                for t in toks:
                    acc.setdefault(t, set()).add(i)
            out[iv] = {t: frozenset(v) for t, v in acc.items()}
        return out

    def _together(self, iv: str, phrase: tuple[str, str]) -> bool:
        post = self._postings[iv]
        a, b = post.get(phrase[0]), post.get(phrase[1])
        return bool(a and b and not a.isdisjoint(b))

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
        most = NAME_SHARE * max(1, len(self.interviews))
        return tuple(
            name
            for name in self.names(question)
            if 0 < sum(t.mentions(name) for t in self.interviews.values()) <= most
        )

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
        most = NAME_SHARE * max(1, len(self.interviews))
        return all(
            name in gone or sum(t.mentions(name) for t in self.interviews.values()) > most
            for name in self.names(question)
        )

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
                target, [t.spaced for t in self.interviews.values()]
            )
            if not after:
                continue
            limit = 1 if len(target) <= 5 else 2
            pattern = re.compile(
                rf"\b({target[0]}[a-z0-9]{{2,}}) ({'|'.join(map(re.escape, sorted(after)))})s?\b"
            )
            for iv, text in self.interviews.items():
                if text.mentions(name):
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
                if text.mentions(name):
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

    # ---- phrases -----------------------------------------------------------------------------

    @staticmethod
    def phrases(question: str) -> tuple[tuple[str, str], ...]:
        """Adjacent topic words of the question, stemmed: ("class", "imbal")."""
        words = [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(question)]
        skip = _STOP | QUESTION_WORDS | FRAMING_WORDS | FRAMING_VERBS
        stem = stemmer().stemWord
        out = []
        for (a, _, end), (b, start, _) in zip(words, words[1:], strict=False):
            if a in skip or b in skip or a.isdigit() or b.isdigit():
                continue
            if question[end:start].strip(" -") == "":
                out.append((stem(a), stem(b)))
        return tuple(dict.fromkeys(out))

    def phrase_features(
        self, question: str, searched: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """Per interview: ``phrase_hit``, the share of the question's phrases it says;
        ``phrase_near``, the share whose two words it uses in one passage; and, the same for
        every interview, ``has_phrase``; ``phrase_apart``, the share of phrases whose words
        no participant passage of the corpus uses together ("differential" and "privacy"); and
        ``phrase_unsaid``, the share that no interviewee says as a phrase, even where both
        words meet in one passage ("test" … "coverage", "feature" … "flags"): a method's name
        is said as its words in order, while a paraphrase of something discussed shares fewer
        of its phrases with the question but not none of them."""
        phrases = self.phrases(question)
        if not phrases:
            zero = {
                "phrase_hit": 0.0,
                "phrase_near": 0.0,
                "has_phrase": 0.0,
                "phrase_apart": 0.0,
                "phrase_unsaid": 0.0,
            }
            return {iv: dict(zero) for iv in searched}
        grams = self.bigrams
        near = {iv: [self._together(iv, p) for p in phrases] for iv in self.interviews}
        apart = sum(not any(near[iv][j] for iv in near) for j in range(len(phrases)))
        unsaid = sum(not any(p in said for said in grams.values()) for p in phrases)
        n = len(phrases)
        return {
            iv: {
                "phrase_hit": sum(p in grams[iv] for p in phrases) / n,
                "phrase_near": sum(near[iv]) / n,
                "has_phrase": 1.0,
                "phrase_apart": apart / n,
                "phrase_unsaid": unsaid / n,
            }
            for iv in searched
        }

    # ---- coverage ----------------------------------------------------------------------------

    @cached_property
    def chunk_interview(self) -> np.ndarray:
        """The interview position (in ``index.interviews``) of every chunk: the scan's and the
        feedback's map from passages to interviews, built once per loaded index."""
        ids = {iv: i for i, iv in enumerate(self.index.interviews)}
        return np.array([ids[c.interview_id] for c in self.index.chunks], dtype=np.int32)

    def coverage(
        self, question: str, allowed: np.ndarray
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]:
        """IDF-weighted share of the question's distinctive terms in each chunk, and anywhere in
        each interview; the share of its two rarest terms (the topic: "COVID", "outliers") each
        interview uses; and the share that occurs nowhere. A term no transcript has still
        counts in the denominator: a question about something absent covers less of itself."""
        index = self.index
        n = len(index.chunks)
        ignore = _framing_tokens()
        terms = [t for t in dict.fromkeys(keyword_tokens([question])[0]) if t not in ignore]
        chunk_cov = np.zeros(n)
        iv_cov = np.zeros(len(index.interviews))
        key = np.zeros(len(index.interviews))
        key_count = np.zeros(len(index.interviews))
        if not terms:
            return (chunk_cov, iv_cov, key, key_count), 0.0
        total = missing = 0.0
        n_iv = len(index.interviews)
        found: list[tuple[float, np.ndarray, np.ndarray]] = []
        for t in terms:
            present = index.chunks_saying(t) & allowed
            df = int(present.sum())
            idf = math.log((n + 1) / (df + 1)) + 1.0
            total += idf
            missing += idf if df == 0 else 0.0
            chunk_cov += idf * present
            hit = np.zeros(n_iv, bool)
            hit[self.chunk_interview[present]] = True
            iv_cov += idf * hit
            if df:
                counts = np.bincount(self.chunk_interview[present], minlength=n_iv)
                found.append((idf, hit, counts))
        rarest = sorted(found, key=lambda f: -f[0])[:2]
        for _, hit, counts in rarest:
            key += hit / len(rarest)
            key_count += np.log1p(counts) / len(rarest)
        return (chunk_cov / total, iv_cov / total, key, key_count), missing / total
