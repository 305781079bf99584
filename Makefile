# lineproto: make run | make test | make bench
PYTHON ?= python3
VENV ?= .venv
VPY = $(VENV)/bin/python

.PHONY: run test bench cluster clean

# make run [PORT=37001] [ARGS="--db /tmp/play.db --engine threads"]: the daemon on 127.0.0.1
PORT ?= 36000
ARGS ?=

run:
	$(PYTHON) daemon.py --host 127.0.0.1 --port $(PORT) $(ARGS)

# make cluster [CLUSTER_ARGS="--daemons 2 --port 36000 --users users.txt"]: a throw-away PostgreSQL, 3 daemons
# on it and HAProxy in front (scripts/cluster.py, docs/SCALING.md); Ctrl+C stops everything
CLUSTER_ARGS ?=

cluster: $(VENV)/.installed
	$(VPY) scripts/cluster.py $(CLUSTER_ARGS)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[test]'
	touch $@

# make test: lint (ruff), format check, types (mypy), then the suite under coverage (branches, the
# daemons the tests start included) and the coverage figures: all, and the rule layers
COVERAGE_DIR = build/coverage
# pytest-xdist workers: most tests wait on the daemons, PostgreSQL, HAProxy or a browser they start (the
# suite used 19 CPU minutes in 16.5 wall minutes with two), so four share the 2 cores well
TEST_WORKERS ?= 4
RULE_LAYERS = lineproto/wire/*,lineproto/domain/*,lineproto/commands/*

test: $(VENV)/.installed
	scripts/test-packages.sh
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .
	$(VPY) -m mypy
	rm -rf $(COVERAGE_DIR) && mkdir -p $(COVERAGE_DIR)
	$(VPY) -m coverage run -m pytest -n $(TEST_WORKERS) --durations=15
	$(VPY) -m coverage combine -q
	@echo "branch coverage: rule layers (wire/, domain/, commands/) $$($(VPY) -m coverage report --format=total --include='$(RULE_LAYERS)')%, whole package $$($(VPY) -m coverage report --format=total)%"

# make bench [BENCH_QUICK=1] [BENCH_ARGS="--scenarios S2,S4"]: bench/run.py (S1-S9; our daemon as lineproto,
# lineproto-uvloop and lineproto-threads), see docs/BENCHMARKS.md; then bench/cluster.py: S6 and S7 on
# PostgreSQL, 1 and 3 daemons behind HAProxy (docs/SCALING.md), with .venv's python (it has psycopg);
# then bench/web.py: the web gateway next to the raw line protocol (docs/WEB.md)
BENCH_DIR ?= build/bench
BENCH_VENV ?= $(BENCH_DIR)/venv
BENCH_PY = $(BENCH_VENV)/bin/python
BENCH_CFLAGS ?= -O2 -Wall
BENCH_ARGS ?=

$(BENCH_DIR)/loadgen: bench/loadgen.c
	mkdir -p $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) -o $@ bench/loadgen.c

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	-$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -e '.[bench]' || { \
	  echo "make bench: could not install the bench extras (pyftpdlib, twisted, uvloop, scipy): those servers (and lineproto-uvloop) are skipped (rm -r $(BENCH_VENV) to retry)"; \
	  $(BENCH_PY) -m pip install --quiet -e . || true; }
	touch $@

bench: $(BENCH_VENV)/.installed $(BENCH_DIR)/loadgen $(VENV)/.installed
	$(BENCH_PY) bench/run.py $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)
	$(BENCH_PY) scripts/rng_check.py --spins $(if $(BENCH_QUICK),100000,1000000)
	$(VPY) bench/cluster.py $(if $(BENCH_QUICK),--quick)
	$(BENCH_PY) bench/web.py $(if $(BENCH_QUICK),--quick)

.PHONY: bench-profile
bench-profile: $(BENCH_VENV)/.installed $(BENCH_DIR)/loadgen
	$(BENCH_PY) -m pip install --quiet py-spy || echo "make bench-profile: py-spy could not be installed: /proc and perf only"
	$(BENCH_PY) bench/profile.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache build *.egg-info
