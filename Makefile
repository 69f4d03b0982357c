# The two set-up commands of the README:
#   make demo   installs the package into .venv and runs `reconciler demo` on the embedded simulators
#   make test   installs the package with its test extra into .venv and runs the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint stubs bench clean

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

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
