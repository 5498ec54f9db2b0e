"""Import Django's MySQL backend modules without mysqlclient, and without
installing ``MySQLdb`` for the whole process.

Django's MySQL backend imports ``MySQLdb`` (mysqlclient) for its constants,
converters and exception classes; vinyl executes through asyncmy and needs
no sync driver. Where mysqlclient is installed it is used as is. Elsewhere
PyMySQL, which has the same module layout, stands in for ``MySQLdb`` only
while Django's backend modules are imported: afterwards ``import MySQLdb``
fails again as it did before, so other code of the process (a sync alias on
``django.db.backends.mysql``) still needs mysqlclient or its own
``pymysql.install_as_MySQLdb()``.
"""

from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager
from typing import Iterator

# MySQLdb's modules that Django's backend imports, and PyMySQL's equivalents.
_STAND_INS = {
    "MySQLdb": "pymysql",
    "MySQLdb.constants": "pymysql.constants",
    "MySQLdb.constants.CLIENT": "pymysql.constants.CLIENT",
    "MySQLdb.constants.FIELD_TYPE": "pymysql.constants.FIELD_TYPE",
    "MySQLdb.converters": "pymysql.converters",
}


def _has_mysqlclient() -> bool:
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def _pymysql_as_mysqldb() -> Iterator[None]:
    saved = {name: sys.modules.get(name) for name in _STAND_INS}
    for name, stand_in in _STAND_INS.items():
        sys.modules[name] = importlib.import_module(stand_in)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def import_django_mysql() -> None:
    """Import ``django.db.backends.mysql`` (base, features, operations...)."""
    if "django.db.backends.mysql.base" in sys.modules or _has_mysqlclient():
        importlib.import_module("django.db.backends.mysql.base")
        return
    with _pymysql_as_mysqldb():
        importlib.import_module("django.db.backends.mysql.base")
