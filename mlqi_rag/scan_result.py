"""What the evidence scan found for one question: each searched interview's standing (its
verdict, probabilities, features and best spans) and the question's (names no transcript
says, the count's range, whether it is out of scope). Values only; ``scan`` computes them,
``evidence`` and ``answer`` read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Verdict = Literal["discusses", "touches", "silent"]


@dataclass(frozen=True)
class InterviewEvidence:
    """One interview's standing on one question."""

    interview_id: str
    verdict: Verdict
    p_discusses: float
    p_touches: float
    features: dict[str, float]
    spans: tuple[int, ...]  # rows of the index's span table, best first
    span_scores: tuple[float, ...]
    # every quotable span (rows) and its quote components (``quote_choice``), for refitting
    candidates: tuple[np.ndarray, np.ndarray] = field(
        default=(np.zeros(0, np.int64), np.zeros((0, 4))), repr=False, compare=False
    )
    quoted_names: tuple[str, ...] = ()  # quoted saying one of these (a "which mention X?")

    def to_dict(self) -> dict[str, Any]:
        return {
            "interview_id": self.interview_id,
            "verdict": self.verdict,
            "p_discusses": round(self.p_discusses, 4),
            "p_touches": round(self.p_touches, 4),
            "features": {k: round(v, 4) for k, v in self.features.items()},
        }


@dataclass(frozen=True)
class Scan:
    question: str
    interviews: tuple[InterviewEvidence, ...]  # every searched interview, strongest first
    absent_names: tuple[str, ...] = ()  # named things no transcript mentions
    ruled_out_by_name: bool = False  # ... and no other distinctive name it has is said
    absent_words: tuple[str, ...] = ()  # plain question words no transcript uses
    other_language: tuple[str, ...] = ()  # searched interviews not in English
    model: str = ""
    # P(no interview discusses it), from the question-level model (``calibration``)
    p_out_of_scope: float = 0.0
    t_out_of_scope: float = 0.5  # the model's fitted bar (``ScanModel.t_abstain``)
    # "Which interviewees…": the range the true count likely lies in (``COUNT_LEVEL``)
    count_range: tuple[int, int] | None = None
    # a "which interviewees mention X?" question that interviewees saying X answer
    answered_by_name: bool = False
    # (name, interview, form): listed for saying a name the transcript misheard ("sharp
    # values" for SHAP values, ``CorpusNames.heard``), shown so the reader can judge it
    heard_as: tuple[tuple[str, str, str], ...] = ()
    # (name, interviews): a filtered search's distinctive names, and the interviews outside
    # the search that say them ("Outside this search, interviews 8 and 13 mention LightGBM")
    said_outside: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def out_of_scope(self) -> bool:
        """Answer "not in the interviews": named things no transcript mentions
        (``CorpusNames.ruled_out_by_name``), or a question the fitted question-level model
        places outside the corpus, unless it asks which interviewees mention a name some of
        them say (``calibration.answered_by_name``)."""
        if self.ruled_out_by_name:
            return True
        return not self.answered_by_name and self.p_out_of_scope >= self.t_out_of_scope

    @property
    def discussing(self) -> tuple[InterviewEvidence, ...]:
        return tuple(e for e in self.interviews if e.verdict == "discusses")

    @property
    def touching(self) -> tuple[InterviewEvidence, ...]:
        return tuple(e for e in self.interviews if e.verdict == "touches")

    def coverage(self) -> dict[str, Any]:
        """What ``ask --json`` reports: who discusses it, who touches on it, out of how many."""
        return {
            "interviews": [e.interview_id for e in self.discussing],
            "touching": [e.interview_id for e in self.touching],
            "count": len(self.discussing),
            "of": len(self.interviews),
            "strength": {e.interview_id: round(e.p_discusses, 3) for e in self.interviews},
            **({"range": list(self.count_range)} if self.count_range else {}),
        }
