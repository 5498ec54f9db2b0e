"""``ENGINE: "vinyl.postgresql_backend"``: PostgreSQL through asyncpg."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Sequence, TypeVar

import uuid

import asyncpg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLWrapper
from sqlalchemy import text


from vinyl._backend.base import VinylCursor, VinylWrapperMixin
from vinyl._compat import asyncpg_dbapi, asyncpg_idle, asyncpg_statement, begin_asyncpg_transaction, close_portal
from vinyl.engine.engines import EngineConfig
from vinyl.exceptions import django_error
from vinyl.retry import as_conflict
from vinyl.postgresql_backend.connect import connect_to_the_end
from vinyl.postgresql_backend.features import DatabaseFeatures
from vinyl.postgresql_backend.operations import DatabaseOperations
from vinyl.postgresql_backend.sentlater import NotBytes
from vinyl.postgresql_backend.manyparams import MAX_ARGUMENTS, as_arrays, within_limit
from vinyl.postgresql_backend.refused import call_inlining_refused, inline_refused, raise_unsent, refused_argument, rerun_refused
from vinyl.translate.placeholders import (
    NumberedStatement,
    equal_constants,
    format_sharing_constants,
    format_to_numeric_dollar,
    pyformat_to_numeric_dollar,
)

T = TypeVar("T")


class PostgreSQLCursor(VinylCursor):
    """Django's ``format`` SQL as asyncpg's typed ``$n`` placeholders."""

    __slots__ = ()

    @staticmethod
    def prepare(sql: str, params: Any) -> tuple[str, Any]:
        if type(params) is not tuple:  # (a tuple, the plans' own, skips the ABC check)
            if isinstance(params, Mapping):
                return pyformat_to_numeric_dollar(sql, params)
            params = tuple(params) if params is not None else ()
        if len(params) > MAX_ARGUMENTS:
            return within_limit(format_to_numeric_dollar(sql, params), params)
        firsts = equal_constants(sql, params)
        if firsts is not None:
            return format_sharing_constants(sql, params, firsts)
        return format_to_numeric_dollar(sql, params), params

    @staticmethod
    def shared_parameters(sql: str, params: Sequence[Any]) -> tuple[int, ...] | None:
        # Equal constants of a GROUP BY statement share a placeholder (see
        # equal_constants); prepare() applies it below asyncpg's bound.
        return equal_constants(sql, params) if len(params) <= MAX_ARGUMENTS else None

    def run_prepared(self, sql: str, params: Any) -> Any:
        # Each IN list as one array, as vinyl_fetch sends it (see _sent).
        if _IN_LIST in sql and len(params) <= MAX_ARGUMENTS:
            arrays = as_arrays(sql, params)
            if arrays is not None:
                try:
                    return super().run_prepared(arrays[0], tuple(arrays[1]))
                except Exception as exc:
                    if refused_argument(exc) is None:
                        raise
        return super().run_prepared(sql, params)

    @classmethod
    def plan_preparer(cls, sql: str) -> Callable[[str, Any], tuple[str, Any]]:
        # The plan's SQL is converted once per kind of parameters.
        statement = NumberedStatement(sql)
        prepare = cls.prepare
        # (Whether equal constants share a placeholder depends on the values:
        # such a statement is converted at each call.)
        grouped = "GROUP BY" in sql

        def prepare_planned(sql_in: str, params: Any) -> tuple[str, Any]:
            if sql_in is statement.sql and not grouped and type(params) is tuple and len(params) <= MAX_ARGUMENTS:
                return statement.convert(params), params
            return prepare(sql_in, params)

        return prepare_planned

    def execute(self, sql: str, params: Any = None) -> Any:
        try:
            return super().execute(sql, params)
        except Exception as exc:
            # A value asyncpg refused to encode (see refused.py): once more
            # with it as a literal the server parses.
            prepared_sql, prepared_params = self.prepare(sql, params)
            rewritten = inline_refused(prepared_sql, prepared_params, exc)
            if rewritten is None:
                raise
        return call_inlining_refused(self.run_prepared, *rewritten)


if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
else:  # through vinyl._compat, which checks the backend's names first
    AsyncAdapt_asyncpg_dbapi = asyncpg_dbapi()


class AsyncpgDBAPI(AsyncAdapt_asyncpg_dbapi):
    """SQLAlchemy's DB-API module for asyncpg, as Django's backend uses it."""

    def Binary(self, value: Any) -> Any:  # noqa: N802 - the DB-API name
        # BinaryField's values go through Binary(). psycopg refuses one that
        # is no bytes (a str...) when the statement is sent (see sentlater.py).
        if isinstance(value, (bytes, bytearray, memoryview)):
            return value
        return NotBytes(value)


class DatabaseWrapper(VinylWrapperMixin, PostgreSQLWrapper):
    # The exceptions the driver adapter raises, for Django's error mapping.
    Database = AsyncpgDBAPI(asyncpg)  # type: ignore[no-untyped-call]  # SQLAlchemy's __init__ is untyped
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
    sqlalchemy_drivername = "postgresql+asyncpg"
    vinyl_cursor_class = PostgreSQLCursor

    # asyncpg's adapter switches to autocommit with a flag, no round trip.
    vinyl_autocommit_options = {"isolation_level": "AUTOCOMMIT"}

    @staticmethod
    def vinyl_in_transaction(driver_connection: Any) -> bool:
        return driver_connection.is_in_transaction()

    # (vinyl_in_transaction's answer, two calls less: every statement
    # outside a block asks before its connection goes back)
    vinyl_idle = staticmethod(asyncpg_idle)  # type: ignore[assignment]  # (the base's classmethod, called alike)

    @staticmethod
    async def vinyl_fetch(driver_connection: Any, sql: str, params: Sequence[Any]) -> list:
        if _IN_LIST in sql:
            return await _sent(lambda s, p: driver_connection.fetch(s, *p), sql, params)
        if len(params) > MAX_ARGUMENTS:
            sql, params = within_limit(sql, params)
        try:
            # (fetch(sql, *params) without its coroutine: every read and
            # RETURNING write passes here)
            return await asyncpg_statement(driver_connection, sql, params if type(params) is tuple else tuple(params))
        except asyncpg.PostgresError as exc:
            return await rerun_refused(lambda s, p: driver_connection.fetch(s, *p), sql, params, exc)

    @staticmethod
    async def vinyl_execute(driver_connection: Any, sql: str, params: Sequence[Any]) -> int:
        # asyncpg answers with the command tag: "UPDATE 3", "INSERT 0 1".
        if _IN_LIST in sql or not params or len(params) > MAX_ARGUMENTS:
            return await _execute_rewritten(driver_connection, sql, params)
        try:
            # (execute(sql, *params) without its coroutine, the tag as bytes)
            tag: Any = (await asyncpg_statement(driver_connection, sql, params if type(params) is tuple else tuple(params), True))[1]
        except asyncpg.PostgresError as exc:
            tag = await rerun_refused(lambda s, p: driver_connection.execute(s, *p), sql, params, exc)
        return _count(tag)

    # A streamed read is an asyncpg cursor: a portal, which lives in a
    # transaction.
    vinyl_stream_transaction = True

    @staticmethod
    async def vinyl_stream(driver_connection: Any, sql: str, params: Sequence[Any], shared: bool) -> PortalCursor:
        cursor = await _sent(lambda s, p: driver_connection.cursor(s, *p), sql, params)
        return PortalCursor(cursor, shared)

    # (adapter) -> awaitable | None. SQLAlchemy's asyncpg adapter sends BEGIN
    # with its first statement; a statement vinyl runs on the asyncpg
    # connection itself must not run before it, outside the transaction.
    # (The function itself: every statement of a block calls it.)
    vinyl_start_transaction = staticmethod(begin_asyncpg_transaction)

    @staticmethod
    def vinyl_map_error(exc: BaseException) -> BaseException:
        # Serialization failures and deadlocks are named (see vinyl.retry).
        return as_conflict(map_asyncpg_error(exc), exc)

    def vinyl_engine_defaults(self) -> dict[str, Any]:
        # Django's from_db_value decodes JSON itself: hand it the text.
        return {"json_deserializer": _identity}

    def vinyl_engine_config(self) -> EngineConfig:
        options = self.settings_dict.get("OPTIONS") or {}
        prepared = options.get("prepared_statements", True)
        if not isinstance(prepared, bool):
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}]['OPTIONS']['prepared_statements'] must be "
                f"True or False, got {prepared!r}"
            )
        config = super().vinyl_engine_config()
        connect_args = config.engine_kwargs.setdefault("connect_args", {})
        connect_args.pop("prepared_statements", None)
        # A cancellation never cuts a connect short (see connect.py).
        connect_args.setdefault("async_creator_fn", connect_to_the_end)
        if not prepared:
            # Behind pgbouncer in transaction mode: no named prepared
            # statements, neither asyncpg's nor SQLAlchemy's adapter's.
            # SQLAlchemy's adapter still prepares each statement (under a
            # unique name) and runs it in a second exchange, which pgbouncer
            # may send to another server session unless a transaction pins
            # it: no statement runs in autocommit.
            config.autocommit_options = None
            connect_args["statement_cache_size"] = 0
            connect_args["prepared_statement_cache_size"] = 0
            connect_args["prepared_statement_name_func"] = _unique_statement_name
        return config

    def vinyl_connect_args(self) -> dict[str, Any]:
        # Django's PostgreSQL backend runs each session in UTC (or TIME_ZONE
        # without USE_TZ), which SQL functions such as Trunc rely on.
        return {"server_settings": {"TimeZone": self.timezone_name}}

    @staticmethod
    async def vinyl_load_facts(conn: Any) -> dict[str, Any]:
        # SQLAlchemy's dialect read the server's version on the engine's first
        # connect (select version()): no statement of vinyl's own, and no
        # transaction around it, on a cold start (issue 17).
        number = version_number(conn.dialect.server_version_info)
        if number is None:
            version_num = (await conn.execute(text("SHOW server_version_num"))).scalar_one()
            number = int(version_num)
        return {
            "pg_version": number,
            "version": (number // 10000, number % 10000),
        }

    @staticmethod
    def vinyl_facts_of(sync_wrapper: Any) -> dict[str, Any] | None:
        number = int(sync_wrapper.pg_version)
        return {"pg_version": number, "version": (number // 10000, number % 10000)}

    @property
    def pg_version(self) -> int:
        return self.vinyl_facts()["pg_version"]

    def ensure_timezone(self) -> bool:
        return False


#: What the SQL of a statement with an IN list of parameters holds.
_IN_LIST = "IN ($"


async def _execute_rewritten(driver_connection: Any, sql: str, params: Sequence[Any]) -> int:
    """vinyl_execute() of a statement with IN lists, too many parameters or none."""
    if _IN_LIST in sql:
        tag = await _sent(lambda s, p: driver_connection.execute(s, *p), sql, params)
    else:
        if len(params) > MAX_ARGUMENTS:
            sql, params = within_limit(sql, params)
        try:
            tag = await driver_connection.execute(sql, *params)
        except asyncpg.PostgresError as exc:
            tag = await rerun_refused(lambda s, p: driver_connection.execute(s, *p), sql, params, exc)
    return _count(tag)


def _count(tag: str | bytes) -> int:
    """The row count of asyncpg's command tag (str, or the bytes it decodes)."""
    count = tag.rpartition(" " if type(tag) is str else b" ")[2]  # type: ignore[arg-type]
    return int(count) if count.isdigit() else 0


