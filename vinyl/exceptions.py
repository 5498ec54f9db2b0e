"""vinyl's exceptions and the mapping of driver errors to Django's.

Database errors reach users as Django's own classes
(``django.db.IntegrityError``, ``OperationalError``...), with the driver's
error kept as ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from django.db import utils as db_utils
from django.db.transaction import TransactionManagementError

if TYPE_CHECKING:
    from vinyl.engine.engines import EngineEntry


class VinylConfigurationError(ImproperlyConfigured):
    """A vinyl alias is missing or does not use a vinyl backend."""


class SyncConnectionError(ImproperlyConfigured):
    """Sync Django code tried to open a connection on a vinyl alias."""


class TransactionScopeEnded(TransactionManagementError):
    """A task used the transaction of an ``atomic`` block that has ended."""


class DeferredFieldError(AttributeError):
    """A field left out by ``only()`` / ``defer()`` was read."""


class RelationNotLoaded(KeyError):
    """Item access to a relation that was neither joined nor prefetched."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


def connection_error(alias: str, entry: EngineEntry, exc: Exception) -> Exception:
    """Turn a failure to connect into an error naming the alias and server."""
    url = entry.config.url
    where = f"{url.host or 'localhost'}:{url.port}" if url.host or url.port else str(url.database)
    return OperationalError(
        f"vinyl could not connect to database alias {alias!r} at {where} "
        f"({type(exc).__name__}: {exc}); check that the server is running and "
        f"that HOST, PORT, USER and NAME of DATABASES[{alias!r}] are right"
    )


def database_error(exc: BaseException) -> BaseException:
    """Return Django's class of a driver error SQLAlchemy raised (e.g. at COMMIT).

    Deferred constraints (Django's foreign keys on PostgreSQL and SQLite) are
    checked at COMMIT, which SQLAlchemy runs, not Django's cursor.
    """
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return exc
    kind = getattr(db_utils, type(exc).__name__, None)
    if not (isinstance(kind, type) and issubclass(kind, db_utils.Error)):
        kind = db_utils.DatabaseError
    orig = exc.orig if exc.orig is not None else exc
    error = kind(*orig.args)
    error.__cause__ = orig
    return error
