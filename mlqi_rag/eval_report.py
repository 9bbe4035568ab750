"""The eval's report: the tables printed by ``mlqi-rag eval`` and written, with every row, as
Markdown and JSON beside each other under ``eval/results`` (named by date, engine and corpus
hash, so a run on another corpus never overwrites this one). Every figure is given overall, by
split (held-out apart) and by kind, with the two baselines beside ours."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from .evaluation import KINDS, EvalRun

RETRIEVAL_KEYS = (
    "interview_recall@5",
    "interview_recall@10",
    "interview_recall_capped@10",
    "quote_hit@5",
    "quote_hit@10",
    "quote_hit@4000ch",
    "mrr",
)
ANSWER_KEYS = (
    "quote_exact_rate",
    "participant_share",
    "citation_precision",
    "citation_recall",
    "gold_quotes_cited",
    "abstention",
    "false_abstention",
    "citations_per_answer",
    "coverage_f1",
    "coverage_count_mae",
    "coverage_count_in_range",
    "latency_p50",
    "latency_p95",
)
# A coverage question read twice: the readers against each other, then ours against the gold
# (their consensus where an adjudicator reconciled them) and against each reader.
READER_KEYS = (
    "readers_f1",
    "readers_count_mae",
    "alpha_discusses",
    "alpha_levels",
    "coverage_f1_gold",
    "coverage_count_mae_gold",
    "coverage_f1_first_reader",
    "coverage_f1_second_reader",
    "coverage_count_mae_first_reader",
    "coverage_count_mae_second_reader",
)


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def report_tables(run: EvalRun) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) tables shared by the terminal output and the Markdown report."""
    overall = run.summary()["overall"]
    by_split = run.summary(lambda r: r["split"])
    by_kind = run.summary(lambda r: r["kind"])
    tables = []
    header = ["metric", "ours", "ours, as the answer read", "llama-index defaults", "BM25 only"]
    rows = [
        [
            k,
            _fmt(overall.get(f"ours:{k}")),
            _fmt(overall.get(f"read:{k}")),
            _fmt(overall.get(f"llamaindex:{k}")),
            _fmt(overall.get(f"bm25:{k}")),
        ]
        for k in RETRIEVAL_KEYS
    ]
    tables.append(("Retrieval (all questions, k=10)", header, rows))
    splits = sorted(by_split)
    rows = [
        [
            k,
            *(
                _fmt(by_split[s].get(f"ours:{k}") if k in RETRIEVAL_KEYS else by_split[s].get(k))
                for s in splits
            ),
        ]
        for k in (*RETRIEVAL_KEYS, *ANSWER_KEYS)
    ] + [
        [f"{k} (as the answer read)", *(_fmt(by_split[s].get(f"read:{k}")) for s in splits)]
        for k in ("interview_recall@5", "interview_recall@10", "interview_recall_capped@10")
    ]
    tables.append(
        (
            "Ours by split (held-out questions were not used for tuning)",
            ["metric", *[f"{s} (n={by_split[s]['n']})" for s in splits]],
            rows,
        )
    )
    rows = [[k, _fmt(overall.get(k))] for k in ANSWER_KEYS]
    tables.append((f"Answers ({run.engine} engine)", ["metric", "value"], rows))
    read = [s for s in splits if by_split[s].get("second_read")]
    if read:
        rows = [[k, *(_fmt(by_split[s].get(k)) for s in read)] for k in READER_KEYS]
        tables.append(
            (
                "Gold read twice (coverage questions a second reader labelled blind)",
                ["metric", *[f"{s} (n={by_split[s]['second_read']})" for s in read]],
                rows,
            )
        )
    kinds = [k for k in KINDS if k in by_kind]
    keys = (
        "ours:interview_recall@5",
        "ours:quote_hit@4000ch",
        "ours:mrr",
        "llamaindex:mrr",
        "bm25:mrr",
        "citation_precision",
        "abstention",
        "false_abstention",
    )
    rows = [[k, *(_fmt(by_kind[kind].get(k)) for kind in kinds)] for k in keys]
    tables.append(("By kind", ["metric", *[f"{k} (n={by_kind[k]['n']})" for k in kinds]], rows))
    return tables


def to_markdown(run: EvalRun) -> str:
    m = run.meta
    lines = [
        f"# Grounding evaluation — {m['date']}",
        "",
        f"- engine: `{m['engine']}`, k = {m['k']}, questions: {m['questions']}",
        f"- corpus: `{m['corpus']}` (hash `{m['corpus_hash']}`), index `{m['index_generation']}`",
        f"- model: `{m['model']}`, settings fingerprint `{m['fingerprint']}`, "
        f"mlqi_rag {m['package_version']}",
        f"- settings: `{json.dumps(m['settings'])}`",
        "",
    ]
    for title, header, rows in report_tables(run):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def write_report(run: EvalRun, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    path = directory / f"{stamp}-{run.engine}-{run.meta['corpus_hash']}.md"
    path.write_text(to_markdown(run), encoding="utf-8")
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "meta": run.meta,
                "summary": run.summary()["overall"],
                "by_kind": run.summary(lambda r: r["kind"]),
                "by_split": run.summary(lambda r: r["split"]),
                "rows": run.rows,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    return path
