"""Values psycopg adapts only when the statement is sent, and vinyl too.

Django's PostgreSQL backend hands psycopg wrappers (``Binary``, ``Jsonb``)
that psycopg turns into bytes when it sends the statement: a value it cannot
adapt (a ``str`` for a BinaryField, a dict json cannot encode) raises there,
and a query whose WHERE Django drops (``none()``, an empty ``__in``, a value
beyond the column's range) never sends it and answers.

vinyl adapts values when the query is compiled, for asyncpg; a value that
fails there is sent wrapped in a ``SentLater``. asyncpg refuses the wrapper
(before the statement runs), and vinyl then adapts it as psycopg would: its
error is raised, or the statement runs again with the adapted value (see
:func:`vinyl.postgresql_backend.refused.inline_refused`). Nothing changes for
the values that adapt.
"""

from __future__ import annotations

import json
from typing import Any


class SentLater:
    """A value adapted when the statement is sent: ``sent()`` adapts it or raises psycopg's error."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def sent(self) -> Any:
        raise NotImplementedError


class NotBytes(SentLater):
    """A value given to ``Binary()`` that is no bytes: psycopg's TypeError."""

    __slots__ = ()

    def sent(self) -> Any:
        raise TypeError(f"bytes or buffer expected, got {type(self.value)}")


class UnencodedJson(SentLater):
    """A JSON value its encoder refused: encoded again when sent (psycopg's ``Jsonb``)."""

    __slots__ = ("encoder",)

    def __init__(self, value: Any, encoder: Any) -> None:
        super().__init__(value)
        self.encoder = encoder

    def sent(self) -> str:
        return json.dumps(self.value, cls=self.encoder)


def sent_value(value: Any) -> Any:
    """``value`` (a parameter asyncpg refused) with its ``SentLater`` adapted, or None if it holds none.

    May raise the error psycopg raises when it sends the value.
    """
    if isinstance(value, SentLater):
        return value.sent()
    if isinstance(value, (list, tuple)) and any(isinstance(v, SentLater) for v in value):
        return type(value)(v.sent() if isinstance(v, SentLater) else v for v in value)
    return None
