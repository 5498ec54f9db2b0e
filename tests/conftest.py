"""Test set-up: real PostgreSQL and MariaDB/MySQL, a SQLite file; schema from Django.

- The session creates every test app's tables on each backend with
  ``migrate --run-syncdb`` on the backend's sync alias. A backend that cannot
  be reached fails the session: nothing is skipped.
- ``vinyl_db`` (used by every backend-facing test through ``backend``)
  points ``vinyl_default`` at one backend, and empties the tables and
  disposes vinyl's engines after the test.
- A test fails if its event loop logged an unhandled exception.
- One run at a time per database: a second run on the same databases stops
  at once (it would empty the first one's tables under it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections, transaction  # noqa: E402

import vinyl  # noqa: E402

# tests/cluster starts a three-node Galera cluster: `make test-cluster` runs it.
collect_ignore = [] if os.environ.get("VINYL_TEST_CLUSTER") else ["cluster"]

# vinyl's own plugin: the vinyl_transaction fixture (see vinyl/testing.py).
pytest_plugins = ["vinyl.testing", "pytester"]

BACKENDS: list[str] = settings.BACKENDS


def _test_models() -> list:
    return [
        model
        for model in apps.get_models(include_auto_created=True)
        if model.__module__.startswith("tests.") and not model._meta.proxy and model._meta.managed
    ]


def _drop_tables(alias: str) -> None:
    connection = connections[alias]
    existing = set(connection.introspection.table_names())
    tables = [m._meta.db_table for m in _test_models() if m._meta.db_table in existing]
    if not tables:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP TABLE %s CASCADE" % ", ".join(connection.ops.quote_name(t) for t in tables))
        elif connection.vendor == "sqlite":
            cursor.execute("PRAGMA foreign_keys = OFF")
            for table in tables:
                cursor.execute("DROP TABLE %s" % connection.ops.quote_name(table))
            cursor.execute("PRAGMA foreign_keys = ON")
        else:
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            for table in tables:
                cursor.execute("DROP TABLE %s" % connection.ops.quote_name(table))
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")


def _empty_tables(alias: str) -> None:
    connection = connections[alias]
    tables = [connection.ops.quote_name(m._meta.db_table) for m in _test_models()]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # DELETE beats TRUNCATE on small tables; Django's foreign keys
            # are deferrable, so order does not matter inside one transaction.
            with transaction.atomic(using=alias):
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
                for table in tables:
                    cursor.execute("DELETE FROM %s" % table)
        elif connection.vendor == "sqlite":
            cursor.execute("PRAGMA foreign_keys = OFF")
            for table in tables:
                cursor.execute("DELETE FROM %s" % table)
            cursor.execute("PRAGMA foreign_keys = ON")
        else:
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            for table in tables:
                cursor.execute("DELETE FROM %s" % table)
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")


@pytest.fixture(scope="session", autouse=True)
def schema() -> Iterator[None]:
    """Create the test tables on every backend under test, through Django."""
    for backend in BACKENDS:
        alias = settings.SYNC_ALIAS[backend]
        _drop_tables(alias)
        # The test apps have no migrations (syncdb) but point at contenttypes
        # (generic relations): on a new database its table must come first.
        call_command("migrate", "contenttypes", database=alias, verbosity=0)
        call_command("migrate", run_syncdb=True, database=alias, verbosity=0)
    yield
    for backend in BACKENDS:
        connections[settings.SYNC_ALIAS[backend]].close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend a test runs on: each backend-facing test runs on all."""
    return request.param


def _check_servers() -> None:
    """Stop the run at once, with one line, when a test server is down.

    A missing server fails the run (pytest's usage error), never skips tests.
    """
    for backend in BACKENDS:
        alias = settings.SYNC_ALIAS[backend]
        try:
            connections[alias].ensure_connection()
        except Exception as exc:
            reason = " ".join(str(exc).split())
            raise pytest.UsageError(
                f"the {backend} test server for alias {alias!r} cannot be reached "
                f"({reason}): start it, or set VINYL_TEST_BACKENDS to the others"
            ) from None


# Held for the life of the run (the kernel drops them when the process
# ends, however it ends): see _claim_databases.
_claims: list[object] = []


def _claim_databases() -> None:
    """Stop the run, with one line, when another run uses its databases.

    Each run empties and recreates the tables of its databases: two runs on
    the same ones fail each other's tests at random. One lock file per
    database (all three backends' names; SQLite's is a file) says which run
    has it.
    """
    import fcntl
    import re
    import tempfile

    for backend in BACKENDS:
        db = settings.DATABASES[settings.SYNC_ALIAS[backend]]
        where = db["NAME"] if backend == "sqlite" else f"{db['HOST']}:{db['PORT']}/{db['NAME']}"
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{backend}-{where}")
        path = os.path.join(tempfile.gettempdir(), f"vinyl-test-{os.getuid()}-{key}.lock")
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise pytest.UsageError(
                f"another test run (pid {holder}) is using the {backend} test database {where!r}: "
                f"wait for it to end, or give this run other databases (VINYL_TEST_PG_NAME, "
                f"VINYL_TEST_MYSQL_NAME, VINYL_TEST_SQLITE_NAME)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _claims.append(handle)


def pytest_configure(config: pytest.Config) -> None:
    _check_servers()
    _claim_databases()
    config.addinivalue_line(
        "markers",
        "backends(*names, reason): run this test only on the named backends "
        "(say in reason why the others cannot apply)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Apply ``@pytest.mark.backends("postgresql", "mysql", reason=...)``."""
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is None or "backend" not in metafunc.fixturenames:
        return
    if not marker.kwargs.get("reason"):
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: @pytest.mark.backends needs reason=... "
            f"saying why the other backends cannot run it"
        )
    unknown = set(marker.args) - set(settings.SYNC_ALIAS)
    if unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown backends {sorted(unknown)}")
    metafunc.parametrize("backend", [b for b in BACKENDS if b in marker.args])


def point_default_alias(backend: str) -> None:
    """Make ``vinyl_default`` the vinyl alias of ``backend``."""
    target = connections.settings[settings.VINYL_ALIAS[backend]]
    connections.settings["vinyl_default"] = dict(target)
    try:
        del connections["vinyl_default"]
    except AttributeError:
        pass


@pytest.fixture
def _emptied(backend: str) -> Iterator[str]:
    yield backend
    _empty_tables(settings.SYNC_ALIAS[backend])


@pytest.fixture
async def vinyl_db(_emptied: str) -> object:
    """Run the test on ``backend``; leave the database empty afterwards."""
    point_default_alias(_emptied)
    yield _emptied
    await vinyl.dispose()


@pytest.fixture
def vinyl_test_aliases(vinyl_db: str) -> list[str]:
    """Roll back ``vinyl_default`` only, once ``vinyl_db`` has pointed it."""
    return ["vinyl_default"]


@pytest.fixture(autouse=True)
def _fail_on_loop_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose event loop logged an unhandled exception."""
    errors: list[dict] = []
    original = asyncio.BaseEventLoop.call_exception_handler

    def record(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        errors.append(context)
        original(loop, context)

    asyncio.BaseEventLoop.call_exception_handler = record  # type: ignore[method-assign]
    try:
        yield
    finally:
        asyncio.BaseEventLoop.call_exception_handler = original  # type: ignore[method-assign]
    if errors:
        pytest.fail(f"the event loop logged unhandled exceptions: {errors!r}")
