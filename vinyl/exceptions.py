"""vinyl's exceptions and the mapping of driver errors to Django's.

Database errors reach users as Django's own classes
(``django.db.IntegrityError``, ``OperationalError``...), with the driver's
error kept as ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import django.db
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from django.db.transaction import TransactionManagementError

from vinyl._compat import max_overflow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio.engine import AsyncEngine

    from vinyl.engine.engines import EngineEntry


class VinylConfigurationError(ImproperlyConfigured):
    """A vinyl alias is missing or does not use a vinyl backend."""


class SyncConnectionError(ImproperlyConfigured):
    """Sync Django code tried to open a connection on a vinyl alias."""


class TransactionScopeEnded(TransactionManagementError):
    """A task used the transaction of an ``atomic`` block that has ended."""


class DatabaseUnavailable(OperationalError):
    """vinyl could not connect to the server of a database alias (``exc.alias``).

    A read that the routers sent to that alias may run on the alias their
    ``db_for_read_fallback`` gives (see ``vinyl.routing``).
    """

    def __init__(self, message: str, alias: str = "") -> None:
        super().__init__(message)
        self.alias = alias


class TransactionConflict(OperationalError):
    """A statement failed because its transaction conflicted with a
    concurrent one; running the transaction again may succeed.

    What the server undid depends on the error:

    - PostgreSQL's serialization failure (SQLSTATE 40001) and deadlock
      (40P01): the statement; the transaction is aborted, every later
      statement in it fails until it rolls back (to a savepoint);
    - MySQL/MariaDB's deadlock (1213): the whole transaction; vinyl refuses
      the block's later statements (the session would autocommit them);
    - MySQL/MariaDB's lock wait timeout (1205): the statement only (the whole
      transaction with ``innodb_rollback_on_timeout``, whose later statements
      vinyl then refuses); caught inside the block, the transaction goes on,
      as with Django.

    Leaving an ``atomic`` block, it rolls the block back, as any error does,
    and ``@vinyl.atomic(retries=N)`` runs the outermost block again (see
    ``vinyl.retry``). A subclass of Django's ``OperationalError``, the class
    Django raises for them. A row that ``select_for_update(nowait=True)``
    found locked is not one, whatever the code (MariaDB's is 1205): Django's
    ``OperationalError``. ``exc.reason`` says which conflict it was.
    """

    reason = "conflict"


class CertificationConflict(TransactionConflict):
    """A MariaDB Galera node rolled the transaction back: it lost certification
    against a transaction another node committed first (error 1213 from a
    node with ``wsrep_on``). Run it again, or let ``@vinyl.atomic(retries=N)``.
    """

    reason = "Galera certification conflict"


class PoolExhausted(OperationalError):
    """No pooled connection became free within the pool's ``pool_timeout``."""


try:  # Django 6.1+: what FETCH_RAISE raises
    from django.core.exceptions import FieldFetchBlocked

    _NO_FETCH: tuple[type[Exception], ...] = (AttributeError, FieldFetchBlocked)
except ImportError:  # Django < 6.1
    _NO_FETCH = (AttributeError,)


class DeferredFieldError(*_NO_FETCH):  # type: ignore[misc]
    """A field left out by ``only()`` / ``defer()`` was read.

    vinyl never fetches on attribute access, whatever the QuerySet's
    ``fetch_mode()``: on Django 6.1+ this is a ``FieldFetchBlocked``, as with
    ``FETCH_RAISE``.
    """


class RelationNotAwaited(*_NO_FETCH):  # type: ignore[misc]
    """An attribute of a related object was read without awaiting the relation."""


class RelationNotLoaded(KeyError):
    """Item access to a relation that was neither joined nor prefetched."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


def connection_error(alias: str, entry: EngineEntry, exc: Exception) -> Exception:
    """Turn a failure to connect into an error naming the alias and server."""
    url = entry.config.url
    where = f"{url.host or 'localhost'}:{url.port}" if url.host or url.port else str(url.database)
    return DatabaseUnavailable(
        f"vinyl could not connect to database alias {alias!r} at {where} "
        f"({type(exc).__name__}: {exc}); check that the server is running and "
        f"that HOST, PORT, USER and NAME of DATABASES[{alias!r}] are right",
        alias,
    )


def pool_exhausted(alias: str, engine: AsyncEngine) -> PoolExhausted:
    """Say which pool ran out of connections, and what to change."""
    pool = engine.sync_engine.pool
    size = getattr(pool, "size", lambda: "?")()
    overflow = max_overflow(pool) or 0
    timeout = getattr(pool, "timeout", lambda: "?")()
    checked_out = getattr(pool, "checkedout", lambda: "?")()
    return PoolExhausted(
        f"vinyl's connection pool for database alias {alias!r} is exhausted: "
        f"{checked_out} connections checked out (pool_size={size}, "
        f"max_overflow={overflow}) and none came back within "
        f"pool_timeout={timeout}s; raise pool_size or max_overflow in "
        f"DATABASES[{alias!r}]['OPTIONS']['pool'], or hold connections for "
        f"less time (fewer concurrent tasks, shorter atomic blocks)"
    )


# Most specific first: Django's DB-API exception classes by name.
_DJANGO_ERRORS = (
    django.db.IntegrityError,
    django.db.DataError,
    django.db.NotSupportedError,
    django.db.ProgrammingError,
    django.db.InternalError,
    django.db.OperationalError,
    django.db.InterfaceError,
    django.db.DatabaseError,
    django.db.Error,
)


# SQLSTATE classes (first two characters) and the PEP 249 class psycopg,
# and so Django's PostgreSQL backend, raises for them (every class psycopg
# names; a class not listed, e.g. 02 no data or 0B invalid transaction
# initiation, is psycopg's DatabaseError too).
_SQLSTATE_CLASSES: dict[str, type[Exception]] = {
    "08": django.db.OperationalError,  # connection exception
    "0A": django.db.NotSupportedError,
    "10": django.db.ProgrammingError,  # XQuery error
    "20": django.db.ProgrammingError,  # case not found
    "21": django.db.ProgrammingError,  # cardinality violation (ON CONFLICT touching a row twice)
    "22": django.db.DataError,
    "23": django.db.IntegrityError,
    "24": django.db.InternalError,  # invalid cursor state
    "25": django.db.InternalError,  # invalid transaction state
    "26": django.db.ProgrammingError,  # invalid SQL statement name
    "27": django.db.OperationalError,  # triggered data change violation
    "28": django.db.OperationalError,  # invalid authorization
    "2B": django.db.InternalError,  # dependent privilege descriptors still exist
    "2D": django.db.InternalError,
    "2F": django.db.OperationalError,  # SQL routine exception
    "34": django.db.ProgrammingError,  # invalid cursor name
    "38": django.db.OperationalError,  # external routine exception
    "39": django.db.OperationalError,  # external routine invocation exception
    "3B": django.db.OperationalError,  # savepoint exception
    "3D": django.db.ProgrammingError,  # invalid catalog name
    "3F": django.db.ProgrammingError,  # invalid schema name
    "40": django.db.OperationalError,  # serialization failure, deadlock
    "42": django.db.ProgrammingError,
    "44": django.db.ProgrammingError,  # WITH CHECK OPTION violation
    "53": django.db.OperationalError,  # insufficient resources
    "54": django.db.OperationalError,  # program limit exceeded
    "55": django.db.OperationalError,  # lock not available
    "57": django.db.OperationalError,  # query canceled, admin shutdown
    "58": django.db.OperationalError,
    "F0": django.db.OperationalError,  # configuration file error
    "HV": django.db.OperationalError,  # foreign data wrapper error
    "P0": django.db.ProgrammingError,  # PL/pgSQL error (RAISE EXCEPTION)
    "XX": django.db.InternalError,
}


def sqlstate_error_class(exc: BaseException | None) -> type[Exception] | None:
    """Return Django's class for a driver error that carries a SQLSTATE."""
    while exc is not None:
        code = getattr(exc, "sqlstate", None)
        if isinstance(code, str) and len(code) == 5:
            return _SQLSTATE_CLASSES.get(code[:2], django.db.DatabaseError)
        exc = exc.__cause__
    return None


# MySQL client errors for a connection that is gone: CR_CONNECTION_ERROR,
# CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_SERVER_LOST_EXTENDED;
# ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED.
MYSQL_CONNECTION_CODES = frozenset({2002, 2003, 2006, 2013, 2055, 1040, 1053, 1927})

# ER_LOCK_WAIT_TIMEOUT: a lock wait timed out, or (MariaDB) NOWAIT found the row locked.
MYSQL_LOCK_WAIT_TIMEOUT = 1205

# MySQL errors after which the server has rolled the whole transaction back
# (ER_LOCK_DEADLOCK) and runs the next statements in autocommit.
MYSQL_TRANSACTION_ENDED_CODES = frozenset({1213})


def server_ended_transaction(exc: BaseException) -> bool:
    """Did the server roll back the whole transaction with this error?"""
    for error in _chain(exc):
        args = getattr(error, "args", None)
        if args and isinstance(args[0], int) and args[0] in MYSQL_TRANSACTION_ENDED_CODES:
            return True
    return False


# Driver errors about a connection that is no longer usable, by class name:
# asyncpg's (ConnectionDoesNotExistError, InterfaceError "connection is
# closed", InternalClientError when the protocol is out of step after the
# server ended the session).
_LOST_CONNECTION_NAMES = frozenset(
    {"ConnectionDoesNotExistError", "InternalClientError", "ConnectionFailureError"}
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, the driver error SQLAlchemy wraps (``orig``) and their causes."""
    seen: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and not any(error is s for s in seen):
        seen.append(error)
        error = getattr(error, "orig", None) or error.__cause__
    return seen


def _is_database_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("sqlalchemy", "asyncpg", "asyncmy", "aiosqlite", "sqlite3", "pymysql")


def django_error(exc: BaseException, *, integrity_codes: tuple[int, ...] = ()) -> BaseException:
    """Return the exception Django raises for a driver or SQLAlchemy error.

    The one mapping from driver and SQLAlchemy errors to Django's classes;
    anything that is not a database error (and Django's own errors) comes
    back unchanged. In order:

    - a value the driver could not encode (a lone surrogate) is the
      ``UnicodeEncodeError`` Django's drivers raise before sending anything;
    - a SQLSTATE (PostgreSQL) gives the class psycopg raises for it;
    - a MySQL error code in ``integrity_codes`` (Django's MySQL backend's
      ``codes_for_integrityerror``: 1048, 1690, 3819, 4025) is an
      ``IntegrityError``; a code of a lost connection an ``OperationalError``;
    - a lost connection (socket errors, asyncpg's connection errors) is an
      ``OperationalError``, as with psycopg and mysqlclient;
    - otherwise the PEP 249 class of the driver's error, by name, as Django's
      own wrapper maps them; ``DatabaseError`` when none matches.

    Raise it ``from exc``: the driver's error stays as ``__cause__``.
    """
    if isinstance(exc, django.db.Error) or not isinstance(exc, Exception):
        return exc
    chain = _chain(exc)
    if not any(_is_database_error(e) for e in chain):
        return exc
    for error in chain:
        if isinstance(error, UnicodeEncodeError):
            return UnicodeEncodeError(*error.args)
    driver = next((e for e in reversed(chain) if _is_database_error(e)), chain[-1])
    args = getattr(driver, "args", None) or (str(driver),)
    code = args[0] if isinstance(args[0], int) else None
    if code is not None:  # MySQL's error number, before its SQLSTATE
        if code in integrity_codes:
            return django.db.IntegrityError(*args)
        if code in MYSQL_CONNECTION_CODES:
            return django.db.OperationalError(*args)
    by_state = sqlstate_error_class(driver) if code is None else None
    if by_state is not None:
        return by_state(*args)
    for error in chain:
        if isinstance(error, (OSError, ConnectionError)) or type(error).__name__ in _LOST_CONNECTION_NAMES:
            return django.db.OperationalError(str(error))
        if type(error).__module__.startswith("asyncpg") and type(error).__name__ == "InterfaceError":
            return django.db.OperationalError(str(error))
    names = [{cls.__name__ for cls in type(error).__mro__} for error in chain]
    for django_cls in _DJANGO_ERRORS:  # the most specific class anywhere in the chain
        if any(django_cls.__name__ in n for n in names):
            return django_cls(*args)
    # SQLAlchemy's own errors about the connection's state (closed,
    # invalidated, a rollback pending after a lost connection).
    return django.db.OperationalError(str(exc))


def database_error(exc: BaseException, *, integrity_codes: tuple[int, ...] = ()) -> Exception:
    """Return Django's error for an SQLAlchemy/driver error (``raise ... from exc``)."""
    mapped = django_error(exc, integrity_codes=integrity_codes)
    if isinstance(mapped, Exception) and mapped is not exc:
        return mapped
    if isinstance(exc, django.db.Error):
        return exc
    return django.db.DatabaseError(str(exc))
