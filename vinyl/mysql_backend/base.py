"""``ENGINE: "vinyl.mysql_backend"``: MySQL and MariaDB through asyncmy."""

from __future__ import annotations

import math
import struct
import time
from typing import TYPE_CHECKING, Any, Callable, Coroutine, NamedTuple

import asyncmy
from asyncmy.constants import FIELD_TYPE
from asyncmy.constants.COMMAND import COM_SET_OPTION
from django.core.exceptions import ImproperlyConfigured
from django.db import ProgrammingError
from asyncmy.cursors import Cursor as BufferedCursor, SSCursor
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio.engine import AsyncEngine

from vinyl.mysql_backend import _mysqldb, literals

_mysqldb.import_django_mysql()

from django.db.backends.mysql.base import CursorWrapper as MySQLCursorWrapper  # noqa: E402
from django.db.backends.mysql.base import DatabaseWrapper as MySQLWrapper  # noqa: E402

from vinyl import _querylog  # noqa: E402
from vinyl._backend.base import VinylCursor, VinylWrapperMixin  # noqa: E402
from vinyl._compat import asyncmy_dbapi, mysql_set_option  # noqa: E402

if TYPE_CHECKING:
    from sqlalchemy.dialects.mysql.asyncmy import AsyncAdapt_asyncmy_dbapi
else:  # through vinyl._compat, which checks the backend's names first
    AsyncAdapt_asyncmy_dbapi = asyncmy_dbapi()
from vinyl.exceptions import django_error  # noqa: E402
from vinyl.engine.engines import EngineConfig, cached_facts, sa_await  # noqa: E402
from vinyl.retry import as_conflict  # noqa: E402
from vinyl.mysql_backend.features import DatabaseFeatures  # noqa: E402
from vinyl.mysql_backend.operations import DatabaseOperations  # noqa: E402

_FACTS_SQL = """
SELECT VERSION(), @@sql_mode, @@default_storage_engine, @@sql_auto_is_null,
       @@lower_case_table_names,
       CONVERT_TZ('2001-01-01 01:00:00', 'UTC', 'UTC') IS NOT NULL"""


class MySQLCursor(VinylCursor):
    """Refuses the floats MySQL has no value for, as Django's MySQL drivers do.

    asyncmy writes ``float("inf")`` into the SQL as ``infe0`` (an unknown
    column); mysqlclient and PyMySQL refuse it with a ProgrammingError.
    """

    __slots__ = ()

    @staticmethod
    def prepare(sql: str, params: Any) -> tuple[str, Any]:
        if params:
            values = params.values() if isinstance(params, dict) else params
            # The scan for a float runs in C (a bulk INSERT binds thousands).
            if float in map(type, values):
                for value in values:
                    if type(value) is float and not math.isfinite(value):
                        raise ProgrammingError(f"{value} can not be used with MySQL")
        return sql, params


class _Runners(NamedTuple):
    """How an engine runs a statement on an asyncmy connection."""

    fetch: Callable[[Any, str, tuple], Coroutine[Any, Any, list]]
    execute: Callable[[Any, str, tuple], Coroutine[Any, Any, int]]
    insert_id: Callable[[Any, str, tuple], Coroutine[Any, Any, list]]


def _runners(arguments: Callable[[Any, str, tuple], tuple]) -> _Runners:
    """The runners that call ``cursor.execute(*arguments(connection, sql, params))``."""

    async def fetch(driver_connection: Any, sql: str, params: tuple) -> list:
        async with driver_connection.cursor() as cursor:
            await cursor.execute(*arguments(driver_connection, sql, params))
            return await cursor.fetchall()

    async def execute(driver_connection: Any, sql: str, params: tuple) -> int:
        # Matched rows, not changed ones: SQLAlchemy connects with FOUND_ROWS,
        # as Django does.
        async with driver_connection.cursor() as cursor:
            await cursor.execute(*arguments(driver_connection, sql, params))
            return cursor.rowcount

    async def insert_id(driver_connection: Any, sql: str, params: tuple) -> list:
        # The OK packet carries the key: no result set to send and parse, as
        # RETURNING would need.
        async with driver_connection.cursor() as cursor:
            await cursor.execute(*arguments(driver_connection, sql, params))
            return [(cursor.lastrowid,)]

    return _Runners(fetch, execute, insert_id)


