# Everything a fresh clone needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# Django 6.x needs Python >= 3.12.
# (pyenv's shims only answer for the active version: look in its versions.)
PYTHON_DJANGO6 ?= $(or $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13)),python3.12)
VENV_DJANGO6 ?= .venv-django6

.PHONY: venv test test-django6 test-all demo typecheck bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]' 'django>=5.2,<6'
	touch $@

$(VENV_DJANGO6)/.installed: pyproject.toml
	$(PYTHON_DJANGO6) -m venv $(VENV_DJANGO6)
	$(VENV_DJANGO6)/bin/python -m pip install -q --upgrade pip
	$(VENV_DJANGO6)/bin/python -m pip install -q -e '.[test]' 'django>=6.0,<7'
	touch $@

venv: $(VENV)/.installed

## The whole test suite (Django 5.2) on PostgreSQL and MariaDB/MySQL.
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## The same suite on Django 6.x (Python 3.12).
test-django6: $(VENV_DJANGO6)/.installed
	$(VENV_DJANGO6)/bin/python -m pytest $(PYTEST_ARGS)

test-all: test test-django6

## The demo on an SQLite file (no server). Another database:
##   make demo DEMO_ARGS="--database postgresql://postgres@127.0.0.1:5432/test"
demo: $(VENV)/.installed
	$(VENV)/bin/python -m demo $(DEMO_ARGS)

## mypy on the examples, the demo and tests/typing (also run by `make test`).
typecheck: $(VENV)/.installed
	$(VENV)/bin/python -m mypy

clean:
	rm -rf $(VENV) $(VENV_DJANGO6) *.egg-info
