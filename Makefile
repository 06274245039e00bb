# The two commands of the README: `make run` (sojourn up) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sojourn up

test: $(STAMP)
	$(BIN)/ruff check src tests bench workflows activities
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench workflows activities
	$(BIN)/ruff format --check src tests bench workflows activities
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/journey_throughput.py

clean:
	rm -rf $(VENV) .sojourn
