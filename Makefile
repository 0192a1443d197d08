# Aether developer tasks. `make test` is what CI runs (.ci/run).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint format zipapp bench demo clean lock

$(STAMP): requirements/runtime.lock requirements/dev.lock setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/runtime.lock -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

zipapp: $(STAMP)
	$(BIN)/python scripts/build-zipapp

bench: zipapp
	scripts/bench/coldstart

demo:
	scripts/quickstart

# Re-resolve the locked dependency set (needs network access to PyPI).
lock:
	cd requirements && uv pip compile --python-version 3.11 runtime.in -o runtime.lock \
	  && uv pip compile --python-version 3.11 dev.in -o dev.lock

clean:
	rm -rf dist build $(VENV) .pytest_cache .ruff_cache
