# The developer's entry points. Each target bootstraps what it needs from nothing on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Python 3.13, the Datadog Agent's own: it runs the stand-in for the Agent's embedded Python and ddev.
PYTHON313 ?= $(shell for p in python3.13 $(wildcard /root/.pyenv/versions/3.13*/bin/python3.13) /usr/bin/python3.13 /usr/local/bin/python3.13; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo $$p; break; }; done)

# A stand-in for the Datadog Agent's embedded Python (3.13, with datadog-checks-base and its
# dependencies, nothing else): the wheel test installs the built check into it with --no-deps.
AGENT_VENV := .venv-agent
AGENT_STAMP := $(AGENT_VENV)/.installed

# Datadog's integration tool, in its own environment (it needs Python 3.13 and pins its own
# datadog-checks-dev). Pinned: its generators write files that are committed.
DDEV_VERSION := 20.1.0
DDEV_VENV := .venv-ddev
DDEV_STAMP := $(DDEV_VENV)/.installed

.PHONY: demo test validate bench soak generate wheel clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c 'import cilium_check, datadog_checks.cilium, datadog_checks.dev'
	touch $(STAMP)

$(AGENT_STAMP): pyproject.toml
	@if [ -z "$(PYTHON313)" ]; then echo "no Python 3.13 found: the wheel test will use $(PYTHON)"; mkdir -p $(AGENT_VENV); touch $(AGENT_STAMP); exit 0; fi
	test -x $(AGENT_VENV)/bin/python || $(PYTHON313) -m venv $(AGENT_VENV)
	$(AGENT_VENV)/bin/python -m pip install --quiet 'datadog-checks-base[deps]>=38.5.0' 2>&1 | grep -v '^WARNING: Location' || true
	$(AGENT_VENV)/bin/python -c 'import datadog_checks.base'
	touch $(AGENT_STAMP)

$(DDEV_STAMP):
	@if [ -z "$(PYTHON313)" ]; then echo "ddev needs Python 3.13, which this machine lacks" >&2; exit 1; fi
	test -x $(DDEV_VENV)/bin/python || $(PYTHON313) -m venv $(DDEV_VENV)
	$(DDEV_VENV)/bin/python -m pip install --quiet 'ddev==$(DDEV_VERSION)' 2>&1 | grep -v '^WARNING: Location' || true
	$(DDEV_VENV)/bin/ddev --version
	touch $(DDEV_STAMP)

demo: $(STAMP)
	$(BIN)/cilium-check demo $(DEMO_ARGS)

# The suite, Datadog's own validators included (tests/test_integration_tooling.py), on every core.
PYTEST_WORKERS ?= auto
test: $(STAMP) $(AGENT_STAMP) $(DDEV_STAMP)
	CILIUM_AGENT_PYTHON=$(if $(PYTHON313),$(CURDIR)/$(AGENT_VENV)/bin/python,) $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

validate: $(STAMP) $(DDEV_STAMP)
	$(BIN)/python -m cilium_dev.ddev validate

# Rewrite the derived files: metadata.csv, docs/metrics.md and the README blocks from the mapping
# table; conf.yaml.example, datadog_checks/cilium/data/ and config_models/ from the spec (ddev).
generate: $(STAMP) $(DDEV_STAMP)
	$(BIN)/python -m cilium_dev.generate
	$(BIN)/python -m cilium_dev.ddev sync

# The fast scrape path against stock OpenMetrics V2 on fixture payloads of 4k, 22k and 102k series.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.scrape $(BENCH_ARGS)

# Thousands of runs against a churning endpoint, complete, cut and failing scrapes: RSS and cache.
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

wheel: $(STAMP)
	$(BIN)/python -m build --wheel --no-isolation --outdir dist .

clean:
	rm -rf $(VENV) $(AGENT_VENV) $(DDEV_VENV) build dist .pytest_cache