async def _sent(run: Callable[[str, Sequence[Any]], Awaitable[T]], sql: str, params: Sequence[Any]) -> T:
    """``run(sql, params)``, each IN list of plain values sent as one array
    (see manyparams.as_arrays); a value asyncpg refuses to encode sent
    inlined (see refused.py).

    A refusal of an array's value (asyncpg refuses before the statement
    runs: the transaction is untouched) sends the statement with its lists
    as they were, where the refused value alone is inlined.
    """
    if len(params) > MAX_ARGUMENTS:
        sql, params = within_limit(sql, params)
    elif _IN_LIST in sql:
        arrays = as_arrays(sql, params)
        if arrays is not None:
            try:
                return await run(*arrays)
            except asyncpg.PostgresError as exc:
                if refused_argument(exc) is None:
                    raise_unsent(params)
                    raise
    try:
        return await run(sql, params)
    except asyncpg.PostgresError as exc:
        return await rerun_refused(run, sql, params, exc)


class PortalCursor:
    """An asyncpg cursor (a portal) read a chunk at a time.

    A portal lives until its transaction ends. Outside a block that is right
    after the stream; inside one, which may go on long after, it is closed
    as soon as the stream ends (asyncpg closes it with the private
    ``_close_portal``, as its own cursor iterator does).
    """

    __slots__ = ("cursor", "shared")

    def __init__(self, cursor: Any, shared: bool) -> None:
        self.cursor = cursor
        self.shared = shared

    def fetchmany(self, size: int) -> Awaitable[list]:
        return self.cursor.fetch(size)

    async def close(self) -> None:
        if self.shared:
            await close_portal(self.cursor)