def _as_given(driver_connection: Any, sql: str, params: tuple) -> tuple:
    return sql, params


#: Many plain parameters written into the SQL by vinyl (see literals).
_WRITTEN = _runners(literals.arguments)
#: Every parameter left to the connection's own encoders, which may write
#: them otherwise than asyncmy's defaults (``OPTIONS["conv"]``).
_AS_GIVEN = _runners(_as_given)


class DatabaseWrapper(VinylWrapperMixin, MySQLWrapper):
    # The exceptions the driver adapter raises, for Django's error mapping.
    Database = AsyncAdapt_asyncmy_dbapi(asyncmy)
    vinyl_cursor_class = MySQLCursor
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
    sqlalchemy_drivername = "mysql+asyncmy"

    # Pooled connections autocommit and vinyl begins its transactions with
    # BEGIN: a read outside a transaction opens none, so none is rolled back
    # when the connection goes back to the pool, and a single write commits
    # by itself.
    vinyl_autocommit_options: dict[str, Any] | None = {}

    @staticmethod
    def vinyl_in_transaction(driver_connection: Any) -> bool:
        return driver_connection.get_transaction_status()

    # A deadlock (1213) rolls the whole transaction back and the session
    # autocommits the statements that follow: vinyl refuses to run them.
    vinyl_server_may_end_transaction = True

    def vinyl_map_error(self, exc: BaseException) -> BaseException:
        # Django's MySQL backend makes these codes IntegrityErrors (1690:
        # unsigned value out of range...): the same list.
        error = django_error(exc, integrity_codes=MySQLCursorWrapper.codes_for_integrityerror)
        # Deadlocks and lock wait timeouts are named (1213 on a Galera node:
        # a certification conflict), see vinyl.retry.
        facts = cached_facts(self.alias)
        return as_conflict(error, exc, galera=bool(facts and facts.get("galera")))

    @property
    def vinyl_driver_datetimes_naive(self) -> bool:
        """Is every datetime asyncmy returns naive, of fold 0? Yes with its
        own decoders (they build each from the column's text, without a
        zone), not with the caller's (``OPTIONS["conv"]``, or its default
        table changed in place)."""
        table = asyncmy.converters.conversions
        own = asyncmy.converters.convert_datetime
        return (
            "conv" not in (self.settings_dict.get("OPTIONS") or {})
            and table.get(FIELD_TYPE.DATETIME) is own
            and table.get(FIELD_TYPE.TIMESTAMP) is own
        )

    # The statement runners of an engine whose connections use asyncmy's
    # default encoders (see _runners; OPTIONS["conv"]: vinyl_engine_config).
    vinyl_fetch = staticmethod(_WRITTEN.fetch)
    vinyl_execute = staticmethod(_WRITTEN.execute)
    vinyl_insert_id = staticmethod(_WRITTEN.insert_id)

    @staticmethod
    async def vinyl_stream(driver_connection: Any, sql: str, params: tuple, shared: bool) -> BufferedCursor:
        # On a connection of its own the result is unbuffered: rows come off
        # the socket as they are fetched, and the connection can run nothing
        # else until the cursor is read out or closed (closing reads the rest).
        # Other tasks' statements may interleave on a shared connection: the
        # result is buffered there, as Django's chunked_cursor() does.
        cursor = driver_connection.cursor(BufferedCursor if shared else SSCursor)
        await cursor.execute(sql, params)
        return cursor

    @staticmethod
    def vinyl_idle(driver_connection: Any) -> bool:
        # The checkin listener switches autocommit back on when it is off.
        return driver_connection.get_autocommit() and not driver_connection.get_transaction_status()

    def vinyl_engine_defaults(self) -> dict[str, Any]:
        options = self.settings_dict.get("OPTIONS") or {}
        # Django runs MySQL sessions in READ COMMITTED unless told otherwise.
        level = options.get("isolation_level") or "read committed"
        return {"isolation_level": level.upper()}

    def vinyl_engine_config(self) -> EngineConfig:
        config = super().vinyl_engine_config()
        connect_args = config.engine_kwargs.setdefault("connect_args", {})
        connect_args.pop("isolation_level", None)
        connect_args.setdefault("charset", "utf8mb4")
        multi_statements = connect_args.pop("multi_statements", False)
        if not isinstance(multi_statements, bool):
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}]['OPTIONS']['multi_statements'] must be "
                f"True or False, got {multi_statements!r}"
            )

        def configure(engine: AsyncEngine) -> None:
            _autocommit_until_begin(engine)
            if not multi_statements:
                event.listen(engine.sync_engine, "connect", _one_statement_per_query)

        config.configure = configure
        if "conv" in connect_args:
            # The driver's encoders are the caller's: literals as asyncmy writes them.
            config.fetch, config.execute, config.insert_id = _AS_GIVEN
        return config

    def create_cursor(self, name: str | None = None) -> Any:
        return MySQLCursorWrapper(super().create_cursor(name))

    async def vinyl_load_facts(self, conn: Any) -> dict[str, Any]:
        # A MariaDB Galera node (wsrep on): 1213 is also a certification conflict.
        # MySQL has no @@wsrep_on: asked with the rest where SQLAlchemy's
        # dialect found MariaDB on the engine's first connect (one round trip
        # fewer on a cold start), on its own where only VERSION() says so.
        asked = bool(getattr(conn.dialect, "is_mariadb", False))
        row = await _server_row(conn, _FACTS_SQL + (", @@wsrep_on" if asked else ""), self.alias)
        mariadb = "mariadb" in str(row[0]).lower()
        if asked:
            galera = mariadb and bool(row[6])
        else:
            galera = mariadb and bool((await _server_row(conn, "SELECT @@wsrep_on", self.alias))[0])
        return {
            "galera": galera,
            "mysql_server_data": {
                "version": row[0],
                "sql_mode": row[1],
                "default_storage_engine": row[2],
                "sql_auto_is_null": bool(row[3]),
                "lower_case_table_names": bool(row[4]),
                "has_zoneinfo_database": bool(row[5]),
            }
        }

    @staticmethod
    def vinyl_facts_of(sync_wrapper: Any) -> dict[str, Any] | None:
        # Django's MySQL backend reads the same facts, with the same keys.
        return {"mysql_server_data": dict(sync_wrapper.mysql_server_data)}

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


