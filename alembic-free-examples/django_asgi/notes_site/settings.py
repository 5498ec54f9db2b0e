"""Settings of an ordinary Django project, plus one vinyl alias.

``DATABASE_URL`` picks the database: ``sqlite:///path.sqlite3`` (default),
``postgresql://user:password@host:5432/name`` or ``mysql://...``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def database_settings(url: str) -> dict[str, dict[str, Any]]:
    """``default`` for Django (migrations, admin), ``vinyl_default`` for vinyl."""
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
        "vinyl_default": {"ENGINE": f"vinyl.{vendor}_backend", **common},
    }


DATABASES = database_settings(os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))

if DATABASES["default"]["ENGINE"].endswith("mysql"):
    # Django's MySQL backend (migrations) needs a MySQLdb module; PyMySQL provides one.
    import pymysql

    pymysql.install_as_MySQLdb()

INSTALLED_APPS = ["notes"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "notes_site.urls"
ASGI_APPLICATION = "notes_site.asgi.application"
ALLOWED_HOSTS = ["*"]
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
SECRET_KEY = "example-only"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
