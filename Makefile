# EarnPay: `make serve` starts everything locally; `make test` runs the whole test suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install serve test lint fmt migrate bench bench-scale checkov clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install every dependency

serve: $(STAMP)  ## every function on http://127.0.0.1:8080 against the embedded PostgreSQL
	$(PY) main.py serve

migrate: $(STAMP)  ## apply pending migrations
	$(PY) main.py migrate

test: $(STAMP)  ## the whole test suite (starts its own PostgreSQL, Pub/Sub and GCS emulators)
	$(PY) -m pytest -q

lint: $(STAMP)  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)  ## the benchmarks (prints tables; see bench/README.md)
	$(PY) -m bench

checkov:  ## offline Terraform scan in its own virtual environment
	bash .ci/checkov.sh

clean:
	rm -rf $(VENV) .data
