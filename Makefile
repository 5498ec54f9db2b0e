# Everything a fresh clone needs: `make demo`, `make test` and `make bench`.
PYTHON ?= python3
VENV ?= .venv
# Django 6.x needs Python >= 3.12.
# (pyenv's shims only answer for the active version: look in its versions.)
PYTHON_DJANGO6 ?= $(or $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13)),python3.12)
VENV_DJANGO6 ?= .venv-django6
VENV_BENCH ?= .venv-bench
# The version matrix's other legs (make test-matrix).
PYTHON313 ?= $(or $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13)),python3.13)
VENV_LOWEST ?= .venv-lowest
VENV_PY313 ?= .venv-py313
# What the matrix legs run: a smoke subset of every layer, and the
# differential harness (Django as the oracle) where it exists.
MATRIX_TESTS ?= tests/test_queryset.py tests/test_plan_cache.py tests/test_errors.py tests/test_write_plans.py \
	tests/transactions/test_atomic.py tests/transactions/test_concurrency.py tests/transactions/test_level_deadlock.py \
	tests/engine/test_statement_lock.py tests/engine/test_cancellation.py \
	tests/engine/test_pool.py tests/relations/test_loading.py tests/packaging/test_matrix.py tests/packaging/test_compat.py \
	$(wildcard tests/differential)

# The optional C extension (setup.py): a venv's editable install compiles it
# in place, so a change of its source reinstalls (recompiles) it. (vinyl
# refuses a build older than its source and runs its Python builder.)
EXT_SOURCES := setup.py vinyl/translate/_rowbuild.c

.PHONY: test-faults-long fuzz servers-pgbouncer servers-galera
.PHONY: venv test test-django6 test-matrix test-all test-cluster demo typecheck docs bench bench-quick bench-profile clean

