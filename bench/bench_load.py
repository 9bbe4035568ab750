"""Load benchmark of the app: concurrent chat sessions through gradio_client on loopback.

Starts ``app.py`` itself (a subprocess on a free port, the index built into a temporary directory
on first start unless ``--index-dir`` points at one), then runs ``--sessions`` sessions at once,
each asking ``--questions`` questions from ``eval/questions.jsonl`` in turn through the app's
``/chat`` endpoint, carrying its conversation like a browser tab does. Reports errors (goal: 0),
latency p50/p95 (seconds, queueing included), throughput, and the server's memory (VmRSS sampled
during the run, VmHWM at the end, from /proc). Prints a table and writes
``bench/results/load.json``. Bounded: ``--max-seconds`` stops issuing new questions.

    .venv/bin/python bench/bench_load.py                 # 20 sessions x 10 questions
    .venv/bin/python bench/bench_load.py --sessions 4 --questions 3 --index-dir /tmp/ix
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlqi_rag.settings import offline_environment  # noqa: E402

offline_environment()

from mlqi_rag.ui import CHAT_CONCURRENCY  # noqa: E402


@dataclass
class Request:
    session: int
    question: str
    seconds: float
    ok: bool
    state: str = ""
    error: str = ""


@dataclass
class Memory:
    pid: int
    samples: list[int] = field(default_factory=list)  # VmRSS in kB
    stop: threading.Event = field(default_factory=threading.Event)

    def read(self, key: str) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def run(self) -> None:
        while not self.stop.is_set():
            if rss := self.read("VmRSS"):
                self.samples.append(rss)
            self.stop.wait(0.25)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def load_questions(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line)["question"])
    if not out:
        raise SystemExit(f"no questions in {path}")
    return out


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"app.py did not answer within {timeout:.0f} s:\n{log.read_text()}")


def ask(client: Any, question: str, history: list[Any], k: int) -> tuple[list[Any], str]:
    """One chat turn; returns the new history and the evidence panel's state."""
    _, new_history, evidence, _coverage = client.predict(
        question, history, [], [], "any", True, "extractive", k, api_name="/chat"
    )
    if 'class="evidence"' not in evidence:
        raise RuntimeError("no evidence panel in the reply")
    state = evidence.split('data-state="', 1)[1].split('"', 1)[0]
    if state not in ("answer", "abstained"):
        raise RuntimeError(f"evidence panel in state {state!r}")
    if len(new_history) != len(history) + 2:
        raise RuntimeError(f"history has {len(new_history)} messages, expected {len(history) + 2}")
    return new_history, state


