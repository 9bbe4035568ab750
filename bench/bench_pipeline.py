"""Index build, re-index, retrieval, answering and cold start, on the seeds and the 36 transcripts.

Prints a table and writes bench/results/pipeline.json. Every timing has a baseline measured in the
same run: the build is compared with a raw ``SentenceTransformer.encode`` of the same chunk texts.
Each measurement that needs a peak RSS runs in a child process of its own.

    .venv/bin/python bench/bench_pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUESTIONS = REPO / "eval" / "questions.jsonl"
QUESTIONS_MLSSS = REPO / "eval" / "questions_mlsss.jsonl"


def _child(mode: str, corpus: str, index_dir: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, corpus, index_dir],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return result


def child(mode: str, corpus: str, index_dir: str) -> dict:  # type: ignore[type-arg]
    from mlqi_rag.settings import Settings, offline_environment

    offline_environment()
    s = Settings(corpus=Path(corpus), index_dir=Path(index_dir))
    t0 = time.perf_counter()
    if mode == "build":
        from mlqi_rag.build import build_index
        from mlqi_rag.embedding import Embedder
        from mlqi_rag.index import Index

        emb = Embedder.from_settings(s)
        emb.embed(["warm-up"])  # model load is not build work; cold start measures it
        t0 = time.perf_counter()
        report = build_index(s, emb, progress=False)
        build = time.perf_counter() - t0
        index = Index.load(s)
        sources = {iv: index.source_text(iv) for iv in index.interviews}
        span_texts = [
            sources[index.chunks[int(c)].interview_id][int(a) : int(b)]
            for c, a, b in zip(index.spans.chunk, index.spans.start, index.spans.end, strict=True)
        ]
        # What the build embeds: every chunk and every quotable span (distinct texts).
        texts = list(dict.fromkeys([c.embed_text for c in index.chunks] + span_texts))
        t1 = time.perf_counter()
        emb.model.encode(texts, batch_size=s.embed_batch_size, normalize_embeddings=True)
        encode = time.perf_counter() - t1
        gen = Path(index_dir) / (Path(index_dir) / "CURRENT").read_text().strip()
        return {
            "chunks": report.chunks,
            "spans": report.spans,
            "build_s": build,
            "raw_encode_s": encode,
            "span_disk_mb": (gen / "spans.npz").stat().st_size / 1e6,
            "span_ram_mb": index.spans.vectors.nbytes / 1e6,
        }
    if mode == "reindex":
        from mlqi_rag.build import build_index

        report = build_index(s, progress=False)
        return {"reindex_s": time.perf_counter() - t0, "embedded": report.embedded}
    if mode == "cold":
        from mlqi_rag.pipeline import Pipeline

        pipe = Pipeline.load(s)
        answer = pipe.engine("extractive").answer("How do practitioners handle missing values?")
        return {"cold_start_s": time.perf_counter() - t0, "abstained": answer.abstained}
    if mode in ("latency", "latency-blas"):
        import numpy as np

        from mlqi_rag.pipeline import Pipeline

        pipe = Pipeline.load(s)
        if mode == "latency-blas":  # the baseline: numpy's BLAS with its own thread count
            from threadpoolctl import threadpool_limits

            pipe.embedder.embed(["load the model"])  # which limits BLAS to one thread
            threadpool_limits(limits=os.cpu_count(), user_api="blas")
        qfile = QUESTIONS_MLSSS if "mlsss" in corpus else QUESTIONS
        questions = [json.loads(x)["question"] for x in qfile.read_text().splitlines() if x]
        eng = pipe.engine("extractive")
        for q in questions[:5]:  # warm-up
            eng.answer(q)
        retr, ans = [], []
        for _ in range(2):
            for q in questions:
                # first askings only: the question-vector cache would hide the embedding
                pipe.embedder.forget_questions()
                t = time.perf_counter()
                pipe.retriever.retrieve(q)
                retr.append(time.perf_counter() - t)
                pipe.embedder.forget_questions()
                t = time.perf_counter()
                eng.answer(q)
                ans.append(time.perf_counter() - t)
        # Baseline, same run: what each question paid before span vectors were stored (its 64
        # candidate spans embedded at question time).
        spans = pipe.index.spans
        texts = [
            pipe.index.source_text(pipe.index.chunks[int(spans.chunk[i])].interview_id)[
                int(spans.start[i]) : int(spans.end[i])
            ]
            for i in range(min(64, len(spans)))
        ]
        old = []
        for _ in range(5):
            t = time.perf_counter()
            pipe.embedder.embed([questions[0], *texts])
            old.append(time.perf_counter() - t)
        # Scale: the exact scan's matrix product over 1,000 interviews' worth of spans.
        factor = 1000 / max(1, len(pipe.index.interviews))
        big = np.tile(spans.vectors, (int(np.ceil(factor)), 1))
        qv = pipe.embedder.embed_one(questions[0])
        scan_1000 = []
        for _ in range(5):
            t = time.perf_counter()
            sims = big @ qv
            np.argpartition(-sims, 2000)[:2000]
            scan_1000.append(time.perf_counter() - t)
        q = statistics.quantiles
        return {
            "old_span_embedding_ms": 1000 * statistics.median(old),
            "scan_1000_interviews_ms": 1000 * statistics.median(scan_1000),
            "span_ram_1000_interviews_mb": big.nbytes / 1e6,
            "retrieve_p50_ms": 1000 * statistics.median(retr),
            "retrieve_p95_ms": 1000 * q(retr, n=20)[18],
            "answer_p50_ms": 1000 * statistics.median(ans),
            "answer_p95_ms": 1000 * q(ans, n=20)[18],
        }
    raise SystemExit(f"unknown mode {mode}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=3)
    ap.add_argument("--quick", action="store_true", help="seeds only")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    from mlqi_rag.settings import bundled_corpus

    corpora = {"seeds (5)": bundled_corpus()}
    mlsss = REPO.parent / "shared" / "corpus" / "mlsss-transcripts"
    if not args.quick and mlsss.is_dir():
        corpora["mlsss (36)"] = mlsss
    rows = []
    for name, corpus in corpora.items():
        with tempfile.TemporaryDirectory() as tmp:
            b = _child("build", str(corpus), tmp)
            r = _child("reindex", str(corpus), tmp)
            c = _child("cold", str(corpus), tmp)
            lat = _child("latency", str(corpus), tmp)
            blas = _child("latency-blas", str(corpus), tmp)
        rows.append(
            {
                "corpus": name,
                "chunks": b["chunks"],
                "build_s": round(b["build_s"], 2),
                "raw_encode_s": round(b["raw_encode_s"], 2),
                "build/encode": round(b["build_s"] / b["raw_encode_s"], 2),
                "build_peak_rss_mb": b["peak_rss_mb"],
                "spans": b["spans"],
                "span_disk_mb": round(b["span_disk_mb"], 1),
                "span_ram_mb": round(b["span_ram_mb"], 1),
                "reindex_s": round(r["reindex_s"], 2),
                "reindex_embedded": r["embedded"],
                "cold_start_s": round(c["cold_start_s"], 2),
                "retrieve_p50_ms": round(lat["retrieve_p50_ms"], 1),
                "retrieve_p95_ms": round(lat["retrieve_p95_ms"], 1),
                "answer_p50_ms": round(lat["answer_p50_ms"], 1),
                "answer_p95_ms": round(lat["answer_p95_ms"], 1),
                "baseline: numpy's own BLAS threads, retrieve p50 (ms)": round(
                    blas["retrieve_p50_ms"], 1
                ),
                "baseline: numpy's own BLAS threads, answer p50 (ms)": round(
                    blas["answer_p50_ms"], 1
                ),
                "baseline: 64 spans embedded per question (ms)": round(
                    lat["old_span_embedding_ms"], 1
                ),
                "exact scan, 1,000 interviews (ms)": round(lat["scan_1000_interviews_ms"], 1),
                "span RAM, 1,000 interviews (MB)": round(lat["span_ram_1000_interviews_mb"], 1),
            }
        )
    goals = {
        "build/encode": "≤ 1.3",
        "reindex_s": "≤ 2",
        "retrieve_p50_ms": "≤ 40 (36 transcripts)",
        "answer_p50_ms": "≤ 80 (36 transcripts)",
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps({"rows": rows, "goals": goals}, indent=2))
    cols = list(rows[0])
    width = max(len(c) for c in cols)
    for c in cols:
        values = "  ".join(f"{str(r[c]):>14}" for r in rows)
        print(f"{c:<{width}}  {values}   {goals.get(c, '')}")


if __name__ == "__main__":
    main()
