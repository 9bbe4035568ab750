"""Which interviews use a question's words: phrases and coverage (names: ``names``).

Dense similarity cannot tell "differential privacy" from "privacy": both sit close to passages
about something else. Whether an interview *says* the question's words, together, is a lexical
fact, so the scan gets it as features from here:

* **phrases** — adjacent content words of the question ("class imbalance", "differential
  privacy"), stemmed, looked up as adjacent words of each interview's participant speech.
  A phrase no interview uses is strong evidence the question is about something else.
* **coverage** — the IDF-weighted share of the question's distinctive terms that each passage
  and each interview uses, and of its two rarest terms (its topic).

``CorpusTerms`` is ``names.CorpusNames`` with these added, so one object reads the corpus once
for both. The weights of these features are fitted with the rest (``calibration``), never set
here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from .names import QUESTION_WORDS, CorpusNames, says
from .names import STOP_WORDS as _STOP
from .question import FRAMING_WORDS
from .stores import keyword_tokens, stemmer

__all__ = ["QUESTION_WORDS", "CorpusTerms", "says"]

# Verbs that frame a question ("which interviewees *discuss* …") rather than name its topic.
FRAMING_VERBS = frozenset(
    "discuss discusses discussed mention mentions mentioned talk talks talked say says said "
    "describe describes described report reports reported use uses using used raise raises "
    "raised experience experiences apply applies applied deal deals handle handles".split()
)
_WORD = re.compile(r"\w\w+")


@cache
def _framing_tokens() -> frozenset[str]:
    """The framing words ("interviewees", "describe") as the keyword index spells them, worked
    out once: every question's term coverage leaves them out."""
    return frozenset(t for toks in keyword_tokens(sorted(FRAMING_WORDS)) for t in toks)


@dataclass
class CorpusTerms(CorpusNames):
    """The corpus's words, per interview and overall, for names, phrases and coverage."""

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
