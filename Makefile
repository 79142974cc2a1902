# vigil — two commands for a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit bench bench-quick bench-guard bench-baseline clean install fuzz chaos

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "vigil needs Python 3.11+")'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/vigil up --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint unit
	$(MAKE) --no-print-directory bench-guard

fuzz: $(STAMP)
	VIGIL_FUZZ_EXAMPLES=$${VIGIL_FUZZ_EXAMPLES:-3000} $(BIN)/pytest -q tests/test_fuzz.py

chaos: $(STAMP)
	VIGIL_CHAOS_SCALE=full $(BIN)/pytest -q -s tests/test_chaos.py tests/test_cluster.py

# The benchmark suite (bench/run.py): every bench at full size, docs/performance.md written.
bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

# CI: guarded ratios at --quick sizes against bench/baseline.json; fails at a drop of 30 % or more.
bench-guard: $(STAMP)
	$(BIN)/python bench/run.py --guard

bench-baseline: $(STAMP)
	$(BIN)/python bench/run.py --write-baseline

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
