# intransit developer commands. `make run` and `make test` are the two README commands.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CAPTURES ?= captures/

.PHONY: setup run test lint bench captures clean

$(BIN)/intransit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

setup: $(BIN)/intransit
	@# compile the numba kernels once (cached next to the sources) so tests and runs start fast
	$(BIN)/python -c "import analyzer; analyzer.warm_up()"
	@# byte-compile the package as pip does for a regular install: an editable install under
	@# PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module at every start (~0.1 s)
	$(BIN)/python -m compileall -q analyzer

## The main job on the bundled captures: per-flow table with TLS facts
run: setup
	$(BIN)/intransit flows $(CAPTURES)

lint: setup
	$(BIN)/ruff check analyzer tests bench
	$(BIN)/mypy

## The whole test suite (slow and corpus tests included; they skip with a reason when their tools are absent)
test: setup lint
	$(BIN)/python -m pytest -n 2 --timeout 600 -q

bench: setup
	$(BIN)/python bench/run_bench.py

captures:
	sudo bash captures/make_captures.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
