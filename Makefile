# leadflow: `make up` starts the suite, `make test` runs every test.
# Both bootstrap .venv from nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := $(BIN)/uv
SYNCED := $(VENV)/.synced
PYTEST_ARGS ?=

.PHONY: install up test test-unit test-integration lint format protos protos-check bench ci clean

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "leadflow needs Python 3.11 or newer; set PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	$(UV) sync --frozen --all-packages --python $(BIN)/python
	@touch $@

install: $(SYNCED)

# `make up TRACES=1` also runs the local trace viewer (`leadflow up --traces`).
up: $(SYNCED)
	$(BIN)/leadflow up $(if $(TRACES),--traces)

test: $(SYNCED)
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: $(SYNCED)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: $(SYNCED)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

lint: $(SYNCED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint
	$(BIN)/buf format --exit-code > /dev/null

format: $(SYNCED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Regenerate libs/contracts from protos/ (code and typed stubs).
protos: $(SYNCED)
	$(BIN)/python scripts/gen_protos.py

# Fails when the committed generated code differs from a fresh generation, new files included.
protos-check: protos
	@changes=$$(git status --porcelain -- libs/contracts protos); \
	if [ -n "$$changes" ]; then \
	  echo "generated contracts are stale or uncommitted; run 'make protos' and commit:"; \
	  echo "$$changes"; exit 1; \
	fi
	@echo "contracts up to date"

# Each bench/<name>.py is a target bench-<name>; `make bench` runs them all. Each prints
# `BENCH <name> <value> <unit> baseline=<value> ratio=<value>` lines.
BENCHMARKS := $(patsubst bench/%.py,bench-%,$(filter-out bench/_%,$(wildcard bench/*.py)))

bench: $(BENCHMARKS)
	@test -n "$(BENCHMARKS)" || echo "no benchmarks in bench/ yet"

bench-%: $(SYNCED)
	$(BIN)/python bench/$*.py

ci: lint protos-check test

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
