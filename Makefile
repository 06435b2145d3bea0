# The developer's entry points. Each target bootstraps what it needs from nothing on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# A stand-in for the Datadog Agent's embedded Python (3.13, with datadog-checks-base and its
# dependencies, nothing else): the wheel test installs the built check into it with --no-deps.
AGENT_PYTHON ?= $(shell for p in python3.13 $(wildcard /root/.pyenv/versions/3.13*/bin/python3.13) /usr/bin/python3.13; do \
	$$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
AGENT_VENV := .venv-agent
AGENT_STAMP := $(AGENT_VENV)/.installed

.PHONY: demo test bench generate wheel clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c 'import cilium_check, datadog_checks.dev'
	touch $(STAMP)

$(AGENT_STAMP): pyproject.toml
	@if [ -z "$(AGENT_PYTHON)" ]; then echo "no Python 3.13 found: the wheel test will use $(PYTHON)"; mkdir -p $(AGENT_VENV); touch $(AGENT_STAMP); exit 0; fi
	test -x $(AGENT_VENV)/bin/python || $(AGENT_PYTHON) -m venv $(AGENT_VENV)
	$(AGENT_VENV)/bin/python -m pip install --quiet 'datadog-checks-base[deps]>=38.5.0' 2>&1 | grep -v '^WARNING: Location' || true
	$(AGENT_VENV)/bin/python -c 'import datadog_checks.base'
	touch $(AGENT_STAMP)

demo: $(STAMP)
	$(BIN)/cilium-check demo

test: $(STAMP) $(AGENT_STAMP)
	CILIUM_AGENT_PYTHON=$(if $(AGENT_PYTHON),$(CURDIR)/$(AGENT_VENV)/bin/python,) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Rewrite the files derived from the mapping table (metadata.csv, docs/metrics.md, README blocks).
generate: $(STAMP)
	$(BIN)/python -m cilium_check.generate

# The fast scrape path against stock OpenMetrics V2 on fixture payloads of 4k, 22k and 102k series.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.scrape

wheel: $(STAMP)
	$(BIN)/python -m build --wheel --no-isolation --outdir dist .

clean:
	rm -rf $(VENV) $(AGENT_VENV) build dist .pytest_cache