# The distribution is django-vinyl (import name vinyl); venvs made before the
# rename may still hold the old "vinyl" distribution of this tree: dropped.
# Extras: postgresql and mysql (the drivers), test, docs.
$(VENV)/.installed: pyproject.toml $(EXT_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip uninstall -q -y vinyl 2>/dev/null || true
	$(VENV)/bin/python -m pip install -q -e '.[postgresql,mysql,test,docs]' 'django>=5.2,<6'
	touch $@

$(VENV_DJANGO6)/.installed: pyproject.toml $(EXT_SOURCES)
	$(PYTHON_DJANGO6) -m venv $(VENV_DJANGO6)
	$(VENV_DJANGO6)/bin/python -m pip install -q --upgrade pip
	$(VENV_DJANGO6)/bin/python -m pip uninstall -q -y vinyl 2>/dev/null || true
	$(VENV_DJANGO6)/bin/python -m pip install -q -e '.[postgresql,mysql,test,docs]' 'django>=6.0,<7'
	touch $@

# The benchmark peers (tortoise-orm) come from the `bench` extra. mysqlclient
# is built where libmariadb-dev (or libmysqlclient-dev) and pkg-config are
# installed; elsewhere Django's MySQL backend runs on PyMySQL.
$(VENV_BENCH)/.installed: pyproject.toml $(EXT_SOURCES)
	$(PYTHON) -m venv $(VENV_BENCH)
	$(VENV_BENCH)/bin/python -m pip install -q --upgrade pip
	$(VENV_BENCH)/bin/python -m pip uninstall -q -y vinyl 2>/dev/null || true
	$(VENV_BENCH)/bin/python -m pip install -q -e '.[postgresql,mysql,bench]' 'django>=5.2,<6'
	$(VENV_BENCH)/bin/python -m pip install -q mysqlclient 2>/dev/null || \
		echo "mysqlclient could not be built: Django's MySQL backend will use PyMySQL"
	touch $@

# Lowest supported versions (pyproject's lower bounds) on Python 3.11.
$(VENV_LOWEST)/.installed: pyproject.toml .ci/lowest-versions.txt $(EXT_SOURCES)
	$(PYTHON) -m venv $(VENV_LOWEST)
	$(VENV_LOWEST)/bin/python -m pip install -q --upgrade pip
	$(VENV_LOWEST)/bin/python -m pip install -q -e '.[postgresql,mysql,test]' -r .ci/lowest-versions.txt
	touch $@

# Python 3.13 with Django 6.0 (the Django 6 leg of `make test-django6` takes 6.1).
$(VENV_PY313)/.installed: pyproject.toml $(EXT_SOURCES)
	$(PYTHON313) -m venv $(VENV_PY313)
	$(VENV_PY313)/bin/python -m pip install -q --upgrade pip
	$(VENV_PY313)/bin/python -m pip install -q -e '.[postgresql,mysql,test]' 'django>=6.0,<6.1'
	touch $@

venv: $(VENV)/.installed

# Servers the suites start themselves, from Debian's packages: pgbouncer
# (tests/faults) and Galera's provider (make test-cluster).
servers-pgbouncer:
	@command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || \
		{ apt-get update -q && apt-get install -y -q pgbouncer; }

servers-galera:
	@[ -e /usr/lib/galera/libgalera_smm.so ] || { apt-get update -q && apt-get install -y -q galera-4; }

## The whole test suite (Django 5.2) on PostgreSQL and MariaDB/MySQL.
test: $(VENV)/.installed servers-pgbouncer
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## The same suite on Django 6.x (Python 3.12).
test-django6: $(VENV_DJANGO6)/.installed servers-pgbouncer
	$(VENV_DJANGO6)/bin/python -m pytest $(PYTEST_ARGS)

## The version matrix's other legs: lowest supported versions (Python 3.11),
## and Python 3.13 with Django 6.0; each runs MATRIX_TESTS.
test-matrix: $(VENV_LOWEST)/.installed $(VENV_PY313)/.installed
	VINYL_MATRIX_LEG=lowest $(VENV_LOWEST)/bin/python -m pytest -q $(MATRIX_TESTS) $(PYTEST_ARGS)
	$(VENV_PY313)/bin/python -m pytest -q $(MATRIX_TESTS) $(PYTEST_ARGS)

test-all: test test-django6 test-matrix

## The fault-injection suite's long runs (issue 13): backend kills every 0.5 s
## for 60 s under 50 tasks, a restart, a 10,000-task cancellation storm x20,
## 60 s through pgbouncer; prints the figures (build/faults-long.log).
## (`make test` runs the short versions.)
test-faults-long: $(VENV)/.installed servers-pgbouncer
	mkdir -p build
	VINYL_FAULTS_LONG=1 $(VENV)/bin/python -m pytest tests/faults/test_scenarios.py -s -p no:cacheprovider $(PYTEST_ARGS) > build/faults-long.log 2>&1; \
	status=$$?; tail -5 build/faults-long.log; grep '^\[faults\]' build/faults-long.log; exit $$status

## The differential test long: random reads and writes compared with Django's
## sync ORM (tests/differential), e.g.
##   make fuzz SEED=7 READS=50000 WRITES=5000 BACKENDS=postgresql
## SEED defaults to the time; BACKENDS to all three. Mismatches print their reproduction.
SEED ?= $(shell date +%s)
READS ?= 5000
WRITES ?= 500
fuzz: $(VENV)/.installed
	VINYL_FUZZ_SEED=$(SEED) VINYL_FUZZ_READS=$(READS) VINYL_FUZZ_WRITES=$(WRITES) VINYL_FUZZ_VERBOSE=1 \
	$(if $(BACKENDS),VINYL_TEST_BACKENDS=$(BACKENDS)) \
	$(VENV)/bin/python -m pytest tests/differential/test_differential.py -p no:cacheprovider -q -s $(PYTEST_ARGS)

## Three MariaDB Galera nodes started on this machine (Debian's galera-4), and
## tests/cluster against them (~1 min).
test-cluster: $(VENV)/.installed servers-galera
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
## PostgreSQL and MariaDB (~15 min on 2 cores); writes benchmarks/results/latest.md;
## then what building a plan costs next to Django's compile (results/plan_cost.md).
## A second pass runs the async systems on uvloop (results/latest-uvloop.md).
# uvloop's pass: the async systems (the loop does not change sync Django's
# thread); no cold start there (see benchmarks/README.md).
BENCH_UVLOOP_ARGS ?= --systems raw,vinyl,sa_core,sa_orm,django_async,tortoise
bench: $(VENV_BENCH)/.installed
	$(VENV_BENCH)/bin/python -m benchmarks $(BENCH_ARGS)
	$(VENV_BENCH)/bin/python -m benchmarks --loop uvloop $(BENCH_UVLOOP_ARGS) $(BENCH_ARGS)
	$(VENV_BENCH)/bin/python -m benchmarks.plan_cost

## The same, scaled down (~4 min); uvloop's pass writes results/quick-uvloop.md.
bench-quick: $(VENV_BENCH)/.installed
	$(VENV_BENCH)/bin/python -m benchmarks --quick $(BENCH_ARGS)
	$(VENV_BENCH)/bin/python -m benchmarks --quick --loop uvloop $(BENCH_UVLOOP_ARGS) $(BENCH_ARGS)

## Where vinyl's time goes: cProfile and the per-query cost split, both databases.
bench-profile: $(VENV_BENCH)/.installed
	$(VENV_BENCH)/bin/python -m benchmarks.profile_vinyl $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENV_DJANGO6) $(VENV_BENCH) $(VENV_LOWEST) $(VENV_PY313) *.egg-info build vinyl/translate/*.so
