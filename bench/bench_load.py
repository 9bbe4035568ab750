"""Load benchmark of the app: concurrent chat sessions on loopback.

Starts ``app.py`` itself (a subprocess on a free port, the index built into a temporary directory
on first start unless ``--index-dir`` points at one), then runs ``--sessions`` sessions at once,
each asking ``--questions`` questions from ``eval/questions.jsonl`` in turn through the app's
``/chat`` endpoint, carrying its conversation like a browser tab does: first through a light
HTTP client, then (the baseline, same server) through ``gradio_client``. Reports errors (goal: 0),
latency p50/p95 (seconds, queueing included), throughput, and the server's memory (VmRSS sampled
during the run, VmHWM at the end, from /proc). Prints a table and writes
``bench/results/load.json``. Bounded: ``--max-seconds`` stops issuing new questions.

    .venv/bin/python bench/bench_load.py                 # 20 sessions x 10 questions
    .venv/bin/python bench/bench_load.py --sessions 4 --questions 3 --index-dir /tmp/ix
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
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

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server so far (fields 14 and 15 of /proc/PID/stat)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

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


class HttpChat:
    """A light client: Gradio's documented REST calls (``POST /gradio_api/call/chat``, then the
    event's server-sent stream), one keep-alive connection per session. ``gradio_client`` spends
    about as much CPU per question as the server does; on a 2-core machine that load generator
    would halve the server's share, so it is kept only as ``--client gradio`` for comparison."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        # One session per tab, as a browser (and gradio_client) keeps: the server builds its
        # per-session state once, not on every question.
        self.session_hash = secrets.token_hex(6)

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):  # a dropped keep-alive connection is reopened once
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data[:200]!r}")
                return data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def predict(self, *inputs: Any) -> list[Any]:
        # The handler's session State is not part of the API; the coder dropdown's default
        # ("" = the reader's codes) follows, as gradio_client fills it from the API schema.
        body = json.dumps({"data": [*inputs, ""], "session_hash": self.session_hash}).encode()
        event_id = json.loads(self._request("POST", "/gradio_api/call/chat", body))["event_id"]
        stream = self._request("GET", f"/gradio_api/call/chat/{event_id}").decode()
        event, last = "", None
        for line in stream.splitlines():
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: "):
                if event == "error":
                    raise RuntimeError(f"server error: {line[6:200]}")
                if event in ("generating", "complete"):
                    last = json.loads(line[6:])
        if event != "complete" or last is None:
            raise RuntimeError(f"stream ended with event {event!r}")
        return list(last)[:4]  # the fifth output is the session State, which gradio_client drops


class GradioChat:
    """The same calls through ``gradio_client`` (heavier; for comparison)."""

    def __init__(self, url: str) -> None:
        from gradio_client import Client

        self.client = Client(url, verbose=False, analytics_enabled=False, download_files=False)

    def predict(self, *inputs: Any) -> list[Any]:
        return list(self.client.predict(*inputs, api_name="/chat"))


CLIENTS = {"http": HttpChat, "gradio": GradioChat}


