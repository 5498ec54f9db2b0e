"""``ENGINE: "vinyl.mysql_backend"``: MySQL and MariaDB through asyncmy."""

from __future__ import annotations

from typing import Any

import asyncmy
from sqlalchemy import text
from sqlalchemy.dialects.mysql.asyncmy import AsyncAdapt_asyncmy_dbapi

from vinyl.mysql_backend import _mysqldb

_mysqldb.install()

from django.db.backends.mysql.base import CursorWrapper as MySQLCursorWrapper  # noqa: E402
from django.db.backends.mysql.base import DatabaseWrapper as MySQLWrapper  # noqa: E402

from vinyl._backend.base import VinylWrapperMixin  # noqa: E402
from vinyl.mysql_backend.features import DatabaseFeatures  # noqa: E402
from vinyl.mysql_backend.operations import DatabaseOperations  # noqa: E402

_FACTS_SQL = """
SELECT VERSION(), @@sql_mode, @@default_storage_engine, @@sql_auto_is_null,
       @@lower_case_table_names,
       CONVERT_TZ('2001-01-01 01:00:00', 'UTC', 'UTC') IS NOT NULL
"""


class DatabaseWrapper(VinylWrapperMixin, MySQLWrapper):
    # The exceptions the driver adapter raises, for Django's error mapping.
    Database = AsyncAdapt_asyncmy_dbapi(asyncmy)
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
    sqlalchemy_drivername = "mysql+asyncmy"

    @staticmethod
    def vinyl_in_transaction(driver_connection: Any) -> bool:
        return driver_connection.get_transaction_status()

    @staticmethod
    async def vinyl_fetch(driver_connection: Any, sql: str, params: tuple) -> list:
        async with driver_connection.cursor() as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchall()

    def vinyl_engine_defaults(self) -> dict[str, Any]:
        options = self.settings_dict.get("OPTIONS") or {}
        # Django runs MySQL sessions in READ COMMITTED unless told otherwise.
        level = options.get("isolation_level") or "read committed"
        return {"isolation_level": level.upper()}

    def vinyl_engine_config(self):  # type: ignore[override]
        config = super().vinyl_engine_config()
        connect_args = config.engine_kwargs.setdefault("connect_args", {})
        connect_args.pop("isolation_level", None)
        connect_args.setdefault("charset", "utf8mb4")
        return config

    def create_cursor(self, name: str | None = None) -> Any:
        return MySQLCursorWrapper(super().create_cursor(name))

    @staticmethod
    async def vinyl_load_facts(conn: Any) -> dict[str, Any]:
        row = (await conn.execute(text(_FACTS_SQL))).one()
        return {
            "mysql_server_data": {
                "version": row[0],
                "sql_mode": row[1],
                "default_storage_engine": row[2],
                "sql_auto_is_null": bool(row[3]),
                "lower_case_table_names": bool(row[4]),
                "has_zoneinfo_database": bool(row[5]),
            }
        }

    @property
    def mysql_server_data(self) -> dict[str, Any]:
        return self.vinyl_facts()["mysql_server_data"]

    @property
    def mysql_server_info(self) -> str:
        return self.mysql_server_data["version"]

    @property
    def mysql_version(self) -> tuple[int, ...]:
        return MySQLWrapper.mysql_version.func(self)

    @property
    def mysql_is_mariadb(self) -> bool:
        return "mariadb" in self.mysql_server_info.lower()

    @property
    def sql_mode(self) -> set[str]:
        return MySQLWrapper.sql_mode.func(self)

    def get_database_version(self) -> tuple[int, ...]:
        return self.mysql_version
