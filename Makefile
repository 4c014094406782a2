# The README's commands. `make run` executes every chapter into reports/; `make test` proves everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
REDIS_PORT ?= 6379
# root installs directly; a user installs through sudo; anyone else gets a clear message (see system-deps).
SUDO   := $(shell [ "$$(id -u)" = 0 ] || { command -v sudo >/dev/null && echo sudo || echo __no_sudo__; })
export PYTHONHASHSEED := 0

.PHONY: help setup system-deps services run test unit nbval lab bench lint clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[dev]"
	@touch $@

setup: $(VENV)/.installed  ## create .venv and install the cookbook with its test tools

system-deps:  ## install redis-server and promtool (Debian/Ubuntu) if missing
	@if ! command -v redis-server >/dev/null || ! command -v promtool >/dev/null; then \
	  command -v apt-get >/dev/null || { echo "need redis-server and promtool: install them with your package manager" >&2; exit 1; }; \
	  [ "$(SUDO)" != __no_sudo__ ] || { echo "need redis-server and promtool: run 'make system-deps' as root or install sudo" >&2; exit 1; }; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends redis-server prometheus >/dev/null; \
	fi
	@command -v redis-server >/dev/null && command -v promtool >/dev/null

services: system-deps  ## start redis-server on 127.0.0.1 (port REDIS_PORT, default 6379) unless one answers
	@if ! redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
	  redis-server --bind 127.0.0.1 --port $(REDIS_PORT) --save '' --appendonly no --daemonize yes >/dev/null; \
	  for i in $$(seq 50); do redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	fi
	@redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null

run: setup services  ## execute every chapter into reports/ (offline) and write reports/index.md
	$(PY) -m agentops run --output reports

test: setup services  ## unit tests + strict nbval of every chapter (what CI runs)
	@$(PY) -m pytest -p no:cacheprovider tests notebooks --nbval; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): nothing to check" >&2; exit 0; fi; exit $$rc

lab:  ## install and open JupyterLab
	$(PIP) install -e ".[dev,lab]"
	$(VENV)/bin/jupyter lab notebooks/

bench: setup services  ## run every benchmark (prints ratios against baselines measured in the same run)
	$(PIP) install -e ".[dev,bench]"
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: setup  ## ruff
	$(VENV)/bin/ruff check agentops tests benchmarks

clean:  ## remove generated reports and caches
	rm -rf reports .pytest_cache .ruff_cache .hypothesis
