# Everything a fresh clone needs: `make demo`, `make test` and `make bench`.
PYTHON ?= python3
VENV ?= .venv
# Django 6.x needs Python >= 3.12.
# (pyenv's shims only answer for the active version: look in its versions.)
PYTHON_DJANGO6 ?= $(or $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13)),python3.12)
VENV_DJANGO6 ?= .venv-django6
VENV_BENCH ?= .venv-bench

.PHONY: venv test test-django6 test-all test-cluster demo typecheck docs bench bench-quick bench-profile clean

# The distribution is django-vinyl (import name vinyl); venvs made before the
# rename may still hold the old "vinyl" distribution of this tree: dropped.
# Extras: postgresql and mysql (the drivers), test, docs.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip uninstall -q -y vinyl 2>/dev/null || true
	$(VENV)/bin/python -m pip install -q -e '.[postgresql,mysql,test,docs]' 'django>=5.2,<6'
	touch $@

$(VENV_DJANGO6)/.installed: pyproject.toml
	$(PYTHON_DJANGO6) -m venv $(VENV_DJANGO6)
	$(VENV_DJANGO6)/bin/python -m pip install -q --upgrade pip
	$(VENV_DJANGO6)/bin/python -m pip uninstall -q -y vinyl 2>/dev/null || true
	$(VENV_DJANGO6)/bin/python -m pip install -q -e '.[postgresql,mysql,test,docs]' 'django>=6.0,<7'
	touch $@

# The benchmark peers (tortoise-orm) come from the `bench` extra. mysqlclient
# is built where libmariadb-dev (or libmysqlclient-dev) and pkg-config are
# installed; elsewhere Django's MySQL backend runs on PyMySQL.
$(VENV_BENCH)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV_BENCH)
	$(VENV_BENCH)/bin/python -m pip install -q --upgrade pip
	$(VENV_BENCH)/bin/python -m pip uninstall -q -y vinyl 2>/dev/null || true
	$(VENV_BENCH)/bin/python -m pip install -q -e '.[postgresql,mysql,bench]' 'django>=5.2,<6'
	$(VENV_BENCH)/bin/python -m pip install -q mysqlclient 2>/dev/null || \
		echo "mysqlclient could not be built: Django's MySQL backend will use PyMySQL"
	touch $@

venv: $(VENV)/.installed

## The whole test suite (Django 5.2) on PostgreSQL and MariaDB/MySQL.
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## The same suite on Django 6.x (Python 3.12).
test-django6: $(VENV_DJANGO6)/.installed
	$(VENV_DJANGO6)/bin/python -m pytest $(PYTEST_ARGS)

test-all: test test-django6

## Three MariaDB Galera nodes started on this machine (Debian's galera-4), and
## tests/cluster against them (~1 min).
test-cluster: $(VENV)/.installed
	VINYL_TEST_CLUSTER=1 $(VENV)/bin/python -m pytest tests/cluster $(PYTEST_ARGS)

## The demo on an SQLite file (no server). Another database:
##   make demo DEMO_ARGS="--database postgresql://postgres@127.0.0.1:5432/test"
demo: $(VENV)/.installed
	$(VENV)/bin/python -m demo $(DEMO_ARGS)

## mypy on the examples, the demo and tests/typing (also run by `make test`).
typecheck: $(VENV)/.installed
	$(VENV)/bin/python -m mypy

## The API reference, generated from the docstrings (pdoc): build/api/index.html.
docs: $(VENV)/.installed
	$(VENV)/bin/python docs/api/build.py build/api
## vinyl against the raw drivers, SQLAlchemy, Django and Tortoise, on
## PostgreSQL and MariaDB (~15 min on 2 cores); writes benchmarks/results/latest.md.
bench: $(VENV_BENCH)/.installed
	$(VENV_BENCH)/bin/python -m benchmarks $(BENCH_ARGS)

## The same, scaled down (~3 min).
bench-quick: $(VENV_BENCH)/.installed
	$(VENV_BENCH)/bin/python -m benchmarks --quick $(BENCH_ARGS)

## Where vinyl's time goes: cProfile and the per-query cost split, both databases.
bench-profile: $(VENV_BENCH)/.installed
	$(VENV_BENCH)/bin/python -m benchmarks.profile_vinyl $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENV_DJANGO6) $(VENV_BENCH) *.egg-info build
