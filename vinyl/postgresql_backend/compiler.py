"""Django's postgresql compilers, with vinyl's explain() and parent fields for select_related."""

from __future__ import annotations

from django.db.backends.postgresql.compiler import SQLAggregateCompiler, SQLDeleteCompiler, SQLInsertCompiler, SQLUpdateCompiler
from django.db.backends.postgresql.compiler import SQLCompiler as BaseSQLCompiler

from vinyl._backend.compiler import ExplainMixin, ParentFieldsMixin


class SQLCompiler(ParentFieldsMixin, ExplainMixin, BaseSQLCompiler):
    pass


__all__ = ["SQLAggregateCompiler", "SQLCompiler", "SQLDeleteCompiler", "SQLInsertCompiler", "SQLUpdateCompiler"]