async def _server_row(conn: Any, sql: str, alias: str) -> Any:
    """The one row of a read of server variables (no table) on ``conn``.

    On an autocommitting connection outside a transaction (a vinyl engine's,
    see :func:`_autocommit_until_begin`) it runs on the driver connection,
    logged on ``vinyl.sql`` as SQLAlchemy's statements are: SQLAlchemy's
    execute would begin a transaction around it, BEGIN and ROLLBACK, two
    round trips of every cold start for nothing. Elsewhere (an application's
    engine, a connection in a transaction) SQLAlchemy runs it as usual.
    """
    if not conn.in_transaction():
        driver = (await conn.get_raw_connection()).driver_connection
        if driver.get_autocommit():
            started = time.perf_counter()
            async with driver.cursor() as cursor:
                await cursor.execute(sql)
                row = await cursor.fetchone()
            if _querylog.observing():
                _querylog.record(alias, sql, None, started, capture=False)
            return row
    return (await conn.execute(text(sql))).one()


def _autocommit_until_begin(engine: AsyncEngine) -> None:
    """Run the connections of a vinyl engine in autocommit, BEGIN on demand.

    The MySQL DB-API drivers switch autocommit off and let the server open a
    transaction with the first statement, even a read, which then has to be
    rolled back before the connection is reused. Here each new connection
    goes back to autocommit, and SQLAlchemy's begin sends an explicit BEGIN:
    vinyl's (right before the first statement of a block, see
    ``Scope.begin``), or SQLAlchemy code's on the shared engine (its
    ``Connection.begin()``, or the autobegin of its first statement).

    The "begin" event only decides (it sees the connection's execution
    options); the BEGIN itself is sent by the engine dialect's ``do_begin``,
    inside SQLAlchemy's error handling: a connection found dead there is
    invalidated and its error wrapped as for any statement (an error raised
    from the event would reach the caller as the driver's, with the dead
    connection going back to the pool).
    """
    event.listen(engine.sync_engine, "connect", _autocommit_on)
    event.listen(engine.sync_engine, "checkin", _autocommit_again)
    event.listen(engine.sync_engine, "begin", _begin)
    # Dialect.do_begin is the documented hook for "begin, given a DB-API
    # connection"; set on this engine's own dialect instance only (an
    # application's engines keep SQLAlchemy's).
    engine.sync_engine.dialect.do_begin = _do_begin  # type: ignore[method-assign]


