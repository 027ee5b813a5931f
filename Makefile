# The two set-up commands in README.md: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/cincer-service serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The longer fault/load/fuzz variants (pytest marker `long`, deselected by `make test`):
# 5,000 fuzz cases, 60 s of concurrent annotators.
.PHONY: test-long
test-long: $(STAMP)
	$(BIN)/python -m pytest -q -m long

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/cincer-service bench --json --quick

clean:
	rm -rf $(VENV) cincer-data .pytest_cache
