from __future__ import annotations

import datetime
from typing import Any

import django

from vinyl.mysql_backend import _mysqldb

_mysqldb.import_django_mysql()

from django.db.backends.mysql.operations import DatabaseOperations as MySQLOperations  # noqa: E402


def _timedelta_to_time(value: Any, expression: Any, connection: Any) -> Any:
    # asyncmy returns TIME columns as timedelta (a TIME can exceed a day);
    # Django's TimeField holds a time of day, as mysqlclient's config gives.
    if isinstance(value, datetime.timedelta):
        seconds = int(value.total_seconds())
        return datetime.time(
            seconds // 3600 % 24, seconds // 60 % 60, seconds % 60, value.microseconds
        )
    return value


# ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back.
_DEADLOCK = 1213


class DatabaseOperations(MySQLOperations):
    compiler_module = "vinyl.mysql_backend.compiler"

    def vinyl_retryable_error(self, exc: BaseException) -> bool:
        """Did ``exc`` roll the transaction back, so that a rerun may succeed?"""
        return bool(exc.args) and exc.args[0] == _DEADLOCK

    def get_db_converters(self, expression: Any) -> list:
        converters = super().get_db_converters(expression)
        if expression.output_field.get_internal_type() == "TimeField":
            converters.append(_timedelta_to_time)
        return converters

    # asyncmy escapes bytes as _binary'...' itself: a second _binary prefix
    # from Django would be a syntax error. (Django 6.1 passes the compiler.)
    if django.VERSION >= (6, 1):

        def binary_placeholder_sql(self, value: Any, compiler: Any) -> tuple[str, tuple]:
            if hasattr(value, "as_sql"):
                return compiler.compile(value)
            return "%s", (value,)

    else:

        def binary_placeholder_sql(self, value: Any) -> str:  # type: ignore[misc]  # Django < 6.1's
            return "%s"
