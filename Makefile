# stratiflow — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SF := $(VENV)/bin/stratiflow
STAMP := $(VENV)/.installed
PROVISIONED := .stratiflow/.provisioned
# Debian's Chromium for the dashboard's browser tests and `stratiflow report --png`
# (Playwright drives it; no browser download).
BROWSER := .stratiflow/.browser
# Fast tiers first: a broken unit test fails in seconds, not after the cluster tests.
PYTEST := $(PY) -m pytest

.PHONY: help setup setup-browser demo test test-unit test-flink test-e2e lint docs stop clean eval-sampling eval-drift eval-curation chaos bench

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n",$$1,$$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (stratiflow needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

$(PROVISIONED): $(STAMP) $(wildcard stratiflow/local/java/*.java) stratiflow/local/provision.py stratiflow/local/maven/pom.xml stratiflow/local/maven/checksums.sha256
	$(SF) local setup
	@touch $@

$(BROWSER):
	@mkdir -p .stratiflow
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then APT="apt-get"; \
	  elif sudo -n true 2>/dev/null; then APT="sudo -n apt-get"; \
	  else echo "error: the browser tests need Debian's chromium: sudo apt-get install chromium"; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive $$APT install -y -q chromium >/dev/null || { \
	    $$APT update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$APT install -y -q chromium >/dev/null; }; }
	@command -v chromium >/dev/null && touch $@

setup-browser: $(BROWSER) ## install Debian's chromium (the dashboard tests, `stratiflow report --png`)

setup: $(STAMP) $(PROVISIONED) ## create .venv, install stratiflow, resolve the Kafka broker and connector jars with Maven

demo: setup ## start the local broker, produce Phishing, run the job on an embedded Flink, print metrics
	$(SF) demo

lint: $(STAMP) ## ruff + mypy + the layering contracts (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check stratiflow operators jobs tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test-unit: setup ## unit tier (no Java)
	$(PYTEST) tests/unit stratiflow

test-flink: setup $(BROWSER) ## Flink tier (MiniCluster, in-memory sources)
	$(PYTEST) tests/flink

test-e2e: setup $(BROWSER) ## end-to-end tier (local broker, standalone Flink, CLI)
	$(PYTEST) tests/e2e

docs: $(STAMP) ## build the reference in docs/ with MkDocs (strict) into .stratiflow/site
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

test: setup $(BROWSER) lint ## lint, then every test tier (two pytest workers, a file each at a time)
	$(PYTEST) -n 2 --dist loadfile --durations=25 tests/unit stratiflow tests/flink tests/e2e

eval-sampling: setup ## compare sampling strategies on an imbalanced stream; writes benchmarks/results/sampling.json and the table in docs/sampling.md
	$(PY) benchmarks/eval_sampling.py

eval-drift: setup ## drift detection and adaptation on streams with known drifts vs River's own; writes benchmarks/results/drift.json and the tables in docs/drift.md
	$(PY) benchmarks/eval_drift.py

eval-curation: setup ## active learning (label share vs accuracy) and the label filter under label noise; writes benchmarks/results/curation.json and the tables in docs/curation.md
	$(PY) benchmarks/eval_curation.py

chaos: setup ## fault tests at full size (50k events); writes benchmarks/results/chaos.json and the table in docs/reliability.md
	STRATIFLOW_CHAOS_N=$${STRATIFLOW_CHAOS_N:-50000} \
	STRATIFLOW_CHAOS_RESULTS=$(CURDIR)/benchmarks/results/chaos.json \
	STRATIFLOW_SOAK_N=$${STRATIFLOW_SOAK_N:-1000000} \
	STRATIFLOW_SOAK_RESULTS=$(CURDIR)/benchmarks/results/soak.json \
	STRATIFLOW_BROKER_RESTART_N=$${STRATIFLOW_BROKER_RESTART_N:-50000} \
	$(PYTEST) tests/e2e/test_chaos.py tests/e2e/test_broker_restart.py tests/e2e/test_netns_cluster.py
	$(PY) benchmarks/chaos_table.py

bench: setup ## bare River, River's progressive_val_score, Kafka loops, Quix Streams, Bytewax and the job (Kafka and backtest), same run (200k events); writes benchmarks/results/bench.json and the table in docs/performance.md
	$(PY) benchmarks/bench.py --events $${STRATIFLOW_BENCH_EVENTS:-200000} --peers --backtest --core-costs --latency --latency-share 0.5 0.1 --latency-low --latency-sustainable --readme --run-timeout 600

.PHONY: deploy-check
deploy-check: $(STAMP) ## static checks of deploy/ and docker-compose.yml
	$(PYTEST) tests/unit/deploy

stop: ## stop the local broker and Flink cluster started by stratiflow
	-@[ -x $(SF) ] && $(SF) local flink stop || true
	-@[ -x $(SF) ] && $(SF) local broker stop || true

clean: stop ## remove the venv and everything downloaded
	rm -rf $(VENV) .stratiflow
