"""``ENGINE: "vinyl.postgresql_backend"``: PostgreSQL through asyncpg."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLWrapper
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from django.db.utils import (
    DatabaseError,
    DataError,
    IntegrityError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)

from vinyl._backend.base import VinylCursor, VinylWrapperMixin
from vinyl.exceptions import django_error
from vinyl.postgresql_backend.features import DatabaseFeatures
from vinyl.postgresql_backend.operations import DatabaseOperations
from vinyl.translate.placeholders import format_to_numeric_dollar, pyformat_to_numeric_dollar


class PostgreSQLCursor(VinylCursor):
    """Django's ``format`` SQL as asyncpg's typed ``$n`` placeholders."""

    __slots__ = ()

    @staticmethod
    def prepare(sql: str, params: Any) -> tuple[str, Any]:
        if isinstance(params, Mapping):
            return pyformat_to_numeric_dollar(sql, params)
        params = tuple(params) if params is not None else ()
        return format_to_numeric_dollar(sql, params), params


class DatabaseWrapper(VinylWrapperMixin, PostgreSQLWrapper):
    # The exceptions the driver adapter raises, for Django's error mapping.
    Database = AsyncAdapt_asyncpg_dbapi(asyncpg)
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
    sqlalchemy_drivername = "postgresql+asyncpg"
    vinyl_cursor_class = PostgreSQLCursor

    # asyncpg's adapter switches to autocommit with a flag, no round trip.
    vinyl_autocommit_level = "AUTOCOMMIT"

    @staticmethod
    def vinyl_in_transaction(driver_connection: Any) -> bool:
        return driver_connection.is_in_transaction()

    @staticmethod
    async def vinyl_fetch(driver_connection: Any, sql: str, params: tuple) -> list:
        return await driver_connection.fetch(sql, *params)

    @staticmethod
    def vinyl_map_error(exc: BaseException) -> BaseException:
        return map_asyncpg_error(exc)

    def vinyl_engine_defaults(self) -> dict[str, Any]:
        # Django's from_db_value decodes JSON itself: hand it the text.
        return {"json_deserializer": _identity}

    def vinyl_connect_args(self) -> dict[str, Any]:
        # Django's PostgreSQL backend runs each session in UTC (or TIME_ZONE
        # without USE_TZ), which SQL functions such as Trunc rely on.
        return {"server_settings": {"TimeZone": self.timezone_name}}

    @staticmethod
    async def vinyl_load_facts(conn: Any) -> dict[str, Any]:
        version_num = (await conn.execute(text("SHOW server_version_num"))).scalar_one()
        number = int(version_num)
        return {
            "pg_version": number,
            "version": (number // 10000, number % 10000),
        }

    @property
    def pg_version(self) -> int:
        return self.vinyl_facts()["pg_version"]

    def ensure_timezone(self) -> bool:
        return False


# SQLSTATE class -> Django exception, for errors raised by asyncpg itself.
_SQLSTATE_CLASSES = {
    "08": OperationalError,
    "22": DataError,
    "23": IntegrityError,
    "40": OperationalError,
    "42": ProgrammingError,
    "53": OperationalError,
    "57": OperationalError,
    "0A": NotSupportedError,
}


def map_asyncpg_error(exc: BaseException) -> BaseException:
    """Return the Django exception for an asyncpg error (others unchanged)."""
    if isinstance(exc, asyncpg.PostgresError):
        kind = _SQLSTATE_CLASSES.get((exc.sqlstate or "")[:2], DatabaseError)
        return kind(str(exc))
    if isinstance(exc, (asyncpg.InterfaceError, OSError)):
        return OperationalError(str(exc))
    return django_error(exc)


def _identity(value: str) -> str:
    return value
