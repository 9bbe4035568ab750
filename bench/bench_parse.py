"""Parse throughput: the 36 study transcripts (goal: under 2 s) against reading the same bytes.

Prints a table and writes bench/results/parse.json. The baseline is a plain read+decode of the
same files in the same run, so the ratio is comparable across machines.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlqi_rag.settings import bundled_corpus  # noqa: E402
from mlqi_rag.transcripts import parse_paths, transcript_files  # noqa: E402


def _best(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    corpora = {
        "seeds": bundled_corpus(),
        "mlsss-36": REPO.parent / "shared/corpus/mlsss-transcripts",
    }
    rows = []
    for name, path in corpora.items():
        if not path.is_dir():
            print(f"skip {name}: {path} missing", file=sys.stderr)
            continue
        files, _ = transcript_files([path])
        read = _best(lambda: [f.read_bytes().decode("utf-8") for f in files])  # noqa: B023
        parse = _best(lambda: parse_paths([path]))  # noqa: B023
        interviews, errors = parse_paths([path])
        rows.append(
            {
                "corpus": name,
                "files": len(files),
                "interviews": len(interviews),
                "errors": len(errors),
                "turns": sum(len(iv.turns) for iv in interviews),
                "bytes": sum(f.stat().st_size for f in files),
                "read_s": round(read, 4),
                "parse_s": round(parse, 4),
                "ratio_to_read": round(parse / read, 1),
                "goal_parse_s": 2.0,
            }
        )
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "parse.json").write_text(json.dumps(rows, indent=2))
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))


if __name__ == "__main__":
    main()
