"""Django settings for the streaming script. ``DATABASE_URL`` picks the database."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def database_settings(url: str) -> dict[str, dict[str, Any]]:
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


DATABASES = database_settings(os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'events.sqlite3'}"))

if DATABASES["default"]["ENGINE"].endswith("mysql"):
    # Django's MySQL backend (migrations) needs a MySQLdb module; PyMySQL provides one.
    import pymysql

    pymysql.install_as_MySQLdb()
INSTALLED_APPS = ["events"]
USE_TZ = True
TIME_ZONE = "UTC"
SECRET_KEY = "example-only"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