# SQLSTATEs of a prepared statement that is missing or already there: what
# named statements give behind pgbouncer in transaction mode.
_PREPARED_STATEMENT_STATES = frozenset({"26000", "42P05"})


def map_asyncpg_error(exc: BaseException) -> BaseException:
    """Return the Django exception for an asyncpg error (others unchanged);
    see :func:`vinyl.exceptions.django_error`."""
    mapped = django_error(exc)
    if mapped is not exc and _prepared_statement_error(exc):
        return type(mapped)(
            f"{mapped} (a prepared statement went missing between two statements: "
            f"behind pgbouncer in transaction mode, or another pooler that moves "
            f"sessions, set DATABASES[...]['OPTIONS']['prepared_statements'] = False)"
        )
    return mapped


def _prepared_statement_error(exc: BaseException | None) -> bool:
    while exc is not None:
        if getattr(exc, "sqlstate", None) in _PREPARED_STATEMENT_STATES:
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
    return False


def version_number(info: Any) -> int | None:
    """``server_version_num`` from the version SQLAlchemy's dialect parsed
    (``(15, 4)`` -> 150004), or None where it cannot say (before 10, whose
    numbers have three parts, or a version it could not parse)."""
    if not isinstance(info, tuple) or not info or not all(isinstance(part, int) for part in info):
        return None
    major, minor = info[0], info[1] if len(info) > 1 else 0
    if major < 10 or len(info) > 2 or minor >= 10000:
        return None
    return major * 10000 + minor


def _identity(value: str) -> str:
    return value


def _unique_statement_name() -> str:
    # Statements SQLAlchemy's adapter still prepares get names no other
    # client of a pgbouncer server connection can have used.
    return f"__vinyl_{uuid.uuid4().hex}__"
