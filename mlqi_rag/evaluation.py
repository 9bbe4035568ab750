"""Grounding evaluation on a fixed question set, with two baselines measured in the same run.

The question file is JSONL (``id``, ``question``, ``kind``, ``gold_interviews``, ``gold_quotes``,
``gold_codes``, ``answer_points``, optional ``split``, ``gold_touching``, ``second_reader`` and,
where the two readings were reconciled into the gold, ``first_reader``).
Retrieval metrics are computed for our retriever and for two baselines over the same corpus:
llama-index defaults (SentenceSplitter 1024/200 over whole files, dense only) and BM25 only over
those same chunks. Answer metrics come from the chosen engine; a coverage question read twice
is also scored against its second reader (``readers``). ``eval_report`` lays the figures out
overall, per ``kind`` and per ``split``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import __version__
from .errors import QuestionError
from .fitting import set_f1
from .pipeline import Pipeline
from .readers import alphas, question_metrics
from .retrieval import Filters
from .types import Hit

KINDS = (
    "factoid",
    "thematic",
    "per-interview",
    "code-based",
    "cross-interview",
    "coverage",
    "unanswerable",
)
BUDGET_CHARS = 4000


class GoldQuote(BaseModel):
    interview: str
    quote: str


class Reading(BaseModel):
    """One reader's blind labels of a coverage question (see ``readers``). The second reading is
    measured against, never fitted on; the first is kept here when an adjudicator reconciled the
    two readings into the question's gold."""

    interviews: list[str] = Field(default_factory=list)
    touching: list[str] = Field(default_factory=list)


class Question(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)  # "id": 7 is as good as "id": "7"

    id: str
    question: str
    kind: str = "thematic"
    gold_interviews: list[str] = Field(default_factory=list)
    gold_touching: list[str] = Field(default_factory=list)  # mention it only in passing
    gold_quotes: list[GoldQuote] = Field(default_factory=list)
    gold_codes: list[str] = Field(default_factory=list)
    answer_points: list[str] = Field(default_factory=list)
    split: str = "dev"
    first_reader: Reading | None = None  # set when the gold is the two readers' consensus
    second_reader: Reading | None = None

    @property
    def answerable(self) -> bool:
        return self.kind != "unanswerable" and bool(self.gold_interviews)


