"""Django settings for a Starlette app: Django is used for models and migrations.

``DATABASE_URL``: ``sqlite:///path.sqlite3`` (default), ``postgresql://...`` or ``mysql://...``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def database_settings(url: str) -> dict[str, dict[str, Any]]:
    """``default`` for Django's migrations, ``vinyl_default`` for the app."""
    parts = urlsplit(url)
    vendor = {"postgres": "postgresql", "mariadb": "mysql"}.get(parts.scheme, parts.scheme)
    if vendor == "sqlite":
        common: dict[str, Any] = {"NAME": unquote(parts.path[1:])}
    else:
        common = {
            "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    sync = {"sqlite": "sqlite3"}.get(vendor, vendor)
    return {
        "default": {"ENGINE": f"django.db.backends.{sync}", **common},
        "vinyl_default": {
            "ENGINE": f"vinyl.{vendor}_backend",
            **common,
            # SQLAlchemy pool arguments: this one pool serves vinyl and Core.
            "OPTIONS": {"pool": {"pool_size": 5, "max_overflow": 5}},
        },
    }


DATABASES = database_settings(os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'shop.sqlite3'}"))

if DATABASES["default"]["ENGINE"].endswith("mysql"):
    # Django's MySQL backend (migrations) needs a MySQLdb module; PyMySQL provides one.
    import pymysql

    pymysql.install_as_MySQLdb()
INSTALLED_APPS = ["shop"]
USE_TZ = True
TIME_ZONE = "UTC"
SECRET_KEY = "example-only"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
