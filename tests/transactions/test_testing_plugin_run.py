"""vinyl.testing enabled the way a user does, in a pytest run of its own."""

from __future__ import annotations

from pathlib import Path


import tests

CONFTEST = '''
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django
django.setup()
from django.db import connections
import pytest
import vinyl

pytest_plugins = ["vinyl.testing"]

connections.settings["vinyl_default"] = dict(connections.settings["vinyl_{backend}"])


@pytest.fixture(autouse=True)
async def _close_pools():
    yield
    await vinyl.dispose()
'''

TESTS = '''
import vinyl
from tests.testapp.models import Author


async def test_1_writes_on_every_alias(vinyl_transaction):
    assert set(vinyl_transaction) == {"vinyl_default", "vinyl_postgresql", "vinyl_mysql", "vinyl_sqlite"}
    await Author.vinyl.create(name="plugin")
    await Author.vinyl.using("vinyl_postgresql").create(name="plugin")
    await Author.vinyl.using("vinyl_mysql").create(name="plugin")
    if "{backend}" != "sqlite":
        # Two write transactions on one SQLite file would lock each other.
        await Author.vinyl.using("vinyl_sqlite").create(name="plugin")
    assert await Author.vinyl.count() == 1


async def test_2_sees_nothing_of_the_first():
    for alias in ("vinyl_default", "vinyl_postgresql", "vinyl_mysql", "vinyl_sqlite"):
        assert await Author.vinyl.using(alias).count() == 0
'''


def test_the_plugin_rolls_back_every_alias_between_tests(pytester, backend, monkeypatch):
    project = str(Path(tests.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", project)
    pytester.makeconftest(CONFTEST.replace("{backend}", backend))
    pytester.makepyfile(test_user=TESTS.replace("{backend}", backend))
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


STRICT_TESTS = """
import pytest
from tests.testapp.models import Author


@pytest.mark.asyncio
async def test_1_writes(vinyl_transaction):
    await Author.vinyl.create(name="strict")
    assert await Author.vinyl.count() == 1


@pytest.mark.asyncio
async def test_2_sees_nothing(vinyl_transaction):
    assert await Author.vinyl.count() == 0
"""


def test_the_plugin_works_in_pytest_asyncio_strict_mode(pytester, backend, monkeypatch):
    project = str(Path(tests.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", project)
    conftest = CONFTEST.replace("{backend}", backend).replace(
        "@pytest.fixture(autouse=True)", "@pytest_asyncio.fixture(autouse=True)"
    ).replace("import pytest\n", "import pytest\nimport pytest_asyncio\n")
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_user=STRICT_TESTS)
    pytester.makeini("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_plugin_says_it_needs_pytest_asyncio(pytester, monkeypatch):
    project = str(Path(tests.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", project)
    pytester.makeconftest('pytest_plugins = ["vinyl.testing"]\n')
    pytester.makepyfile(test_user="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-p", "no:asyncio")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*vinyl.testing needs pytest-asyncio*pip install pytest-asyncio*"])
