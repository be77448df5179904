# Tokenmill: `make run` starts the platform, `make test` runs the suite.
# Both install what is missing first (a virtual environment under .venv).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DEBUG ?= true

.PHONY: install run test lint bench browser clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt ".[train,dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the dashboard's browser test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium' for the browser test" >&2; exit 1; fi; }

run: install
	$(PY) manage.py runplatform

# Tests keep their broker, results and artifacts apart from `make run`'s; the demo
# model is deterministic, so they share its cache.
test: install browser
	TOKENMILL_VAR_DIR=$(CURDIR)/var/test MODEL_ROOT=$(CURDIR)/var/models $(PY) -m pytest $(PYTEST_ARGS)

# lint-imports needs platform/ on the path to find tokenmill, as manage.py and pytest set it.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=platform $(VENV)/bin/lint-imports --no-cache

bench: install
	$(PY) tests/bench/run.py

clean:
	rm -rf $(VENV) var
