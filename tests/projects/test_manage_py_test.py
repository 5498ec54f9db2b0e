"""``manage.py test`` of a fresh project using vinyl, on each backend.

vinyl's alias follows the test database Django creates for ``default``
(never the real one), async tests of ``vinyl.test.TestCase`` are rolled
back, ``databases = "__all__"`` works, and the test database is dropped at
the end (vinyl's pools are closed first).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from django.conf import settings

from tests.projects.scaffold import check, project_name, real_database, run, startproject

TESTS = '''
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.test import TestCase as DjangoTestCase, TransactionTestCase

import vinyl
from vinyl.test import TestCase
from shelf.models import Author, Book


def vinyl_database():
    return str(vinyl.get_engine().url.database)


class Isolated(TestCase):
    async def test_1_runs_on_the_test_database(self):
        test_name = str(connections.settings["default"]["NAME"])
        self.assertNotEqual(test_name, settings.REAL_DATABASE_NAME)
        self.assertEqual(vinyl_database(), test_name)
        self.assertEqual(await vinyl.fetch("SELECT 1"), [(1,)])

    async def test_2_writes(self):
        ann = await Author.vinyl.create(name="ann")
        await Book.vinyl.create(title="one", author=ann)
        self.assertEqual(await Author.vinyl.count(), 1)

    async def test_3_sees_nothing_of_test_2(self):
        self.assertEqual(await Author.vinyl.count(), 0)

    async def test_4_async_view_with_get_or_create(self):
        response = await self.async_client.get("/author/bob/")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertTrue(response.json()["created"])
        response = await self.async_client.get("/author/bob/")
        self.assertFalse(response.json()["created"])
        self.assertEqual(await Author.vinyl.filter(name="bob").count(), 1)


class AllDatabases(DjangoTestCase):
    databases = "__all__"

    def test_sync_orm(self):
        self.assertEqual(Author.objects.count(), 0)

    async def test_vinyl_on_a_plain_test_case(self):
        await Author.vinyl.create(name="plain")
        self.assertEqual(await Author.vinyl.filter(name="plain").count(), 1)
        await Author.vinyl.filter(name="plain").delete()


class Committed(TransactionTestCase):
    async def test_sync_and_vinyl_share_the_test_database(self):
        await sync_to_async(Author.objects.create)(name="both")
        self.assertEqual(await Author.vinyl.filter(name="both").count(), 1)
'''


@pytest.mark.parametrize("backend", settings.BACKENDS)
def test_manage_py_test_runs_vinyl_on_the_test_database(backend: str, tmp_path: Path) -> None:
    with real_database(backend, project_name("proj")):
        project = startproject(tmp_path, backend, "proj")
        (project / "shelf" / "tests.py").write_text(TESTS)
        output = check(run(["manage.py", "test", "--noinput", "-v", "2", "--debug-mode", "shelf"], project))
    assert "Ran 7 tests" in output and "OK" in output, output
    assert "Skipping setup of unused database(s): vinyl_default" not in output
    if backend == "sqlite":
        # The real database was never migrated: every query ran on the test one.
        with sqlite3.connect(project / "db.sqlite3") as real:
            assert real.execute("SELECT name FROM sqlite_master WHERE name = 'shelf_author'").fetchall() == []
        assert not (project / "test_db.sqlite3").exists(), output  # destroyed
