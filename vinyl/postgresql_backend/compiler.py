"""Django's postgresql compilers, with vinyl's explain()."""

from __future__ import annotations

from django.db.backends.postgresql.compiler import SQLAggregateCompiler, SQLDeleteCompiler, SQLInsertCompiler, SQLUpdateCompiler
from django.db.backends.postgresql.compiler import SQLCompiler as BaseSQLCompiler

from vinyl._backend.compiler import ExplainMixin


class SQLCompiler(ExplainMixin, BaseSQLCompiler):
    pass


__all__ = ["SQLAggregateCompiler", "SQLCompiler", "SQLDeleteCompiler", "SQLInsertCompiler", "SQLUpdateCompiler"]