def _one_statement_per_query(dbapi_connection: Any, record: Any) -> None:
    """Turn the server's multi-statement mode off for a new connection.

    asyncmy always connects with CLIENT_MULTI_STATEMENTS, so one query
    string could run stacked statements ("SELECT %s; DROP TABLE t"), which
    mysqlclient (Django's driver) and PostgreSQL refuse. A user who wants
    them sets ``OPTIONS["multi_statements"] = True``.
    """
    sa_await(_set_multi_statements(dbapi_connection.driver_connection, False))


async def _set_multi_statements(driver: Any, on: bool) -> None:
    # COM_SET_OPTION (MYSQL_OPTION_MULTI_STATEMENTS_ON = 0, _OFF = 1): asyncmy
    # has no public call for it, so its command sender (private) is used
    # here, and only here. The server answers with an EOF (or error) packet.
    await mysql_set_option(driver, COM_SET_OPTION, struct.pack("<H", 0 if on else 1))
    await driver.read_packet()


def _autocommit_on(dbapi_connection: Any, record: Any) -> None:
    # Runs after SQLAlchemy's own connect handlers, which set the session's
    # isolation level and, with it, autocommit off.
    dbapi_connection.autocommit(True)


def _autocommit_again(dbapi_connection: Any, record: Any) -> None:
    # A connection given an isolation level of its own (execution_options)
    # comes back with autocommit off once SQLAlchemy resets the level, and
    # one that Django's code switched off may come back after an error.
    if dbapi_connection is None or dbapi_connection.get_autocommit():
        return
    try:
        dbapi_connection.autocommit(True)
    except Exception:  # outside the event loop: _begin copes with it off
        pass


#: Set on a pooled connection's ``info`` by the "begin" event when the
#: ``do_begin`` that follows it is to send BEGIN.
_SEND_BEGIN = "vinyl_send_begin"


def _begin(connection: Any) -> None:
    # SQLAlchemy runs do_begin right after this event, with no await between.
    # No BEGIN where SQLAlchemy Core code asked for autocommit.
    autocommit = connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    connection.connection.info[_SEND_BEGIN] = not autocommit


def _do_begin(dbapi_connection: Any) -> None:
    if not dbapi_connection.info.pop(_SEND_BEGIN, False):
        return
    driver = dbapi_connection.driver_connection
    if driver.get_autocommit():
        # Off (after an isolation level set for one connection), the
        # driver's implicit transaction is already the one SQLAlchemy expects.
        sa_await(driver.begin())
