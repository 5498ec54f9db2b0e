"""A pytest-django session of a fresh project using vinyl, on each backend,
with pytest-asyncio in auto mode and in strict mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from django.conf import settings

from tests.projects.scaffold import check, project_name, real_database, run, startproject

CONFTEST = '''
pytest_plugins = ["vinyl.testing"]
'''

TESTS = '''
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

import vinyl
from shelf.models import Author

{mark}


@pytest.mark.django_db
async def test_1_runs_on_the_test_database():
    test_name = str(connections.settings["default"]["NAME"])
    assert test_name != settings.REAL_DATABASE_NAME
    assert str(vinyl.get_engine().url.database) == test_name
    await Author.vinyl.create(name="ann")
    assert await Author.vinyl.count() == 1


@pytest.mark.django_db
async def test_2_sees_nothing_of_test_1(async_client):
    assert await Author.vinyl.count() == 0
    response = await async_client.get("/author/bob/")
    assert response.status_code == 200 and response.json()["created"]
    assert await Author.vinyl.filter(name="bob").count() == 1


@pytest.mark.django_db
async def test_3_and_nothing_of_test_2(vinyl_transaction):
    assert await Author.vinyl.count() == 0


@pytest.mark.django_db(transaction=True)
async def test_4_sync_and_vinyl_share_the_database():
    await sync_to_async(Author.objects.create)(name="both")
    assert await Author.vinyl.filter(name="both").count() == 1


@pytest.mark.django_db
def test_5_sync_tests_keep_working():
    assert Author.objects.count() == 0
'''


@pytest.mark.parametrize("mode", ["auto", "strict"])
@pytest.mark.parametrize("backend", settings.BACKENDS)
def test_pytest_django_session_runs_vinyl_on_the_test_database(backend: str, mode: str, tmp_path: Path) -> None:
    with real_database(backend, project_name(f"pytest_{mode}")):
        project = startproject(tmp_path, backend, f"pytest_{mode}")
        (project / "conftest.py").write_text(CONFTEST)
        mark = 'pytestmark = pytest.mark.asyncio' if mode == "strict" else ""
        (project / "test_shelf.py").write_text(TESTS.replace("{mark}", mark))
        (project / "pytest.ini").write_text(
            f"[pytest]\nDJANGO_SETTINGS_MODULE = mysite.settings\nasyncio_mode = {mode}\n"
            "asyncio_default_fixture_loop_scope = function\n"
        )
        output = check(run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "django", "test_shelf.py"], project))
    assert "5 passed" in output, output
    if backend == "sqlite":
        with sqlite3.connect(project / "db.sqlite3") as real:
            assert real.execute("SELECT name FROM sqlite_master WHERE name = 'shelf_author'").fetchall() == []
