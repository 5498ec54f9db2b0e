"""Django settings of the demo: one database, used by Django and by vinyl.

``VINYL_DEMO_DATABASE`` is a URL: ``sqlite:///path/demo.sqlite3`` (the
default, no server needed), ``postgresql://user:pass@host:5432/name`` or
``mysql://user:pass@host:3306/name`` (MariaDB too).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_URL = "sqlite:///" + os.path.join(tempfile.gettempdir(), "vinyl-demo.sqlite3")

# scheme -> (Django's sync backend, vinyl's async backend)
_ENGINES = {
    "sqlite": ("django.db.backends.sqlite3", "vinyl.sqlite_backend"),
    "postgresql": ("django.db.backends.postgresql", "vinyl.postgresql_backend"),
    "postgres": ("django.db.backends.postgresql", "vinyl.postgresql_backend"),
    "mysql": ("django.db.backends.mysql", "vinyl.mysql_backend"),
    "mariadb": ("django.db.backends.mysql", "vinyl.mysql_backend"),
}


def databases(url: str) -> dict[str, dict[str, Any]]:
    """Return DATABASES for ``url``: ``default`` (sync) and ``vinyl_default``."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme not in _ENGINES:
        raise ValueError(
            f"unsupported database URL {url!r}: use sqlite:///path, "
            f"postgresql://user@host/name or mysql://user@host/name"
        )
    sync_engine, vinyl_engine = _ENGINES[scheme]
    if scheme == "sqlite":
        # As SQLAlchemy reads it: sqlite:///relative.db, sqlite:////absolute.db
        common: dict[str, Any] = {"NAME": unquote(parts.path[1:])}
        common["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL"}
    else:
        common = {
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    return {
        "default": {"ENGINE": sync_engine, **common},
        "vinyl_default": {"ENGINE": vinyl_engine, **common},
    }


DATABASE_URL = os.environ.get("VINYL_DEMO_DATABASE") or DEFAULT_URL
DATABASES = databases(DATABASE_URL)

if DATABASES["default"]["ENGINE"].endswith("mysql"):
    # Django's MySQL backend needs a MySQLdb module; PyMySQL provides one.
    import pymysql

    pymysql.install_as_MySQLdb()

INSTALLED_APPS = ["demo.library"]
USE_TZ = True
TIME_ZONE = "UTC"
SECRET_KEY = "vinyl-demo"
