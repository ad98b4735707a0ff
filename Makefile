# The two commands: `make run` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# The map libraries, from npm (served by the app itself: no third-party CDN).
ASSETS := node_modules/.package-lock.json
# Browser tests drive Debian's Chromium; installing it needs root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install install-test build layers lint clean browser postgis qgis

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when the project's dependencies change; at the versions of constraints.txt.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(VENV)/.installed $@

$(ASSETS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq chromium; }

# The tests start a throw-away PostgreSQL cluster with PostGIS (tests/postgis.py).
postgis:
	@ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql-15-postgis-3; }

# QGIS's own OGC API – Features provider, driven from the system's Python (tests/api/test_clients.py).
qgis:
	@/usr/bin/python3 -c "import qgis.core" 2>/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends python3-qgis qgis-providers; }

install: $(VENV)/.installed $(ASSETS)
install-test: $(VENV)/.installed-test $(ASSETS) browser postgis qgis

## run: install, build the layers from the bundled data if needed, serve on http://$(HOST):$(PORT)
run: install
	$(BIN)/riskmap build --if-needed
	$(BIN)/riskmap serve --host $(HOST) --port $(PORT)

# Test processes: a test file at a time each, with its own session build and database cluster
# (each takes up to 6 GB of memory at its peak); the longest files first (tests/conftest.py).
TEST_WORKERS ?= 2

## test: install with the test extras, lint (Python and the pages' scripts), run the whole suite
test: install-test
	$(BIN)/ruff check geo_service scripts tests bench
	npx --no-install eslint geo_service/maps/static
	$(BIN)/python -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile \
		--no-loadscope-reorder

build: install
	$(BIN)/riskmap build

layers: install
	$(BIN)/riskmap layers

lint: install-test
	$(BIN)/ruff check geo_service scripts tests bench
	npx --no-install eslint geo_service/maps/static

clean:
	rm -rf $(VENV) layers/build node_modules
