"""A fresh Django project (``django-admin startproject``) using vinyl, as a
new user writes it: DEBUG on, an app with VinylManager models and an async
view, vinyl's alias beside ``default``. Run in subprocesses by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from contextlib import contextmanager
from typing import Iterator

from django.conf import settings
from django.db import connections

ROOT = Path(__file__).resolve().parents[2]

MODELS = '''
from django.db import models
from vinyl import VinylManager


class Author(models.Model):
    name = models.CharField(max_length=100, unique=True)
    objects = models.Manager()
    vinyl = VinylManager()


class Book(models.Model):
    title = models.CharField(max_length=100)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    objects = models.Manager()
    vinyl = VinylManager()
'''

VIEWS = '''
from django.http import JsonResponse

from shelf.models import Author


async def author(request, name):
    obj, created = await Author.vinyl.get_or_create(name=name)
    return JsonResponse({"id": obj.pk, "created": created, "debug": __import__("django.conf").conf.settings.DEBUG})
'''

URLS = '''
from django.urls import path

from shelf import views

urlpatterns = [path("author/<str:name>/", views.author)]
'''


def database_settings(backend: str, name: str, base_dir: Path) -> str:
    """The DATABASES of the project: ``default`` and ``vinyl_default``, one database."""
    if backend == "sqlite":
        return textwrap.dedent(
            """
            DATABASES = {
                "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"},
                "vinyl_default": {"ENGINE": "vinyl.sqlite_backend", "NAME": BASE_DIR / "db.sqlite3"},
            }
            REAL_DATABASE_NAME = str(BASE_DIR / "db.sqlite3")  # for the tests' checks
            """
        )
    server = settings.PG if backend == "postgresql" else settings.MYSQL
    sync_engine = "django.db.backends.postgresql" if backend == "postgresql" else "django.db.backends.mysql"
    common = {k: server[k] for k in ("USER", "PASSWORD", "HOST", "PORT")}
    common["NAME"] = name
    # The test database gets a name of this worktree's too (not test_<NAME>).
    test = {"NAME": test_name(name)}
    prelude = "import pymysql\npymysql.install_as_MySQLdb()\n" if backend == "mysql" else ""
    return prelude + textwrap.dedent(
        f"""
        DATABASES = {{
            "default": {{"ENGINE": {sync_engine!r}, **{common!r}, "TEST": {test!r}}},
            "vinyl_default": {{"ENGINE": "vinyl.{backend}_backend", **{common!r}}},
        }}
        REAL_DATABASE_NAME = {name!r}  # for the tests' checks
        """
    )


def project_name(suffix: str) -> str:
    """The project's "real" database: named after this worktree's test databases."""
    return f"{settings.PG['NAME']}_{suffix}"


def test_name(name: str) -> str:
    """The test database Django creates for the project's ``default``."""
    return f"{name}_t"


@contextmanager
def real_database(backend: str, name: str) -> Iterator[None]:
    """Create the project's real database (Django 6 checks it), drop it after."""
    if backend == "sqlite":
        yield
        return
    alias = settings.SYNC_ALIAS[backend]
    quoted = connections[alias].ops.quote_name(name)
    with connections[alias].cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
        cursor.execute(f"CREATE DATABASE {quoted}")
    try:
        yield
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(cwd)]))
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def check(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def startproject(tmp_path: Path, backend: str, db_suffix: str) -> Path:
    """``django-admin startproject mysite`` + ``startapp shelf``, wired for vinyl."""
    check(run(["-m", "django", "startproject", "mysite", str(tmp_path)], tmp_path))
    check(run(["manage.py", "startapp", "shelf"], tmp_path))
    (tmp_path / "shelf" / "models.py").write_text(MODELS)
    (tmp_path / "shelf" / "views.py").write_text(VIEWS)
    (tmp_path / "shelf" / "urls.py").write_text(URLS)
    site_settings = tmp_path / "mysite" / "settings.py"
    text = site_settings.read_text()
    assert "DEBUG = True" in text  # as startproject writes it
    text += '\nINSTALLED_APPS += ["shelf"]\n'
    text += database_settings(backend, project_name(db_suffix), tmp_path)
    site_settings.write_text(text)
    urls = tmp_path / "mysite" / "urls.py"
    urls.write_text(
        urls.read_text().replace("from django.urls import path", "from django.urls import include, path")
        .replace("path('admin/', admin.site.urls),", "path('admin/', admin.site.urls), path('', include('shelf.urls')),")
        .replace('path("admin/", admin.site.urls),', 'path("admin/", admin.site.urls), path("", include("shelf.urls")),')
    )
    check(run(["manage.py", "makemigrations", "shelf"], tmp_path))
    return tmp_path
