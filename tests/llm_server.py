"""A real llama.cpp server (xllamacpp) on 127.0.0.1 serving a GGUF model, for engine tests.

Usage: python tests/llm_server.py MODEL.gguf PORT — serves until killed.
"""

from __future__ import annotations

import sys
import time

import xllamacpp


def main() -> None:
    model, port = sys.argv[1], int(sys.argv[2])
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.n_ctx = 4096
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.hostnames = ["127.0.0.1"]
    params.port = port
    server = xllamacpp.Server(params)
    print(f"serving {server.listening_address}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
