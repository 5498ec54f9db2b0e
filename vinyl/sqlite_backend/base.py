"""``ENGINE: "vinyl.sqlite_backend"``: SQLite through aiosqlite.

Each aiosqlite connection is a ``sqlite3`` connection running on a thread of
its own. vinyl opens it the way Django's sqlite3 backend does: Django's SQL
functions registered, foreign keys on, the same type converters. SQLAlchemy
emits ``BEGIN`` itself (the sqlite3 driver's own transaction handling is
turned off), so transactions, savepoints and DDL behave as on a server.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

import aiosqlite
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio.engine import AsyncEngine

from vinyl._backend.base import VinylCursor, VinylWrapperMixin
from vinyl._compat import aiosqlite_dbapi, register_sqlite_functions as register_functions
from vinyl.engine.engines import EngineConfig
from vinyl.sqlite_backend.features import DatabaseFeatures
from vinyl.sqlite_backend.operations import DatabaseOperations

# OPTIONS that Django's sqlite3 backend reads itself (not sqlite3.connect()).
_DJANGO_OPTIONS = ("init_command", "transaction_mode")


class SQLiteCursor(VinylCursor):
    """Django's ``format`` / ``pyformat`` SQL as sqlite3's ``qmark`` / ``named``."""

    __slots__ = ()

    @staticmethod
    def prepare(sql: str, params: Any) -> tuple[str, Any]:
        if params is None:
            # As Django's sqlite3 cursor: SQL without params is sent verbatim.
            return sql, None
        if isinstance(params, Mapping):
            return sql % {name: f":{name}" for name in params}, params
        return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%"), tuple(params)


logger = logging.getLogger("vinyl.engine")


def _connection_class(init_commands: tuple[str, ...]) -> type[sqlite3.Connection]:
    """A ``sqlite3.Connection`` set up as Django's sqlite3 backend sets it up.

    Passed as ``factory=`` to ``sqlite3.connect``, it runs on aiosqlite's
    thread when each pooled connection opens.
    """

    class VinylSQLiteConnection(sqlite3.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            register_functions(self)
            self.execute("PRAGMA foreign_keys = ON")
            self.execute("PRAGMA legacy_alter_table = OFF")
            for command in init_commands:
                self.execute(command)
            self._django_functions = True

        def create_function(self, name: str, narg: int, func: Any, *, deterministic: bool = False) -> None:
            # SQLAlchemy's pysqlite dialect registers its own floor() (math.floor, which fails on NULL) and
            # regexp() (re.search, which fails on a number) on each new connection, after this one's
            # __init__: SQLite's FLOOR and Django's REGEXP stay, as on Django's own connections. Only
            # SQLAlchemy's are left out: an application's own function of either name is registered.
            if getattr(self, "_django_functions", False) and _sqlalchemy_function(name, func):
                logger.debug("vinyl: SQLAlchemy's SQLite %s() not registered: Django's stays", name)
                return
            super().create_function(name, narg, func, deterministic=deterministic)

    return VinylSQLiteConnection


def _sqlalchemy_function(name: str, func: Any) -> bool:
    """Is this SQLAlchemy's SQLite dialect registering its floor() or regexp()
    (functions Django's backend has, built in or its own)?"""
    kind = name.lower()
    if kind == "floor":
        return func is math.floor
    return kind == "regexp" and getattr(func, "__module__", "").startswith("sqlalchemy.")


def _begin_emitter(statement: str) -> Callable[[Any], None]:
    def emit_begin(connection: Any) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # SQLAlchemy Core code asked for autocommit: no transaction
        connection.exec_driver_sql(statement)

    return emit_begin


if TYPE_CHECKING:
    from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
else:  # through vinyl._compat, which checks the backend's names first
    AsyncAdapt_aiosqlite_dbapi = aiosqlite_dbapi()


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The adapter's DB-API module, with every PEP 249 exception class.

    Django's error mapping reads them all (``DataError``, ``InternalError``...);
    SQLAlchemy's adapter copies only some. aiosqlite raises sqlite3's own.
    """

    def _init_dbapi_attributes(self) -> None:
        super()._init_dbapi_attributes()
        for name in ("Warning", "InterfaceError", "DataError", "InternalError"):
            if not hasattr(self, name):
                setattr(self, name, getattr(sqlite3, name))


class DatabaseWrapper(VinylWrapperMixin, SQLiteWrapper):
    # The exceptions the driver adapter raises, for Django's error mapping.
    Database = _DBAPI(aiosqlite, sqlite3)
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
    sqlalchemy_drivername = "sqlite+aiosqlite"
    vinyl_cursor_class = SQLiteCursor

    def _sqlite_options(self) -> dict[str, Any]:
        return dict(self.settings_dict.get("OPTIONS") or {})

    def vinyl_url(self) -> URL:
        name = self.settings_dict.get("NAME")
        if not name:
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}]['NAME'] must be the path of the SQLite "
                f"database file, e.g. BASE_DIR / 'db.sqlite3'"
            )
        if self.creation.is_in_memory_db(str(name)):
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}] is an in-memory SQLite database, which "
                f"vinyl cannot share between the pooled connections of concurrent "
                f"tasks: give NAME a file path (e.g. BASE_DIR / 'db.sqlite3')"
            )
        return URL.create(self.sqlalchemy_drivername, database=str(name))

    def vinyl_engine_config(self) -> EngineConfig:
        options = self._sqlite_options()
        init_command = options.get("init_command") or ""
        mode = options.get("transaction_mode")
        if mode is not None and mode.upper() not in self.transaction_modes:
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}]['OPTIONS']['transaction_mode'] is "
                f"{mode!r}: use one of {', '.join(sorted(self.transaction_modes))}, "
                f"or None"
            )
        begin = f"BEGIN {mode.upper()}" if mode else "BEGIN"
        config = super().vinyl_engine_config()
        connect_args = config.engine_kwargs.setdefault("connect_args", {})
        for name in _DJANGO_OPTIONS:
            connect_args.pop(name, None)
        commands = tuple(c.strip() for c in init_command.split(";") if c.strip())
        connect_args.update(
            # Django's converters (registered on the sqlite3 module) by
            # declared type and column name, as Django's backend asks.
            detect_types=sqlite3.PARSE_DECLTYPES | sqlite3.PARSE_COLNAMES,
            # aiosqlite runs the connection on its own thread.
            check_same_thread=False,
            # sqlite3 would BEGIN only before DML and never before SAVEPOINT
            # or DDL: SQLAlchemy emits BEGIN itself (its documented recipe).
            isolation_level=None,
            factory=_connection_class(commands),
        )
        config.configure = _begin_emitter_installer(begin)
        return config

    # Reads outside atomic pay a local BEGIN/ROLLBACK rather than switching the
    # connection to autocommit: pysqlite's switch back would re-enable the
    # driver's own implicit BEGIN.
    vinyl_autocommit_options = None

    @staticmethod
    def vinyl_in_transaction(driver_connection: Any) -> bool:
        return bool(driver_connection.in_transaction)

    @staticmethod
    async def vinyl_fetch(driver_connection: Any, sql: str, params: tuple) -> list:
        cursor = await driver_connection.execute(sql, params)
        try:
            return list(await cursor.fetchall())
        finally:
            await cursor.close()

    @staticmethod
    async def vinyl_stream(driver_connection: Any, sql: str, params: tuple, shared: bool) -> Any:
        # sqlite3 steps the statement as rows are fetched; other statements
        # may run on the connection meanwhile.
        return await driver_connection.execute(sql, params)

    @staticmethod
    async def vinyl_execute(driver_connection: Any, sql: str, params: tuple) -> int:
        cursor = await driver_connection.execute(sql, params)
        try:
            return cursor.rowcount
        finally:
            await cursor.close()

    def vinyl_test_database_ready(self) -> None:
        # Django's TestCase keeps a transaction open on its own connection for
        # a whole test class; with SQLite's rollback journal, a reader there
        # would lock vinyl's writers out ("database is locked"). Write-ahead
        # logging (a setting of the database file) lets them work side by side.
        name = str(self.settings_dict.get("NAME") or "")
        if not name or self.creation.is_in_memory_db(name):
            return
        conn = sqlite3.connect(name)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()

    def get_database_version(self) -> tuple[int, ...]:
        return sqlite3.sqlite_version_info

    def is_in_memory_db(self) -> bool:
        return self.creation.is_in_memory_db(self.settings_dict["NAME"])


def _begin_emitter_installer(statement: str) -> Callable[[AsyncEngine], None]:
    def install(engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "begin", _begin_emitter(statement))

    return install
