# pbxfw — the two commands of the quick start are `make run` and `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export PBXFW_DB ?= $(CURDIR)/var/pbxfw.db

.PHONY: setup system venv run test lint unit bench clean

## setup: system packages (when root) and the virtual environment
setup: system venv

system:
	@bash scripts/install-system.sh

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

## run: set up, then start pbxfw (database in ./var, sandbox network namespace)
run: setup
	@bash scripts/run.sh

## test: set up, then lint, type-check and run every test
test: setup lint
	@bash scripts/pytest.sh

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

## bench: the benchmarks of docs/benchmarks.md
bench: setup
	@bash scripts/bench.sh

clean:
	rm -rf $(VENV) var build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
