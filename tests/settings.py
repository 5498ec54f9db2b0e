"""Django settings for vinyl's test suite.

Every backend-facing test runs once per backend in ``VINYL_TEST_BACKENDS``
(default: postgresql, mysql and sqlite). The ``vinyl_db`` fixture points the
``vinyl_default`` alias at the backend under test.
"""

from __future__ import annotations

import os
import tempfile

import pymysql

pymysql.install_as_MySQLdb()

PG = {
    "NAME": os.environ.get("VINYL_TEST_PG_NAME", "test"),
    "USER": os.environ.get("VINYL_TEST_PG_USER", "postgres"),
    "PASSWORD": os.environ.get("VINYL_TEST_PG_PASSWORD", ""),
    "HOST": os.environ.get("VINYL_TEST_PG_HOST", "127.0.0.1"),
    "PORT": os.environ.get("VINYL_TEST_PG_PORT", "5432"),
}
MYSQL = {
    "NAME": os.environ.get("VINYL_TEST_MYSQL_NAME", "test"),
    "USER": os.environ.get("VINYL_TEST_MYSQL_USER", "root"),
    "PASSWORD": os.environ.get("VINYL_TEST_MYSQL_PASSWORD", ""),
    "HOST": os.environ.get("VINYL_TEST_MYSQL_HOST", "127.0.0.1"),
    "PORT": os.environ.get("VINYL_TEST_MYSQL_PORT", "3306"),
}

# A file (not :memory:): vinyl's pooled connections and the sync alias that
# creates the schema must all see one database.
SQLITE = {
    "NAME": os.environ.get(
        "VINYL_TEST_SQLITE_NAME",
        os.path.join(tempfile.gettempdir(), f"vinyl-test-{os.getuid()}-{PG['NAME']}.sqlite3"),
    ),
    # Readers and a writer at once, as on a server (WAL); a writer waits up
    # to 20 s for another's lock instead of failing at once.
    "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL", "timeout": 20},
}

BACKENDS = [
    b.strip()
    for b in os.environ.get("VINYL_TEST_BACKENDS", "postgresql,mysql,sqlite").split(",")
    if b.strip()
]

# Sync aliases create the schema (Django migrations); vinyl aliases query it.
SYNC_ALIAS = {"postgresql": "sync_postgresql", "mysql": "sync_mysql", "sqlite": "sync_sqlite"}
VINYL_ALIAS = {"postgresql": "vinyl_postgresql", "mysql": "vinyl_mysql", "sqlite": "vinyl_sqlite"}

DATABASES = {
    "default": {"ENGINE": "django.db.backends.postgresql", **PG},
    "sync_postgresql": {"ENGINE": "django.db.backends.postgresql", **PG},
    "sync_mysql": {"ENGINE": "django.db.backends.mysql", **MYSQL},
    "vinyl_postgresql": {"ENGINE": "vinyl.postgresql_backend", **PG},
    "vinyl_mysql": {"ENGINE": "vinyl.mysql_backend", **MYSQL},
    "sync_sqlite": {"ENGINE": "django.db.backends.sqlite3", **SQLITE},
    "vinyl_sqlite": {"ENGINE": "vinyl.sqlite_backend", **SQLITE},
    # Re-pointed per test by the vinyl_db fixture.
    "vinyl_default": {"ENGINE": "vinyl.postgresql_backend", **PG},
}

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "tests.testapp",
    "tests.relapp",
    "tests.qsapp",
    "tests.nativeapp",
    "tests.diffapp",
    "tests.scaleapp",
]

USE_TZ = True
TIME_ZONE = "UTC"
SECRET_KEY = "vinyl-tests"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