def run_session(
    i: int,
    url: str,
    questions: list[str],
    n: int,
    k: int,
    start: threading.Barrier,
    deadline: float,
    out: list[Request],
    lock: threading.Lock,
) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    history: list[Any] = []
    start.wait()
    for j in range(n):
        q = questions[(i * n + j) % len(questions)]
        if time.monotonic() > deadline:
            with lock:
                out.append(Request(i, q, 0.0, False, error="not run: --max-seconds reached"))
            continue
        t0 = time.perf_counter()
        try:
            history, state = ask(client, q, history, k)
            req = Request(i, q, time.perf_counter() - t0, True, state)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            req = Request(
                i, q, time.perf_counter() - t0, False, error=f"{type(exc).__name__}: {exc}"
            )
        with lock:
            out.append(req)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--questions", type=int, default=10, help="questions per session")
    p.add_argument("--k", type=int, default=10, help="passages retrieved per question")
    p.add_argument(
        "--index-dir", type=Path, help="reuse this index (default: build into a temp dir)"
    )
    p.add_argument("--question-file", type=Path, default=REPO / "eval" / "questions.jsonl")
    p.add_argument("--max-seconds", type=float, default=900, help="stop asking after this long")
    p.add_argument("--startup-timeout", type=float, default=600)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load.json")
    args = p.parse_args(argv)

    questions = load_questions(args.question_file)
    tmp = Path(tempfile.mkdtemp(prefix="mlqi-bench-load-"))
    index_dir = args.index_dir or tmp / "index"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp / "app.log"
    env = {**os.environ, "MLQI_EXPORT_DIR": str(tmp / "exports"), "PYTHONUNBUFFERED": "1"}
    env.pop("MLQI_AUTH", None)
    print(f"starting app.py on {url} (index: {index_dir}; log: {log})", flush=True)
    t_start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), "--index-dir", str(index_dir)],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    memory = Memory(proc.pid)
    try:
        wait_for(url, proc, args.startup_timeout, log)
        startup = time.perf_counter() - t_start
        print(f"app ready in {startup:.1f} s; warming up", flush=True)

        from gradio_client import Client

        warm = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        t0 = time.perf_counter()
        ask(warm, questions[0], [], args.k)
        warm_seconds = time.perf_counter() - t0
        rss_idle = memory.read("VmRSS")

        sampler = threading.Thread(target=memory.run, daemon=True)
        sampler.start()
        results: list[Request] = []
        lock = threading.Lock()
        barrier = threading.Barrier(args.sessions + 1)
        deadline = time.monotonic() + args.max_seconds
        threads = [
            threading.Thread(
                target=run_session,
                args=(i, url, questions, args.questions, args.k, barrier, deadline, results, lock),
                daemon=True,
            )
            for i in range(args.sessions)
        ]
        for t in threads:
            t.start()
        print(f"{args.sessions} sessions x {args.questions} questions, all at once …", flush=True)
        barrier.wait()
        t_load = time.perf_counter()
        for t in threads:
            t.join(timeout=args.max_seconds + 300)
        wall = time.perf_counter() - t_load
        memory.stop.set()
        sampler.join(timeout=2)
        rss_end = memory.read("VmRSS")
        hwm = memory.read("VmHWM")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)

    ok = [r for r in results if r.ok]
    errors = [r for r in results if not r.ok]
    lat = [r.seconds for r in ok]
    report = {
        "benchmark": "app load: concurrent chat sessions via gradio_client on loopback",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sessions": args.sessions,
        "questions_per_session": args.questions,
        "k": args.k,
        "engine": "extractive",
        "requests": len(results),
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": sorted({r.error for r in errors})[:5],
        "abstained": sum(r.state == "abstained" for r in ok),
        "latency_s": {
            "p50": round(percentile(lat, 50), 3),
            "p95": round(percentile(lat, 95), 3),
            "max": round(max(lat), 3) if lat else math.nan,
            "mean": round(sum(lat) / len(lat), 3) if lat else math.nan,
        },
        "wall_s": round(wall, 1),
        "throughput_qps": round(len(ok) / wall, 3) if wall else math.nan,
        "startup_s": round(startup, 1),
        "first_question_s": round(warm_seconds, 2),
        "server_memory_mb": {
            "rss_idle": round(rss_idle / 1024, 1),
            "rss_peak_sampled": round(max(memory.samples, default=0) / 1024, 1),
            "rss_end": round(rss_end / 1024, 1),
            "hwm": round(hwm / 1024, 1),
        },
        "concurrency_limit": CHAT_CONCURRENCY,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    rows = [
        ("sessions x questions", f"{args.sessions} x {args.questions}"),
        ("requests ok / errors", f"{len(ok)} / {len(errors)}"),
        ("answers that abstained", str(report["abstained"])),
        ("latency p50 / p95 / max (s)", "{p50} / {p95} / {max}".format(**report["latency_s"])),
        ("wall time (s), throughput (q/s)", f"{report['wall_s']}, {report['throughput_qps']}"),
        ("app startup (s), first question (s)", f"{report['startup_s']}, {warm_seconds:.2f}"),
        (
            "server RSS idle / peak / end (MB)",
            "{rss_idle} / {rss_peak_sampled} / {rss_end}".format(**report["server_memory_mb"]),
        ),
        ("server VmHWM (MB)", str(report["server_memory_mb"]["hwm"])),
        ("chat concurrency limit", str(CHAT_CONCURRENCY)),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for e in report["error_samples"]:
        print(f"error: {e}")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    if errors:
        print(f"server log kept: {log}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)  # the temporary index, exports and log
    return 0


if __name__ == "__main__":
    sys.exit(main())
