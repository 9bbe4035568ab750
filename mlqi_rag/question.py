"""Reading a question: what it asks for, what it names, and whether it can be searched at all.

Before anything is retrieved, a question says things the pipeline must honour: "Which
interviewees…" asks for every interview that speaks to it (``asks_for_interviews``) and is about
its topic without that framing (``topic_of``); "in interview 17" scopes it, and an interview the
index lacks refuses it (``interviews_named``); a code's words name that code (``codes_named``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from .errors import QuestionError
from .stores import stemmer
from .types import interview_order

MAX_QUESTION_CHARS = 2000
# Code prefixes and suffixes that say which family a code belongs to, not what it is about.
_CODE_NOISE = frozenset({"data", "qm", "me", "mm", "mlp", "fix", "issues", "issue"})

# Words that frame a question about this corpus rather than name its topic.
FRAMING_WORDS = frozenset(
    "practitioner practitioners interviewee interviewees participant participants respondent "
    "respondents people person team teams company companies interview interviews organisation "
    "organization organisations organizations".split()
)


_WHICH = re.compile(
    r"^\s*(which|what|how many)\s+(\w+\s+)?(interviewees|participants|interviews|practitioners|"
    r"respondents|people|teams)\b",
    re.I,
)


def asks_for_interviews(question: str) -> bool:
    """ "Which interviewees talk about X?" wants every interview that does, not the best one."""
    return bool(_WHICH.search(question))


_ASKING_VERB = re.compile(r"^(describe|mention|talk about|discuss|say|raise|use|have)\s+", re.I)


def topic_of(question: str) -> str:
    """What a "which interviewees…" question is about, without its framing: "Which
    participants talk about outliers in their data?" → "outliers in their data". The framing
    words pull the question's vector towards talk about interviewees; passages answer the topic.
    Any other question is its own topic."""
    if not asks_for_interviews(question):
        return question
    topic = _ASKING_VERB.sub("", _WHICH.sub("", question).strip(" ,?"))
    return topic or question


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    return str(stemmer().stemWord(word.lower()))


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[A-Za-z]{2,}", text)}


def codes_named(question: str, codes: Sequence[str]) -> tuple[str, ...]:
    """Codes the question names, literally or by all of their content words."""
    q_lower = question.lower()
    q_stems = _stems(question)
    named = []
    for code in codes:
        if code.lower() in q_lower:
            named.append(code)
            continue
        words = {_stem(w) for w in code.split("-") if w.lower() not in _CODE_NOISE and len(w) > 1}
        if words and words <= q_stems:
            named.append(code)
    return tuple(named)


_NAMED_INTERVIEW = re.compile(r"\binterviews?\s+(?:#|no\.?\s*)?(\d+)\b", re.I)


def interviews_named(question: str, known: Sequence[str]) -> tuple[str, ...]:
    """Interview ids a question names ("in interview 17, ..."), if they exist in the index.

    A question that names only interviews the index does not hold is refused: answering it from
    the other interviews would pass their words off as the named one's.
    """
    named = tuple(dict.fromkeys(_NAMED_INTERVIEW.findall(question)))
    found = tuple(m for m in named if m in known)
    if named and not found:
        raise QuestionError(
            f"the question names interview {', '.join(named)}, which is not in the index "
            f"(it holds {', '.join(sorted(known, key=interview_order))})"
        )
    return found


def validate_question(question: str) -> str:
    q = " ".join(question.split())
    if not q:
        raise QuestionError("empty question: type a question about the interviews")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(f"question too long ({len(q)} characters, max {MAX_QUESTION_CHARS})")
    if not re.search(r"\w", q):
        raise QuestionError(f"question {q[:40]!r} has no words to search for")
    return q
