"""Django settings of the benchmark process for one database.

``BENCH_DB`` ("postgresql" or "mysql") picks the server: ``default`` is
Django's own sync backend on it (psycopg; mysqlclient, or PyMySQL standing
in for it), ``vinyl_default`` is vinyl's backend on the same database.
"""

from __future__ import annotations

import os

from benchmarks.config import server

try:  # mysqlclient where it is installed, else PyMySQL standing in for it
    import MySQLdb  # noqa: F401
except ImportError:
    import pymysql

    pymysql.install_as_MySQLdb()

BENCH_DB = os.environ.get("BENCH_DB", "postgresql")
POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "10"))

_SYNC_ENGINE = {
    "postgresql": "django.db.backends.postgresql",
    "mysql": "django.db.backends.mysql",
}[BENCH_DB]
_VINYL_ENGINE = {
    "postgresql": "vinyl.postgresql_backend",
    "mysql": "vinyl.mysql_backend",
}[BENCH_DB]

DATABASES = {
    "default": {"ENGINE": _SYNC_ENGINE, "CONN_MAX_AGE": None, **server(BENCH_DB)},
    "vinyl_default": {
        "ENGINE": _VINYL_ENGINE,
        **server(BENCH_DB),
        "OPTIONS": {"pool": {"pool_size": POOL_SIZE, "max_overflow": 0}},
    },
}

INSTALLED_APPS = ["benchmarks.benchapp"]
USE_TZ = True
TIME_ZONE = "UTC"
SECRET_KEY = "vinyl-benchmarks"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DEBUG = False
