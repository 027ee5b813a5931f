# The two set-up commands in README.md: `make run` and `make test`.
#   make run [HOST=127.0.0.1] [PORT=8000]   installs what serving needs, then serves
#   make test                               adds the test and bench extras, then tests
# `make install` / `make install-test` only install (each is a stamp in .venv, redone
# when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVE_STAMP := $(VENV)/.installed-serve
TEST_STAMP := $(VENV)/.installed-test
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench clean install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Serving: the package and its dependencies, no extras.
$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# Tests, lint and benchmarks: the serving install plus the test and bench extras.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@ $(SERVE_STAMP)

install: $(SERVE_STAMP)

install-test: $(TEST_STAMP)

run: $(SERVE_STAMP)
	$(BIN)/cincer-service serve --host '$(HOST)' --port '$(PORT)'

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The longer fault/load/fuzz variants (pytest marker `long`, deselected by `make test`):
# 5,000 fuzz cases, 60 s of concurrent annotators.
.PHONY: test-long
test-long: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m long

# Against a real Label Studio (1.23.x, in its own virtualenv: its Django stack never enters
# .venv), started on loopback by tests/interop; also run by .ci/run after make test.
LS_VENV := .venv-label-studio
LS_STAMP := $(LS_VENV)/.installed-label-studio
.PHONY: test-interop
$(LS_STAMP):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet 'label-studio>=1.23,<1.24'
	touch $@

test-interop: $(TEST_STAMP) $(LS_STAMP)
	CINCER_INTEROP=1 LABEL_STUDIO_VENV=$(LS_VENV) $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/interop

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

bench: $(TEST_STAMP)
	$(BIN)/cincer-service bench --json --quick

clean:
	rm -rf $(VENV) cincer-data .pytest_cache
