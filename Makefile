# mia-bridge: `make demo` runs the main job on the built-in simulated tenant, `make test` runs the checks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test demo lint typecheck unit bench wheel-check clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@if command -v krb5-config >/dev/null 2>&1; then \
		$(BIN)/python -m pip install -q -e '.[test,kerberos]'; \
	else \
		echo "note: no krb5-config (apt-get install libkrb5-dev): Kerberos support and its tests are skipped"; \
	fi
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check mia_bridge tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/mia investigate --demo --out output/demo

wheel-check:
	PYTHON=$(PYTHON) bash .ci/wheel-check

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_analyze.py
	$(BIN)/python benchmarks/bench_collect.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
