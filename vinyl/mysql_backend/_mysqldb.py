"""Let Django's MySQL backend import without mysqlclient.

Django's backend imports ``MySQLdb`` for its constants and converters only;
vinyl executes through asyncmy. PyMySQL provides the same module layout.
"""

from __future__ import annotations


def install() -> None:
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        import pymysql

        pymysql.install_as_MySQLdb()
