# EarnPay: `make serve` starts everything locally; `make test` runs the whole test suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install serve test lint fmt migrate bench bench-scale checkov reset clean console browser

# The staff console (console/): npm ci from the committed lock file, then a Vite build into
# console/dist whenever a source is newer than the build.
CONSOLE_SRC := $(shell find console/src -type f 2>/dev/null) console/index.html console/vite.config.js
CONSOLE_DEPS := console/node_modules/.ci-stamp
CONSOLE_BUILD := console/dist/index.html
# The browser the console's end-to-end tests drive (Debian's Chromium; Playwright cannot download its own here)
CHROMIUM ?= /usr/bin/chromium

# The first install takes about a minute: pip shows what it collects and installs as it goes.
$(STAMP): requirements.txt requirements-dev.txt
	@echo "==> creating $(VENV) and installing the dependencies (about a minute the first time)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -r requirements-dev.txt
	@echo "==> installed into $(VENV)"
	touch $(STAMP)

$(CONSOLE_DEPS): console/package.json console/package-lock.json
	@echo "==> installing the console's npm packages (npm ci)"
	cd console && npm ci --no-audit --no-fund
	touch $(CONSOLE_DEPS)

$(CONSOLE_BUILD): $(CONSOLE_DEPS) $(CONSOLE_SRC)
	@echo "==> building the staff console (vite build)"
	cd console && npm run --silent build
	touch $(CONSOLE_BUILD)

console: $(CONSOLE_BUILD)  ## build the staff console when its sources changed

browser:  ## Debian's Chromium for the console's browser tests (installed when missing)
	@if [ ! -x "$(CHROMIUM)" ]; then \
		echo "==> installing Debian's chromium for the browser tests (about 2 minutes the first time)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

install: $(STAMP) console browser  ## create .venv, install every dependency, build the console

serve: $(STAMP) console  ## the local platform on http://127.0.0.1:8080 (SERVE_ARGS="--no-scheduler" etc.)
	$(PY) main.py serve $(SERVE_ARGS)

migrate: $(STAMP)  ## apply pending migrations
	$(PY) main.py migrate

test: $(STAMP) console browser  ## the whole test suite (starts its own PostgreSQL, Pub/Sub and GCS emulators)
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

reset:  ## drop the local data (database, stored objects, local key); keeps .venv and the benchmark database
	@if [ -f .data/pg/postmaster.pid ] && kill -0 "$$(head -n 1 .data/pg/postmaster.pid)" 2>/dev/null; then \
		echo "the local database is running: stop \`make serve\` (Ctrl-C) first"; exit 1; fi
	@mkdir -p .data && find .data -mindepth 1 -maxdepth 1 ! -name bench-pg -exec rm -rf {} +
	@echo "local data dropped (.venv kept); \`make serve\` starts afresh"

clean:  ## reset, and delete .venv too
	rm -rf $(VENV) .data console/node_modules console/dist
