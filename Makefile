# Two commands do all the set-up on a fresh machine with Python >= 3.11:
#   make demo   — starts the service on SQLite with a seeded example programme
#   make test   — runs the whole test suite (SQLite and a throw-away PostgreSQL)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install demo test lint format clean bench bench-large

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jifen needs Python >= 3.11 (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(VENV)/bin/jifen demo $(ARGS)

test: install
	$(PY) -m pytest -n auto $(ARGS)

# Benchmarks (bench/run.py lists them and their sizes): `make bench` finishes in under
# 10 minutes on a 2-core machine; ARGS="earn" runs one, ARGS="--server-args '--workers 2'"
# changes the server. Results go to bench/results/; docs/benchmarks.md explains them.
bench: install
	$(PY) bench/run.py --size small $(ARGS)

bench-large: install
	$(PY) bench/run.py --size large $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy src

format: install
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) .jifen .pytest_cache .mypy_cache .ruff_cache
