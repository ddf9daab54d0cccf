# ntg — two set-up commands: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
NTG_DATA_ROOT ?= $(abspath ../shared/datasets)
export NTG_DATA_ROOT
export RAY_AUTH_MODE ?= disabled
STAMP := $(VENV)/.ntg-installed
# pytest-xdist workers, one per core of the 2-core CI machine. Measured on 2 cores: the suite leaves a core idle a
# third of the time on one process (Ray start-ups, subprocess imports, one-trial-at-a-time sweeps) and takes
# 1,561 s; with two workers (whole files each, every worker its own Ray head) 1,032 s, and 890 s with the files
# holding slow tests started first (tests/conftest.py). More workers than cores only oversubscribe them.
TEST_WORKERS ?= 2

.PHONY: install demo test lint bench clean debian-tools

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first and pinned (a plain `torch` would pull a multi-GB CUDA build), then the project.
$(STAMP): $(VENV)/bin/python pyproject.toml
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

# Debian tools the tests compare against (tshark is the parser's independent reference).
debian-tools:
	@command -v tshark >/dev/null 2>&1 || { \
	  echo "installing tshark"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true; \
	  (apt-get update -qq || true) && apt-get install -y -qq --no-install-recommends tshark >/dev/null; }

install: $(STAMP)

demo: install
	$(VENV)/bin/ntg demo

test: install debian-tools
	$(VENV)/bin/ruff check ntg tests benchmarks cluster
	$(PY) -m pytest -q -x -n $(TEST_WORKERS) --dist loadfile --timeout=1800 --durations=15 tests

lint: install
	$(VENV)/bin/ruff check ntg tests benchmarks cluster

bench: install debian-tools
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
