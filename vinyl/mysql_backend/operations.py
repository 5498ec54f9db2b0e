from __future__ import annotations

import datetime
import zoneinfo
from typing import Any, Callable

import django
from django.conf import settings

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


#: Zones whose ``utcoffset`` is never None: a datetime of one is aware.
_ZONES = frozenset((datetime.timezone, zoneinfo.ZoneInfo))
#: "00" to "99".
_TWO_DIGITS = tuple(f"{i:02d}" for i in range(100))


def _datetime_text(value: datetime.datetime) -> str:
    """``str(value)`` of a datetime, its zone left out: the wall time, as
    ``isoformat(" ")`` writes a naive one (microseconds where non-zero)."""
    two = _TWO_DIGITS
    year = value.year
    text = (
        f"{year if year >= 1000 else f'{year:04d}'}-{two[value.month]}-{two[value.day]} "
        f"{two[value.hour]}:{two[value.minute]}:{two[value.second]}"
    )
    microsecond = value.microsecond
    return f"{text}.{microsecond:06d}" if microsecond else text


# ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back.
_DEADLOCK = 1213


class DatabaseOperations(MySQLOperations):
    compiler_module = "vinyl.mysql_backend.compiler"

    def vinyl_retryable_error(self, exc: BaseException) -> bool:
        """Did ``exc`` roll the transaction back, so that a rerun may succeed?"""
        return bool(exc.args) and exc.args[0] == _DEADLOCK

    def vinyl_datetime_adapter(self) -> Callable[[Any], Any]:
        """The adapter of an aware datetime a plan sends (see
        vinyl.translate.plans.value_adapters): Django's
        ``adapt_datetimefield_value``, whose text is the value made naive in
        the connection's zone. For an aware datetime of a fixed offset or a
        ``ZoneInfo`` under ``USE_TZ`` it writes the same text itself: about
        8,500 instructions instead of 28,000 (no ``hasattr`` miss, no
        settings read, ``replace(tzinfo=None)``'s keyword parsing, or
        ``sprintf``). Chosen when a plan is made: plans are dropped when
        ``USE_TZ`` or ``TIME_ZONE`` change, as Django drops
        ``connection.timezone``.
        """
        adapt = self.adapt_datetimefield_value
        if not settings.USE_TZ or type(self).adapt_datetimefield_value is not MySQLOperations.adapt_datetimefield_value:
            return adapt
        connection = self.connection
        zones, datetime_type, text = _ZONES, datetime.datetime, _datetime_text

        def adapt_aware(value: Any) -> Any:
            if type(value) is datetime_type and type(value.tzinfo) in zones:
                zone = connection.timezone
                if zone is not None:
                    # make_naive(value, zone): the wall time in the zone.
                    return text(value.astimezone(zone))
            return adapt(value)

        return adapt_aware

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
