"""Django's SQL compilers, refusing row locks that SQLite cannot take."""

from __future__ import annotations

from typing import Any

from django.db import NotSupportedError
from django.db.models.sql import compiler

from vinyl._backend.compiler import ParentFieldsMixin

#: Set on a Query by ``VinylQuerySet.select_for_update()``: the user asked for
#: row locks (Django's own update_or_create also asks, and SQLite ignores it).
LOCKS_REQUESTED = "_vinyl_select_for_update"


class SQLCompiler(ParentFieldsMixin, compiler.SQLCompiler):
    def as_sql(self, *args: Any, **kwargs: Any) -> Any:
        if self.query.select_for_update and getattr(self.query, LOCKS_REQUESTED, False):
            raise NotSupportedError(
                "select_for_update() is not supported on SQLite, which has no row "
                "locks: drop it (a write inside `async with vinyl.atomic()` locks "
                "the whole database until the block ends), or use PostgreSQL or "
                "MariaDB for row-level locking"
            )
        return super().as_sql(*args, **kwargs)


class SQLInsertCompiler(compiler.SQLInsertCompiler, SQLCompiler):
    pass


class SQLDeleteCompiler(compiler.SQLDeleteCompiler, SQLCompiler):
    pass


class SQLUpdateCompiler(compiler.SQLUpdateCompiler, SQLCompiler):
    pass


class SQLAggregateCompiler(compiler.SQLAggregateCompiler, SQLCompiler):
    pass