def load_questions(path: Path) -> list[Question]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionError(f"{path}: cannot read question file ({exc})") from exc
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(Question.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "line"
            raise QuestionError(f"{path}:{n}: {where}: {first['msg']}") from exc
    if not out:
        raise QuestionError(f"{path}: no questions in file")
    return out


# ---- span arithmetic ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Retrieved:
    """One retrieved item, reduced to what the metrics need (works for baselines too)."""

    interview_id: str
    text: str
    spans: tuple[tuple[int, int], ...]  # source offsets the text came from


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def covers(
    item: Retrieved, quote: str, span: tuple[int, int] | None, budget: int | None = None
) -> bool:
    """The item contains the gold quote, or its spans cover at least half of it."""
    text = item.text if budget is None else item.text[:budget]
    if quote in text:
        return True
    if span is None:
        return False
    need = (span[1] - span[0]) / 2
    got, left = 0, budget if budget is not None else 1 << 60
    for s, e in item.spans:
        e = min(e, s + left)
        got += _overlap((s, e), span)
        left -= e - s
        if left <= 0:
            break
    return got >= need


def _first_rank(
    items: Sequence[Retrieved], quotes: list[tuple[str, str, tuple[int, int] | None]]
) -> int:
    for r, it in enumerate(items, start=1):
        if any(it.interview_id == iv and covers(it, q, sp) for iv, q, sp in quotes):
            return r
    return 0


def retrieved_items(hits: Iterable[Hit]) -> list[Retrieved]:
    return [Retrieved(h.chunk.interview_id, h.chunk.text, h.chunk.segments) for h in hits]


def quote_locator(index: Any) -> Callable[[str, str], tuple[int, int] | None]:
    """Where a gold quote sits in its interview's source (None if it is not there verbatim),
    looked up once per quote."""
    located: dict[tuple[str, str], tuple[int, int] | None] = {}

    def locate(iv: str, quote: str) -> tuple[int, int] | None:
        if (iv, quote) not in located:
            if iv not in index.interviews:
                located[(iv, quote)] = None
            else:
                i = index.source_text(iv).find(quote)
                located[(iv, quote)] = (i, i + len(quote)) if i >= 0 else None
        return located[(iv, quote)]

    return locate


def retrieval_metrics(
    items: Sequence[Retrieved], q: Question, locate: Callable[[str, str], tuple[int, int] | None]
) -> dict[str, float]:
    if not q.answerable:
        return {}
    gold = set(q.gold_interviews)
    quotes = [(g.interview, g.quote, locate(g.interview, g.quote)) for g in q.gold_quotes]
    m: dict[str, float] = {}
    for k in (5, 10):
        found = {it.interview_id for it in items[:k]}
        m[f"interview_recall@{k}"] = len(gold & found) / len(gold)
        # Ten passages can name at most ten interviews, and a "which interviewees…" question's
        # list can be 21 long: capped recall (BEIR's R_cap@k) counts the ten as complete when
        # each is on the list, so a perfect ranking scores 1 whatever the list's length.
        m[f"interview_recall_capped@{k}"] = len(gold & found) / min(k, len(gold))
        if quotes:
            hits = sum(
                any(it.interview_id == iv and covers(it, qt, sp) for it in items[:k])
                for iv, qt, sp in quotes
            )
            m[f"quote_hit@{k}"] = hits / len(quotes)
    if quotes:
        budget_hits = 0
        for iv, qt, sp in quotes:
            left = BUDGET_CHARS
            for it in items:
                if left <= 0:
                    break
                if it.interview_id == iv and covers(it, qt, sp, budget=left):
                    budget_hits += 1
                    break
                left -= len(it.text)
        m["quote_hit@4000ch"] = budget_hits / len(quotes)
        rank = _first_rank(items, quotes)
        m["mrr"] = 1.0 / rank if rank else 0.0
    return m


# ---- the run -----------------------------------------------------------------------------------


@dataclass
class EvalRun:
    engine: str
    questions: list[Question]
    rows: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(
        self, group: Callable[[dict[str, Any]], str] | None = None
    ) -> dict[str, dict[str, float]]:
        groups: dict[str, list[dict[str, Any]]] = {"overall": self.rows}
        if group:
            groups = {}
            for r in self.rows:
                groups.setdefault(group(r), []).append(r)
        return {name: aggregate(rows) for name, rows in groups.items()}


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return float(np.mean(vals)) if vals else None


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for system in ("ours", "read", "llamaindex", "bm25"):
        keys = sorted({k for r in rows for k in r.get(system, {})})
        for k in keys:
            out[f"{system}:{k}"] = _mean(r[system][k] for r in rows if k in r.get(system, {}))
    ans = [r["answer"] for r in rows if "answer" in r]
    answerable = [a for a, r in zip(ans, rows, strict=False) if r["answerable"]]
    unanswerable = [a for a, r in zip(ans, rows, strict=False) if not r["answerable"]]
    cites = [c for a in ans for c in a["citations"]]
    out["quote_exact_rate"] = _mean(c["exact"] for c in cites) if cites else None
    out["participant_share"] = _mean(c["role"] == "participant" for c in cites) if cites else None
    answered = [a for a in answerable if not a["abstained"] and a["citations"]]
    out["citation_precision"] = _mean(a["precision"] for a in answered)
    out["citation_recall"] = _mean(a["recall"] for a in answered)
    out["gold_quotes_cited"] = _mean(
        a["gold_quotes_cited"] for a in answerable if a["n_gold_quotes"]
    )
    out["abstention"] = _mean(a["abstained"] for a in unanswerable)
    out["false_abstention"] = _mean(a["abstained"] for a in answerable)
    out["citations_per_answer"] = _mean(len(a["citations"]) for a in ans)
    out["coverage_f1"] = _mean(a["coverage_f1"] for a in ans if "coverage_f1" in a)
    out["coverage_count_mae"] = _mean(
        a["coverage_count_error"] for a in ans if "coverage_count_error" in a
    )
    # Does the printed 80% range hold the true count? (An answer without a range: no.)
    out["coverage_count_in_range"] = _mean(
        a["coverage_count_in_range"] for a in ans if "coverage_count_in_range" in a
    )
    twice = [a for a in ans if "readers_f1" in a]
    if twice:
        out["second_read"] = len(twice)
        out["readers_f1"] = _mean(a["readers_f1"] for a in twice)
        out["readers_count_mae"] = _mean(a["readers_count_error"] for a in twice)
        out["coverage_f1_gold"] = _mean(a["coverage_f1"] for a in twice)
        out["coverage_count_mae_gold"] = _mean(a["coverage_count_error"] for a in twice)
        for name in ("first", "second"):
            out[f"coverage_f1_{name}_reader"] = _mean(
                a[f"coverage_f1_{name}_reader"] for a in twice
            )
            out[f"coverage_count_mae_{name}_reader"] = _mean(
                a[f"coverage_count_error_{name}_reader"] for a in twice
            )
        out |= alphas(a["reader_levels"] for a in twice)
    lat = [a["latency"] for a in ans]
    out["latency_p50"] = float(np.percentile(lat, 50)) if lat else None
    out["latency_p95"] = float(np.percentile(lat, 95)) if lat else None
    return out


def run_eval(
    pipeline: Pipeline,
    questions: list[Question],
    engine: str = "extractive",
    k: int = 10,
    baselines: bool = True,
    progress: Callable[[str], None] | None = None,
) -> EvalRun:
    index = pipeline.index
    locate = quote_locator(index)

    from .eval_baselines import Baselines

    base = Baselines(pipeline) if baselines else None
    eng = pipeline.engine(engine)
    eng.answer("warm-up question about data quality")  # load models before timing anything
    run = EvalRun(engine=engine, questions=questions)
    for n, q in enumerate(questions, start=1):
        if progress:
            progress(f"[{n}/{len(questions)}] {q.id}")
        row: dict[str, Any] = {
            "id": q.id,
            "kind": q.kind,
            "split": q.split,
            "answerable": q.answerable,
        }
        result = pipeline.retriever.retrieve(q.question, k=k, filters=Filters())
        row["ours"] = retrieval_metrics(retrieved_items(result.hits), q, locate)
        if base is not None:
            row["llamaindex"] = retrieval_metrics(base.dense(q.question, k), q, locate)
            row["bm25"] = retrieval_metrics(base.bm25_only(q.question, k), q, locate)
        t0 = time.perf_counter()
        answer = eng.answer(q.question, Filters(), k)
        latency = time.perf_counter() - t0
        row["answer"] = _answer_metrics(answer, q, index, locate, latency)
        # The passages the answer read (its quotes' turns first): what the scan adds to
        # retrieval. Scored like the retrievers' lists, beside them.
        row["read"] = retrieval_metrics(retrieved_items(answer.passages), q, locate)
        run.rows.append(row)
    run.meta = {
        "engine": engine,
        "k": k,
        "questions": len(questions),
        "model": pipeline.settings.model_name(),
        "fingerprint": pipeline.settings.index_fingerprint(),
        "corpus": str(pipeline.settings.corpus),
        "corpus_hash": index.manifest.get("corpus_hash"),
        "index_generation": index.generation,
        "package_version": __version__,
        "settings": {
            key: getattr(pipeline.settings, key)
            for key in (
                "chunk_max_tokens",
                "chunk_min_tokens",
                "fusion",
                "rrf_k",
                "code_boost",
                "name_weight",
                "per_interview_cap",
                "candidates",
                "keyword_weight",
                "top_k",
            )
        },
        "scan_model": pipeline.scanner.model.digest,
        "scan_thresholds": [pipeline.scanner.model.t_discusses, pipeline.scanner.model.t_touches],
        "baseline_build_seconds": base.build_seconds if base else None,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return run


def _answer_metrics(
    answer: Any, q: Question, index: Any, locate: Any, latency: float
) -> dict[str, Any]:
    cites = []
    for c in answer.citations:
        src = index.source_text(c.interview_id)
        cites.append(
            {
                "interview_id": c.interview_id,
                "role": c.role,
                "exact": src[c.start : c.end] == c.quote,
                "start": c.start,
                "end": c.end,
            }
        )
    cited = {c["interview_id"] for c in cites}
    gold = set(q.gold_interviews)
    golds = [(g.interview, locate(g.interview, g.quote)) for g in q.gold_quotes]
    gold_cited = sum(
        any(
            c["interview_id"] == iv and sp and _overlap((c["start"], c["end"]), sp) > 0
            for c in cites
        )
        for iv, sp in golds
    )
    covered = set(answer.coverage.get("interviews", []))
    coverage: dict[str, Any] = {}
    if q.kind == "coverage" and gold:
        coverage = {
            "coverage_f1": set_f1(covered, gold),
            "coverage_count_error": abs(len(covered) - len(gold)),
            "coverage_count_in_range": float(
                bool(answer.coverage.get("range"))
                and answer.coverage["range"][0] <= len(gold) <= answer.coverage["range"][1]
            ),
        }
        if q.second_reader is not None:
            first = q.first_reader or Reading(
                interviews=q.gold_interviews, touching=q.gold_touching
            )
            coverage |= question_metrics(
                list(index.interviews),
                (first.interviews, first.touching),
                (q.second_reader.interviews, q.second_reader.touching),
                covered,
            )
    return {
        **coverage,
        "abstained": answer.abstained,
        "citations": cites,
        "precision": len(cited & gold) / len(cited) if cited else 0.0,
        "recall": len(cited & gold) / len(gold) if gold else 0.0,
        "gold_quotes_cited": gold_cited / len(golds) if golds else 0.0,
        "n_gold_quotes": len(golds),
        "rejected_quotes": answer.rejected_quotes,
        "fallback": answer.fallback,
        "latency": latency,
    }
