"""Index build, re-index, retrieval, answering and cold start, on the seeds and the 36 transcripts.

Prints a table and writes bench/results/pipeline.json. Every timing has a baseline measured in the
same run: the build is compared with a raw ``SentenceTransformer.encode`` of the same chunk texts.
Each measurement that needs a peak RSS runs in a child process of its own.

    .venv/bin/python bench/bench_pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import json
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
        from mlqi_rag.embedding import Embedder
        from mlqi_rag.index import Index, build_index

        emb = Embedder.from_settings(s)
        emb.embed(["warm-up"])  # model load is not build work; cold start measures it
        t0 = time.perf_counter()
        report = build_index(s, emb, progress=False)
        build = time.perf_counter() - t0
        texts = [c.embed_text for c in Index.load(s).chunks]
        t1 = time.perf_counter()
        emb.model.encode(texts, batch_size=s.embed_batch_size, normalize_embeddings=True)
        encode = time.perf_counter() - t1
        return {"chunks": report.chunks, "build_s": build, "raw_encode_s": encode}
    if mode == "reindex":
        from mlqi_rag.index import build_index

        report = build_index(s, progress=False)
        return {"reindex_s": time.perf_counter() - t0, "embedded": report.embedded}
    if mode == "cold":
        from mlqi_rag.pipeline import Pipeline

        pipe = Pipeline.load(s)
        answer = pipe.engine("extractive").answer("How do practitioners handle missing values?")
        return {"cold_start_s": time.perf_counter() - t0, "abstained": answer.abstained}
    if mode == "latency":
        from mlqi_rag.pipeline import Pipeline

        pipe = Pipeline.load(s)
        questions = [json.loads(x)["question"] for x in QUESTIONS.read_text().splitlines() if x]
        eng = pipe.engine("extractive")
        for q in questions[:5]:  # warm-up
            eng.answer(q)
        retr, ans = [], []
        for _ in range(2):
            for q in questions:
                t = time.perf_counter()
                pipe.retriever.retrieve(q)
                retr.append(time.perf_counter() - t)
                t = time.perf_counter()
                eng.answer(q)
                ans.append(time.perf_counter() - t)
        q = statistics.quantiles
        return {
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
        rows.append(
            {
                "corpus": name,
                "chunks": b["chunks"],
                "build_s": round(b["build_s"], 2),
                "raw_encode_s": round(b["raw_encode_s"], 2),
                "build/encode": round(b["build_s"] / b["raw_encode_s"], 2),
                "build_peak_rss_mb": b["peak_rss_mb"],
                "reindex_s": round(r["reindex_s"], 2),
                "reindex_embedded": r["embedded"],
                "cold_start_s": round(c["cold_start_s"], 2),
                "retrieve_p50_ms": round(lat["retrieve_p50_ms"], 1),
                "retrieve_p95_ms": round(lat["retrieve_p95_ms"], 1),
                "answer_p50_ms": round(lat["answer_p50_ms"], 1),
                "answer_p95_ms": round(lat["answer_p95_ms"], 1),
            }
        )
    goals = {
        "build/encode": "≤ 1.3",
        "reindex_s": "≤ 2",
        "retrieve_p50_ms": "≤ 50 (36 transcripts)",
        "answer_p50_ms": "≤ 300 (seeds)",
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