def ask(client: Any, question: str, history: list[Any], k: int) -> tuple[list[Any], str]:
    """One chat turn; returns the new history and the evidence panel's state."""
    _, new_history, evidence, _coverage = client.predict(
        question, history, [], [], "any", True, "extractive", k
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
    kind: str,
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
    client = CLIENTS[kind](url)
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


def load_pass(
    kind: str, url: str, questions: list[str], args: argparse.Namespace, memory: Memory
) -> dict[str, Any]:
    """All sessions at once through one kind of client; latency, throughput and CPU."""
    results: list[Request] = []
    lock = threading.Lock()
    barrier = threading.Barrier(args.sessions + 1)
    deadline = time.monotonic() + args.max_seconds
    session_args = (questions, args.questions, args.k, barrier, deadline, results, lock)
    threads = [
        threading.Thread(target=run_session, args=(kind, i, url, *session_args), daemon=True)
        for i in range(args.sessions)
    ]
    for t in threads:
        t.start()
    print(f"{args.sessions} sessions x {args.questions} questions through {kind}", flush=True)
    barrier.wait()
    t_load = time.perf_counter()
    cpu_server0, cpu_self0 = memory.cpu_seconds(), time.process_time()
    for t in threads:
        t.join(timeout=args.max_seconds + 300)
    wall = time.perf_counter() - t_load
    cpu_server = memory.cpu_seconds() - cpu_server0
    cpu_client = time.process_time() - cpu_self0
    ok = [r for r in results if r.ok]
    errors = [r for r in results if not r.ok]
    lat = [r.seconds for r in ok]
    return {
        "client": kind,
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
        "cpu_s": {
            "server": round(cpu_server, 1),
            "client": round(cpu_client, 1),
            "server_per_question": round(cpu_server / len(ok), 4) if ok else math.nan,
            "client_per_question": round(cpu_client / len(ok), 4) if ok else math.nan,
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--questions", type=int, default=10, help="questions per session")
    p.add_argument("--k", type=int, default=10, help="passages retrieved per question")
    p.add_argument(
        "--index-dir", type=Path, help="reuse this index (default: build into a temp dir)"
    )
    p.add_argument("--question-file", type=Path, default=REPO / "eval" / "questions.jsonl")
    p.add_argument(
        "--client", choices=sorted(CLIENTS), default="http", help="load generator (see HttpChat)"
    )
    p.add_argument(
        "--baseline-client",
        choices=[*sorted(CLIENTS), ""],
        default="gradio",
        help="a second pass through this client on the same server ('' skips it)",
    )
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

        warm = CLIENTS[args.client](url)
        t0 = time.perf_counter()
        ask(warm, questions[0], [], args.k)
        warm_seconds = time.perf_counter() - t0
        rss_idle = memory.read("VmRSS")

        sampler = threading.Thread(target=memory.run, daemon=True)
        sampler.start()
        passes = {args.client: load_pass(args.client, url, questions, args, memory)}
        if args.baseline_client and args.baseline_client != args.client:
            kind = args.baseline_client
            passes[kind] = load_pass(kind, url, questions, args, memory)
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

    report = {
        "benchmark": "app load: concurrent chat sessions on loopback",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sessions": args.sessions,
        "questions_per_session": args.questions,
        "distinct_questions": len(questions),
        "k": args.k,
        "engine": "extractive",
        **passes[args.client],
        "baseline": passes.get(args.baseline_client),
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

    kinds = list(passes)
    rows = [
        ("client (load generator)", *kinds),
        ("sessions x questions", *[f"{args.sessions} x {args.questions}"] * len(kinds)),
        ("requests ok / errors", *[f"{p['ok']} / {p['errors']}" for p in passes.values()]),
        ("answers that abstained", *[str(p["abstained"]) for p in passes.values()]),
        (
            "latency p50 / p95 / max (s)",
            *["{p50} / {p95} / {max}".format(**p["latency_s"]) for p in passes.values()],
        ),
        (
            "wall time (s), throughput (q/s)",
            *[f"{p['wall_s']}, {p['throughput_qps']}" for p in passes.values()],
        ),
        (
            "CPU s per question: server / client",
            *[
                "{server_per_question} / {client_per_question}".format(**p["cpu_s"])
                for p in passes.values()
            ],
        ),
    ]
    if len(kinds) == 2:
        a, b = passes.values()
        ratio = a["throughput_qps"] / b["throughput_qps"] if b["throughput_qps"] else math.nan
        rows.append(("throughput ratio", f"{ratio:.2f}x", "1.00x"))
    rows += [
        ("app startup (s), first question (s)", f"{report['startup_s']}, {warm_seconds:.2f}"),
        (
            "server RSS idle / peak / end (MB)",
            "{rss_idle} / {rss_peak_sampled} / {rss_end}".format(**report["server_memory_mb"]),
        ),
        ("server VmHWM (MB)", str(report["server_memory_mb"]["hwm"])),
        ("chat concurrency limit", str(CHAT_CONCURRENCY)),
    ]
    width = max(len(row[0]) for row in rows)
    cols = [max((len(row[i]) for row in rows if len(row) > i), default=0) for i in (1, 2)]
    print()
    for key, *values in rows:
        cells = "  ".join(f"{v:<{w}}" for v, w in zip(values, cols, strict=False))
        print(f"{key:<{width}}  {cells}".rstrip())
    errors = sum(res["errors"] for res in passes.values())
    for res in passes.values():
        for e in res["error_samples"]:
            print(f"error ({res['client']}): {e}")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    if errors:
        print(f"server log kept: {log}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)  # the temporary index, exports and log
    return 0


if __name__ == "__main__":
    sys.exit(main())
