# lineproto: make run | make test | make bench
PYTHON ?= python3
VENV ?= .venv
VPY = $(VENV)/bin/python

.PHONY: run test bench clean

run:
	$(PYTHON) daemon.py --host 127.0.0.1 --port 36000

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[test]'
	touch $@

test: $(VENV)/.installed
	$(VPY) -m pytest

bench:
	@echo "make bench: reserved for the benchmark issue" && false

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
