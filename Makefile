# The two commands a new machine needs: `make dev` runs yima, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test lint typecheck pytest bench openapi screenshots clean

$(STAMP): pyproject.toml sdk/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./sdk -e '.[dev]'
	touch $(STAMP)

# `make dev PORT=8001` listens elsewhere (so does `YIMA_PORT=8001 make dev`).
dev: $(STAMP)
	$(BIN)/yima dev $(if $(PORT),--port $(PORT))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two pytest-xdist workers: most tests wait on servers and subprocesses, not on the CPU. Each module (and all of
# tests/browser) is one unit of work (tests/conftest.py); each worker has its own database and Redis prefix.
pytest: $(STAMP)
	.ci/system-deps
	$(BIN)/pytest -q -n 2 --dist loadgroup

test: lint typecheck pytest

openapi: $(STAMP)
	$(BIN)/yima openapi

# The main pages at phone and desktop sizes, into docs/screenshots/ (needs Debian's chromium, as the page tests do).
screenshots: $(STAMP)
	$(BIN)/python -m tests.browser.screenshots

bench: $(STAMP)
	@for b in tests/bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
