"""Disconnect rules and error mapping at the engine's boundaries.

Which errors mean the server (or network) closed a connection, what that
does to the pool (every older connection is marked stale), and the one
way errors of drivers and SQLAlchemy become Django's here
(:func:`raise_as_django`, the backend's ``map_error``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import utils as django_db

from vinyl.engine.engines import EngineConfig, EngineEntry, check_in_spares, invalidate_pool
from vinyl.exceptions import MYSQL_CONNECTION_CODES, django_error

if TYPE_CHECKING:
    from vinyl.engine.scope import Scope


def is_disconnect(scope: Scope, exc: BaseException) -> bool:
    """Did ``exc`` come from a connection the server (or network) closed?

    vinyl runs statements on the driver connection, below SQLAlchemy's own
    disconnect handling, so it asks the dialect itself.
    """
    dialect = scope.connection.dialect
    dbapi_error = getattr(dialect.loaded_dbapi, "Error", None)
    error: BaseException | None = exc
    while error is not None and dbapi_error is not None:
        if isinstance(error, dbapi_error):
            try:
                return bool(dialect.is_disconnect(error, scope.dbapi_connection(), None))
            except Exception:
                return True
        error = error.__cause__
    return False


def note_lost_connection(entry: EngineEntry, exc: BaseException) -> None:
    """After an error from a connection the server closed, mark every
    connection of the pool stale (see :func:`invalidate_pool`): a server
    restart or a kill of all sessions leaves the idle ones dead too, and the
    next operations must not each fail on one of them."""
    if _lost_connection(entry, exc):
        check_in_spares(entry)
        invalidate_pool(entry)


def _lost_connection(entry: EngineEntry, exc: BaseException) -> bool:
    dialect = entry.engine.dialect
    error: BaseException | None = exc
    while error is not None:
        if isinstance(error, (OSError, ConnectionError)):
            return True
        args = getattr(error, "args", None)
        if args and isinstance(args[0], int) and args[0] in MYSQL_CONNECTION_CODES and type(error).__module__.startswith("asyncmy"):
            return True
        state = getattr(error, "sqlstate", None) or ""
        if not isinstance(state, str):
            state = ""
        if state.startswith("08") or state in ("57P01", "57P02", "57P03"):
            return True  # connection exception; server shutting down/terminated us
        name = type(error).__name__
        if type(error).__module__.startswith("asyncpg") and (
            "ConnectionDoesNotExist" in name or name in ("InterfaceError", "InternalClientError")
        ):
            # InternalClientError: the server's notice that it ended the
            # session arrived before the socket closed, or the protocol is
            # in the state a lost connection left it in.
            return True
        try:
            # (any exception: SQLAlchemy's dialects test its class themselves)
            if dialect.is_disconnect(error, None, None):  # type: ignore[arg-type]
                return True
        except Exception:
            pass
        error = error.__cause__ or error.__context__
    return False


def _driver_disconnect(entry: EngineEntry, exc: BaseException) -> bool:
    # Connection errors reach here mapped to Django's OperationalError /
    # InterfaceError; a needless invalidation only costs a reconnect.
    return isinstance(exc, (django_db.OperationalError, django_db.InterfaceError)) or _lost_connection(entry, exc)


def _raise_as_django(config: EngineConfig, exc: BaseException) -> None:
    """Raise the Django exception for a driver's error, if it has another."""
    mapped = config.map_error(exc) if config.map_error is not None else django_error(exc)
    if mapped is not exc:
        raise mapped from exc


def raise_as_django(entry: EngineEntry, exc: BaseException) -> None:
    """Raise Django's exception for a driver or SQLAlchemy error (the
    backend's mapping, see :func:`vinyl.exceptions.django_error`); return
    for anything else (a cancellation, an application's error)."""
    if isinstance(exc, Exception):
        note_lost_connection(entry, exc)
        _raise_as_django(entry.config, exc)
