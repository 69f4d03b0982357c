# The two set-up commands of the README:
#   make demo   installs the package into .venv and runs `reconciler demo` on the embedded simulators
#   make test   installs the package with its test extra into .venv and runs the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint stubs bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

demo: install
	$(BIN)/reconciler demo

test: install
	$(BIN)/python -m pytest -q
	$(BIN)/python -m ruff check reconciler tests benchmarks
	$(BIN)/python -m ruff format --check reconciler tests benchmarks
	$(BIN)/python -m mypy

lint: install
	$(BIN)/python -m ruff check --fix reconciler tests benchmarks
	$(BIN)/python -m ruff format reconciler tests benchmarks
	$(BIN)/python -m mypy

# Regenerates the multipassd gRPC stubs from reconciler/multipass/multipass.proto.
stubs: install
	$(BIN)/python -m reconciler.multipass.gen_stubs

bench: install
	$(BIN)/python benchmarks/planner.py

# Mutation testing of the pure core and the safety code (docs/testing.md): slow, not in CI.
# MUTATION_JOBS: parallel mutants (default: 2).
MUTATION_JOBS ?= 2
mutation: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	rm -rf mutants
	HYPOTHESIS_PROFILE=mutation $(BIN)/mutmut run --max-children $(MUTATION_JOBS) > mutants.log 2>&1 \
		|| (tail -c 2000 mutants.log; exit 1)
	$(BIN)/python tests/mutation_score.py --survivors

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache mutants mutants.log
