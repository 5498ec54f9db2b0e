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

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

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
    """The database rolled the whole transaction back because it conflicted
    with a concurrent one; running it again may succeed.

    PostgreSQL's serialization failure (SQLSTATE 40001) and deadlock (40P01),
    MySQL/MariaDB's deadlock (1213) and lock wait timeout (1205). A subclass
    of Django's ``OperationalError``, the class Django raises for them.
    ``@vinyl.atomic(retries=N)`` runs the transaction again on it (see
    ``vinyl.retry``). ``exc.reason`` says which conflict it was.
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
    overflow = getattr(pool, "_max_overflow", 0)
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
# and so Django's PostgreSQL backend, raises for them.
_SQLSTATE_CLASSES: dict[str, type[Exception]] = {
    "08": django.db.OperationalError,  # connection exception
    "0A": django.db.NotSupportedError,
    "22": django.db.DataError,
    "23": django.db.IntegrityError,
    "24": django.db.InternalError,  # invalid cursor state
    "25": django.db.InternalError,  # invalid transaction state
    "28": django.db.OperationalError,  # invalid authorization
    "2D": django.db.InternalError,
    "40": django.db.OperationalError,  # serialization failure, deadlock
    "42": django.db.ProgrammingError,
    "53": django.db.OperationalError,  # insufficient resources
    "54": django.db.OperationalError,  # program limit exceeded
    "55": django.db.OperationalError,  # lock not available
    "57": django.db.OperationalError,  # query canceled, admin shutdown
    "58": django.db.OperationalError,
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


def database_error(exc: BaseException) -> Exception:
    """Return Django's error for an SQLAlchemy/driver error (``raise ... from exc``).

    The DB-API exception classes of every driver adapter share the PEP 249
    names, which is how Django's own wrapper maps them too; a SQLSTATE, where
    the driver gives one, is more precise.
    """
    orig = getattr(exc, "orig", None) or exc
    by_state = sqlstate_error_class(orig)
    if by_state is not None:
        return by_state(*getattr(orig, "args", (str(orig),)))
    names = {cls.__name__ for cls in type(orig).__mro__}
    for django_cls in _DJANGO_ERRORS:
        if django_cls.__name__ in names:
            return django_cls(*getattr(orig, "args", (str(orig),)))
    return django.db.DatabaseError(str(orig))


def django_error(exc: BaseException) -> BaseException:
    """Return Django's error for a database error; anything else unchanged."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, django.db.Error):
        return exc
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    names = {cls.__name__ for cls in type(orig).__mro__}
    if isinstance(exc, DBAPIError) or "Error" in names or sqlstate_error_class(orig) is not None:
        return database_error(exc)
    return exc
