"""Django's mysql compilers, with vinyl's explain() and parent fields for select_related."""

from __future__ import annotations

from vinyl.mysql_backend import _mysqldb

_mysqldb.import_django_mysql()

from django.db.backends.mysql.compiler import SQLAggregateCompiler, SQLDeleteCompiler, SQLInsertCompiler, SQLUpdateCompiler
from django.db.backends.mysql.compiler import SQLCompiler as BaseSQLCompiler

from vinyl._backend.compiler import ExplainMixin, ParentFieldsMixin


class SQLCompiler(ParentFieldsMixin, ExplainMixin, BaseSQLCompiler):
    pass


__all__ = ["SQLAggregateCompiler", "SQLCompiler", "SQLDeleteCompiler", "SQLInsertCompiler", "SQLUpdateCompiler"]
