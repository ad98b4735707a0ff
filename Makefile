# The two commands: `make run` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-test build layers lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## run: install, build the layers from the bundled data if needed, serve on http://$(HOST):$(PORT)
run: install
	$(BIN)/riskmap build --if-needed
	$(BIN)/riskmap serve --host $(HOST) --port $(PORT)

## test: install with the test extras, lint, run the whole suite
test: install-test
	$(BIN)/ruff check geo_service scripts tests bench
	$(BIN)/python -m pytest

build: install
	$(BIN)/riskmap build

layers: install
	$(BIN)/riskmap layers

lint: install-test
	$(BIN)/ruff check geo_service scripts tests bench

clean:
	rm -rf $(VENV) layers/build
