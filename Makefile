# Aether developer tasks. `make test` is what CI runs (.ci/run).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Python scripts without a .py suffix, which ruff would not discover on its own.
SCRIPTS := $(shell grep -l '^\#!.*python' scripts/* scripts/bench/* 2>/dev/null)
# `make bench BENCH=scripts/bench/coldstart` runs one benchmark.
BENCH ?= $(wildcard scripts/bench/*)

.PHONY: venv test lint format zipapp bench demo clean lock

# The editable install builds the C extensions in place (src/aether/pack/_*.so) and
# leaves src/ without bytecode; where PYTHONDONTWRITEBYTECODE is set nothing would ever write
# it, and every start would compile each module again (~60 ms for `aether pack`).
$(STAMP): requirements/runtime.lock requirements/dev.lock setup.cfg setup.py $(wildcard src/aether/pack/*.c)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements/runtime.lock -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m compileall -q src
	$(BIN)/python -m pip check
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check . $(SCRIPTS)
	$(BIN)/ruff format --check . $(SCRIPTS)
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix . $(SCRIPTS)
	$(BIN)/ruff format . $(SCRIPTS)

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

zipapp: $(STAMP)
	$(BIN)/python scripts/build-zipapp

bench: zipapp
	set -e; for bench in $(BENCH); do echo "== $$bench"; $(BIN)/python $$bench; done

demo:
	scripts/quickstart

# Re-resolve the locked dependency set (needs network access to PyPI).
lock:
	cd requirements && uv pip compile --python-version 3.11 runtime.in -o runtime.lock \
	  && uv pip compile --python-version 3.11 dev.in -o dev.lock

clean:
	rm -rf dist build $(VENV) .pytest_cache .ruff_cache
