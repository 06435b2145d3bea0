# The developer's entry points. Each target bootstraps .venv from nothing on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench generate wheel clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cilium-check demo

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Rewrite the files derived from the mapping table (metadata.csv, the README's metric list).
generate: $(STAMP)
	$(BIN)/python -m cilium_check.generate

clean:
	rm -rf $(VENV) build dist .pytest_cache

wheel: $(STAMP)
	$(BIN)/python -m build --wheel --no-isolation --outdir dist .
