"""vinyl's exceptions and the mapping of driver errors to Django's.

Database errors reach users as Django's own classes
(``django.db.IntegrityError``, ``OperationalError``...), with the driver's
error kept as ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
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


# Django's DB-API exception classes, most specific first.
_DJANGO_ERRORS = (
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
    "DatabaseError",
    "InterfaceError",
    "Error",
)


def django_error(exc: BaseException) -> BaseException:
    """Return the Django exception for an SQLAlchemy or driver error.

    Anything that is not a database error is returned unchanged.
    """
    from django.db import utils as django_db
    from sqlalchemy.exc import DBAPIError

    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    names = {kind.__name__ for kind in type(orig).__mro__}
    if isinstance(exc, DBAPIError):
        names |= {kind.__name__ for kind in type(exc).__mro__}
    elif "Error" not in names or isinstance(exc, django_db.Error):
        return exc
    for name in _DJANGO_ERRORS:
        if name in names:
            return getattr(django_db, name)(*getattr(orig, "args", (str(orig),)))
    return exc


class mapped_errors:
    """Context manager: re-raise database errors as Django's, driver error as cause."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        mapped = django_error(exc)
        if mapped is exc:
            return False
        raise mapped from exc


MAPPED_ERRORS = mapped_errors()
