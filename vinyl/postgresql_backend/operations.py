from __future__ import annotations

import ipaddress
import datetime
import json
import uuid
from typing import Any

from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.backends.postgresql.operations import DatabaseOperations as PostgreSQLOperations
from django.db.models import CompositePrimaryKey

from vinyl.postgresql_backend.sentlater import UnencodedJson


def _ip_to_str(value: Any, expression: Any, connection: Any) -> Any:
    # asyncpg returns ipaddress objects for inet; Django's field holds str.
    return value if value is None else str(value)


def _exact_uuid(value: Any, expression: Any, connection: Any) -> Any:
    # asyncpg returns its own subclass of uuid.UUID; Django gives uuid.UUID.
    if value is None or type(value) is uuid.UUID:
        return value
    return uuid.UUID(int=value.int)


def _columns(field: Any) -> int:
    # A composite primary key binds one parameter per column.
    return len(field.fields) if isinstance(field, CompositePrimaryKey) else 1


# deadlock_detected, serialization_failure: the transaction is lost.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


class DatabaseOperations(PostgreSQLOperations):
    """Values in plain Python types for asyncpg, not psycopg's wrappers."""
    compiler_module = "vinyl.postgresql_backend.compiler"

    def vinyl_retryable_error(self, exc: BaseException) -> bool:
        """Did ``exc`` roll the transaction back, so that a rerun may succeed?"""
        return getattr(exc.__cause__, "sqlstate", None) in _RETRYABLE_SQLSTATES

    def adapt_integerfield_value(self, value: Any, internal_type: str) -> Any:
        return value

    # asyncpg writes the first and last date (and datetime) as -infinity and
    # infinity; Django's driver writes them as dates, which Django reads
    # back. As text, asyncpg refuses them and they reach the server as
    # literals (see refused.py): the dates Django writes.

    def adapt_datefield_value(self, value: Any) -> Any:
        if value is not None and value.year in (1, 9999) and value in (datetime.date.min, datetime.date.max):
            return value.isoformat()
        return value

    def adapt_datetimefield_value(self, value: Any) -> Any:
        if value is None or not hasattr(value, "year") or value.year not in (1, 9999):
            return value
        utc = value
        if value.tzinfo is not None:
            try:
                utc = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
            except OverflowError:  # before year 1 in UTC: asyncpg refuses it already
                return value
        if utc in (datetime.datetime.min, datetime.datetime.max):
            return value.isoformat(sep=" ")
        return value

    def adapt_ipaddressfield_value(self, value: Any) -> Any:
        # Validated as Django's adapter (ipaddress.ip_address with psycopg)
        # does: an invalid address is a ValueError here, not a driver error at
        # execution. The text goes to asyncpg, which reads it for inet as for
        # text parameters (a CASE in bulk_update).
        if not value:
            return None
        ipaddress.ip_address(value)
        return value

    def adapt_json_value(self, value: Any, encoder: Any) -> Any:
        # psycopg encodes a JSON value when the statement is sent (Jsonb): one
        # json cannot encode raises there, not here (see sentlater.py).
        try:
            return json.dumps(value, cls=encoder)
        except Exception:  # noqa: BLE001 - raised again when sent: UnencodedJson.sent()
            return UnencodedJson(value, encoder)

    def bulk_batch_size(self, fields: list, objs: Any) -> int:
        """Return how many objects one statement may carry under asyncpg's limit.

        ``fields`` are the columns of each object: inserted values, deleted
        keys, or, for ``bulk_update``, ``[pk, pk, *fields]``, where each
        object binds its key in ``WHERE pk IN`` and, per field, its key and
        a value in ``CASE WHEN pk = %s THEN %s``.
        """
        if not fields:
            return len(objs)
        if len(fields) >= 2 and fields[0] is fields[1]:
            key = _columns(fields[0])
            per_object = key + (len(fields) - 2) * (key + 1)
        else:
            per_object = sum(_columns(field) for field in fields)
        return max(self.connection.features.max_query_params // per_object, 1)

    def get_db_converters(self, expression: Any) -> list:
        converters = super().get_db_converters(expression)
        internal_type = expression.output_field.get_internal_type()
        if internal_type in ("GenericIPAddressField", "IPAddressField"):
            converters.append(_ip_to_str)
        elif internal_type == "UUIDField":
            converters.append(_exact_uuid)
        return converters

    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> str | None:
        return BaseDatabaseOperations.last_executed_query(self, cursor, sql, params)
