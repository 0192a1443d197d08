# Aether developer tasks. `make test` is what CI runs (.ci/run).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv installs the locked set (pip took minutes for what uv does in seconds); pip installs uv.
UV := $(BIN)/uv
# Python scripts without a .py suffix, which ruff would not discover on its own.
SCRIPTS := $(shell grep -l '^\#!.*python' scripts/* scripts/bench/* 2>/dev/null)
# `make bench BENCH=scripts/bench/coldstart` runs one benchmark.
BENCH ?= $(wildcard scripts/bench/*)

# `make install` puts this machine's single file at $(BINDIR)/aether.
PREFIX ?= $(HOME)/.local
BINDIR ?= $(PREFIX)/bin

.PHONY: venv test pytest lint format zipapp dist install bench demo clean lock browser

# The editable install builds the C extensions in place (src/aether/pack/_*.so) and
# leaves src/ without bytecode; where PYTHONDONTWRITEBYTECODE is set nothing would ever write
# it, and every start would compile each module again (~60 ms for `aether pack`). The same
# holds for the installed packages, which uv leaves uncompiled: each `aether serve` a test
# starts would compile starlette, hypercorn, psycopg… again (1.4 s of CPU more per start).
$(STAMP): requirements/runtime.lock requirements/dev.lock setup.cfg setup.py $(wildcard src/aether/pack/*.c)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$$(grep '^uv==' requirements/dev.lock)"
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python \
	  -r requirements/runtime.lock -r requirements/dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
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

# pytest-xdist workers: the tests mostly wait on servers, npm and Node.js, so more workers than
# cores pay off. `make test PYTEST_WORKERS=0` runs in this process, one test at a time.
PYTEST_WORKERS ?= 3

# `make test` checks first, then tests; `make pytest` only tests (.ci/run runs both at once).
test: lint
	$(MAKE) --no-print-directory pytest

pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The single file for this machine's platform: dist/aether-<platform>, linked as dist/aether.
zipapp: $(STAMP)
	$(BIN)/python scripts/build-zipapp

# Every platform's file, SHA256SUMS, and SHA256SUMS.sig when AETHER_RELEASE_KEY names a key.
dist: $(STAMP)
	$(BIN)/python scripts/build-zipapp --platform all --sums

# Copy this machine's file to $(BINDIR)/aether and run it once (the first start unpacks it).
install: zipapp
	install -d "$(BINDIR)"
	install -m 755 dist/aether "$(BINDIR)/aether"
	"$(BINDIR)/aether" --version
	@case ":$$PATH:" in *":$(BINDIR):"*) ;; \
	  *) echo "$(BINDIR) is not on PATH: add it, e.g. in ~/.profile: export PATH=\"$(BINDIR):\$$PATH\"";; esac

bench: zipapp
	set -e; for bench in $(BENCH); do echo "== $$bench"; $(BIN)/python $$bench; done

demo:
	scripts/quickstart

# Debian's Chromium for the dashboard's browser tests (Playwright drives it; never a download
# of Playwright's own browsers). .ci/run does the same.
browser:
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Re-resolve the locked dependency set (needs network access to PyPI). Resolved for 3.11; the
# set is the same for 3.12 and 3.13 (checked with --python-version), which the files also run.
lock: $(STAMP)
	cd requirements && $(abspath $(UV)) pip compile --python-version 3.11 runtime.in -o runtime.lock \
	  && $(abspath $(UV)) pip compile --python-version 3.11 dev.in -o dev.lock

clean:
	rm -rf dist build $(VENV) .pytest_cache .ruff_cache
